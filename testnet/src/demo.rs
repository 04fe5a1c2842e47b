//! `lockstep-testnet demo`: a fresh 4-validator network, atomic bundles across rollups 1 and
//! 2, and what each rollup's verifying follower receives and its example ledger executes.

use eyre::eyre;
use lockstep_client::follower::Follower;
use lockstep_client::SeqApiClient;
use lockstep_ledger::{Applied, Ledger, LedgerTx, Settlement, SettlementLog};
use lockstep_testnet::{Cluster, ClusterOptions};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

fn show(data: &[u8]) -> String {
    if let Ok(tx) = <LedgerTx as borsh::BorshDeserialize>::try_from_slice(data) {
        return format!("{tx:?}");
    }
    match std::str::from_utf8(data) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
        _ => lockstep_bundles::hash::encode_hex(data),
    }
}

pub(crate) async fn demo(count: u64, dir: Option<PathBuf>) -> eyre::Result<()> {
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("lockstep-demo-{}", std::process::id())),
    };
    let mut cluster = Cluster::create(&dir, &ClusterOptions::default())?;
    cluster.start_all()?;
    cluster.wait_ready(Duration::from_secs(60)).await?;
    let verifier = cluster.verifier()?;
    println!(
        "4 validators up (chain {}); data in {}",
        cluster.chain_id,
        cluster.dir.display()
    );
    let start = cluster
        .height(0)
        .await
        .ok_or_else(|| eyre!("node0 does not answer"))?
        + 1;
    let mut followers = [
        (
            1u64,
            Follower::new(
                vec![cluster.nodes[2].ws_url(), cluster.nodes[1].ws_url()],
                1,
                Some(start),
                verifier.clone(),
                20,
            ),
        ),
        (
            2u64,
            Follower::new(
                vec![cluster.nodes[3].ws_url(), cluster.nodes[0].ws_url()],
                2,
                Some(start),
                verifier,
                20,
            ),
        ),
    ];
    println!("rollup 1 follows node2, rollup 2 follows node3, from height {start}; every batch is verified");

    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let rpc = cluster.http(0)?;
    let chain = cluster.chain_id;
    let mint = lockstep_client::bundle::sign(
        &key,
        chain,
        0,
        start + 1000,
        vec![(
            1,
            LedgerTx::Mint {
                to: "alice".into(),
                amount: 100,
            }
            .encode(),
        )],
    );
    let mut expected: [HashSet<lockstep_bundles::Hash>; 2] = Default::default();
    let h = rpc
        .send_raw_bundle(lockstep_client::bundle::to_raw_hex(&mint))
        .await?;
    expected[0].insert(h);
    println!("sent {h}: mint 100 to alice on rollup 1");
    let mut bridges = HashSet::new();
    for n in 1..=count {
        let legs = vec![
            (
                1,
                LedgerTx::BridgeOut {
                    from: "alice".into(),
                    amount: 10,
                    to_rollup: 2,
                }
                .encode(),
            ),
            (
                2,
                LedgerTx::BridgeIn {
                    to: "bob".into(),
                    amount: 10,
                    from_rollup: 1,
                }
                .encode(),
            ),
        ];
        let b = lockstep_client::bundle::sign(&key, chain, n, start + 1000, legs);
        let h = rpc
            .send_raw_bundle(lockstep_client::bundle::to_raw_hex(&b))
            .await?;
        println!("sent {h}: atomic bundle, alice (rollup 1) sends 10 to bob (rollup 2)");
        expected[0].insert(h);
        expected[1].insert(h);
        bridges.insert(h);
    }

    let mut executed_at: [HashMap<lockstep_bundles::Hash, u64>; 2] = Default::default();
    for (k, (rollup, follower)) in followers.iter_mut().enumerate() {
        let mut ledger = Ledger::new(*rollup);
        let log_path = cluster.dir.join(format!("rollup-{rollup}-settlement.log"));
        let log = SettlementLog::new(&log_path);
        println!("\nrollup {rollup}: verified batches, executed");
        while executed_at[k].len() < expected[k].len() {
            let v = tokio::time::timeout(Duration::from_secs(30), follower.next())
                .await
                .map_err(|_| eyre!("rollup {rollup}: no batch within 30 s"))??;
            for e in &v.batch.entries {
                let outcome = match ledger.execute(e) {
                    Applied::Ok(_) => "executed".to_string(),
                    Applied::Failed(why) => format!("failed: {why}"),
                };
                println!(
                    "  height {} bundle {} leg {} of rollups {:?}: {} -> {outcome}",
                    v.batch.height,
                    e.bundle_hash,
                    e.leg_index,
                    e.rollups,
                    show(&e.data)
                );
                executed_at[k].insert(e.bundle_hash, v.batch.height);
            }
            let s = Settlement {
                height: v.batch.height,
                block_hash: v.json.block_hash,
                state_root: ledger.state_root(),
            };
            log.append(&s)?;
        }
        println!(
            "  balances {:?}, state root {} (settled per height to {})",
            ledger.balances,
            ledger.state_root(),
            log_path.display()
        );
    }
    cluster.stop_all()?;
    for h in &bridges {
        let (a, b) = (executed_at[0].get(h), executed_at[1].get(h));
        if a.is_none() || a != b {
            return Err(eyre!(
                "bundle {h}: legs executed at heights {a:?} and {b:?}"
            ));
        }
    }
    println!("\ndone: each atomic bundle's two legs executed at the same sequencer height on both rollups");
    Ok(())
}

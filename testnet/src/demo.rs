//! `lockstep-testnet demo`: a fresh 4-validator network, atomic bundles across rollups 1 and
//! 2, and what each rollup's verifying follower receives and its example ledger executes.

use eyre::eyre;
use lockstep_client::follower::Follower;
use lockstep_client::SeqApiClient;
use lockstep_ledger::{Applied, Ledger, LedgerTx, Settlement, SettlementLog};
use lockstep_testnet::{Cluster, ClusterOptions};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

/// What alice bridges from rollup 1 to bob on rollup 2 in each atomic bundle.
const BRIDGE_AMOUNT: u64 = 10;

/// Checks that a ledger moved from `before` to `after` exactly as `tx` says (absent accounts
/// hold 0), so that "executed" is printed for what the balances show, not for what the ledger
/// reports.
fn check_applied(
    tx: &LedgerTx,
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> Result<(), String> {
    let mut expected: BTreeMap<&str, i128> = before
        .iter()
        .map(|(k, v)| (k.as_str(), i128::from(*v)))
        .collect();
    let deltas: Vec<(&str, i128)> = match tx {
        LedgerTx::Mint { to, amount } | LedgerTx::BridgeIn { to, amount, .. } => {
            vec![(to, i128::from(*amount))]
        }
        LedgerTx::BridgeOut { from, amount, .. } => vec![(from, -i128::from(*amount))],
        LedgerTx::Transfer { from, to, amount } => {
            vec![(from, -i128::from(*amount)), (to, i128::from(*amount))]
        }
    };
    for (who, delta) in deltas {
        *expected.entry(who).or_insert(0) += delta;
    }
    let expected: BTreeMap<&str, i128> = expected.into_iter().filter(|(_, v)| *v != 0).collect();
    let got: BTreeMap<&str, i128> = after
        .iter()
        .filter(|(_, v)| **v != 0)
        .map(|(k, v)| (k.as_str(), i128::from(*v)))
        .collect();
    if got == expected {
        Ok(())
    } else {
        Err(format!(
            "balances went from {before:?} to {after:?}; {tx:?} should give {expected:?}"
        ))
    }
}

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
    let minted = (BRIDGE_AMOUNT * count).max(100);
    let mint = lockstep_client::bundle::sign(
        &key,
        chain,
        0,
        start + 1000,
        vec![(
            1,
            LedgerTx::Mint {
                to: "alice".into(),
                amount: minted,
            }
            .encode(),
        )],
    );
    let mut expected: [HashSet<lockstep_bundles::Hash>; 2] = Default::default();
    let h = rpc
        .send_raw_bundle(lockstep_client::bundle::to_raw_hex(&mint))
        .await?;
    expected[0].insert(h);
    println!("sent {h}: mint {minted} to alice on rollup 1");
    let mut bridges = HashSet::new();
    for n in 1..=count {
        let legs = vec![
            (
                1,
                LedgerTx::BridgeOut {
                    from: "alice".into(),
                    amount: BRIDGE_AMOUNT,
                    to_rollup: 2,
                }
                .encode(),
            ),
            (
                2,
                LedgerTx::BridgeIn {
                    to: "bob".into(),
                    amount: BRIDGE_AMOUNT,
                    from_rollup: 1,
                }
                .encode(),
            ),
        ];
        let b = lockstep_client::bundle::sign(&key, chain, n, start + 1000, legs);
        let h = rpc
            .send_raw_bundle(lockstep_client::bundle::to_raw_hex(&b))
            .await?;
        println!(
            "sent {h}: atomic bundle, alice (rollup 1) sends {BRIDGE_AMOUNT} to bob (rollup 2)"
        );
        expected[0].insert(h);
        expected[1].insert(h);
        bridges.insert(h);
    }

    // A leg counts as executed only once the ledger's balances show it applied.
    let mut executed_at: [HashMap<lockstep_bundles::Hash, u64>; 2] = Default::default();
    let mut seen: [HashSet<lockstep_bundles::Hash>; 2] = Default::default();
    let mut final_balances: [BTreeMap<String, u64>; 2] = Default::default();
    for (k, (rollup, follower)) in followers.iter_mut().enumerate() {
        let mut ledger = Ledger::new(*rollup);
        let log_path = cluster.dir.join(format!("rollup-{rollup}-settlement.log"));
        let log = SettlementLog::new(&log_path);
        println!("\nrollup {rollup}: verified batches, executed");
        while !expected[k].is_subset(&seen[k]) {
            let v = tokio::time::timeout(Duration::from_secs(30), follower.next())
                .await
                .map_err(|_| eyre!("rollup {rollup}: no batch within 30 s"))??;
            for e in &v.batch.entries {
                let before = ledger.balances.clone();
                let outcome = match ledger.execute(e) {
                    Applied::Ok(_) => {
                        let tx = <LedgerTx as borsh::BorshDeserialize>::try_from_slice(&e.data)
                            .map_err(|err| {
                                eyre!("rollup {rollup}: bundle {} leg {}: the ledger applied data that is not a ledger transaction: {err}", e.bundle_hash, e.leg_index)
                            })?;
                        check_applied(&tx, &before, &ledger.balances).map_err(|why| {
                            eyre!(
                                "rollup {rollup}: bundle {} leg {}: the ledger reported it executed, but {why}",
                                e.bundle_hash,
                                e.leg_index
                            )
                        })?;
                        executed_at[k].insert(e.bundle_hash, v.batch.height);
                        "executed".to_string()
                    }
                    Applied::Failed(why) => {
                        if ledger.balances != before {
                            return Err(eyre!(
                                "rollup {rollup}: bundle {} leg {} failed ({why}) but changed the balances from {before:?} to {:?}",
                                e.bundle_hash,
                                e.leg_index,
                                ledger.balances
                            ));
                        }
                        format!("failed (balances unchanged): {why}")
                    }
                };
                println!(
                    "  height {} bundle {} leg {} of rollups {:?}: {} -> {outcome}",
                    v.batch.height,
                    e.bundle_hash,
                    e.leg_index,
                    e.rollups,
                    show(&e.data)
                );
                seen[k].insert(e.bundle_hash);
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
        final_balances[k] = ledger.balances;
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
    let bridged = BRIDGE_AMOUNT * count;
    let want: [BTreeMap<String, u64>; 2] = [
        [("alice".to_string(), minted - bridged)]
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .collect(),
        [("bob".to_string(), bridged)]
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .collect(),
    ];
    for (k, rollup) in [1u64, 2].into_iter().enumerate() {
        let got: BTreeMap<String, u64> = final_balances[k]
            .iter()
            .filter(|(_, v)| **v != 0)
            .map(|(a, v)| (a.clone(), *v))
            .collect();
        if got != want[k] {
            return Err(eyre!(
                "rollup {rollup}: balances {got:?} after all legs, expected {:?}",
                want[k]
            ));
        }
    }
    println!("\ndone: each atomic bundle's two legs executed at the same sequencer height on both rollups, and the balances show every leg applied");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balances(of: &[(&str, u64)]) -> BTreeMap<String, u64> {
        of.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn a_leg_counts_as_applied_only_if_the_balances_moved_as_it_says() {
        let out = LedgerTx::BridgeOut {
            from: "alice".into(),
            amount: 10,
            to_rollup: 2,
        };
        let before = balances(&[("alice", 100), ("carol", 5)]);
        assert!(check_applied(&out, &before, &balances(&[("alice", 90), ("carol", 5)])).is_ok());
        assert!(
            check_applied(&out, &before, &before).is_err(),
            "nothing moved"
        );
        assert!(
            check_applied(&out, &before, &balances(&[("alice", 90)])).is_err(),
            "carol's balance vanished"
        );
        let mint = LedgerTx::Mint {
            to: "bob".into(),
            amount: 7,
        };
        assert!(check_applied(&mint, &BTreeMap::new(), &balances(&[("bob", 7)])).is_ok());
        assert!(check_applied(&mint, &BTreeMap::new(), &balances(&[("bob", 8)])).is_err());
        let transfer = LedgerTx::Transfer {
            from: "alice".into(),
            to: "bob".into(),
            amount: 100,
        };
        // An account emptied may stay in the table with 0.
        assert!(check_applied(
            &transfer,
            &balances(&[("alice", 100)]),
            &balances(&[("alice", 0), ("bob", 100)])
        )
        .is_ok());
    }

    #[test]
    fn the_example_ledger_passes_the_check_for_each_kind_of_leg() {
        let mut l = Ledger::new(1);
        let legs = [
            LedgerTx::Mint {
                to: "alice".into(),
                amount: 30,
            },
            LedgerTx::Transfer {
                from: "alice".into(),
                to: "bob".into(),
                amount: 5,
            },
            LedgerTx::BridgeOut {
                from: "alice".into(),
                amount: 10,
                to_rollup: 2,
            },
            LedgerTx::BridgeIn {
                to: "bob".into(),
                amount: 3,
                from_rollup: 2,
            },
        ];
        for tx in legs {
            let before = l.balances.clone();
            let e = lockstep_bundles::RollupEntry {
                bundle_hash: lockstep_bundles::Hash::ZERO,
                leg_index: 0,
                rollups: vec![1, 2],
                data: tx.encode(),
            };
            assert!(matches!(l.execute(&e), Applied::Ok(_)));
            assert_eq!(check_applied(&tx, &before, &l.balances), Ok(()));
        }
    }
}

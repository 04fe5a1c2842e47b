//! Validator set changes over real processes (ADR-027): while bundles flow, a fifth validator
//! is added (it runs from the start, follows once its update admits it, then votes), one of
//! genesis's is removed, and a power changes; forged and stale updates are refused. A rollup
//! follower started at genesis, before any change, verifies every height throughout; every
//! acknowledged bundle is included exactly once, and every node holds the same blocks.
//!
//! Multi-process tests: run them one at a time (`--test-threads=1`), as `scripts/test.sh` does.

#![allow(clippy::unwrap_used)]

use ed25519_dalek::SigningKey;
use lockstep_bundles::{Address, SetChange, SetUpdate, SignedBundle, SignedSetUpdate};
use lockstep_client::bundle::sign;
use lockstep_client::follower::Follower;
use lockstep_client::tracker::{send_and_wait, Outcome};
use lockstep_client::SeqApiClient;
use lockstep_node::home::Home;
use lockstep_node::keys::NodeKey;
use lockstep_testnet::{Cluster, ClusterOptions};
use lockstep_tests::{
    assert_identical_blocks, call_error, decided_height, eventually, network_dir,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const READY: Duration = Duration::from_secs(90);
/// Longest wait for an update's inclusion, or for a new validator to sign.
const NEXT: Duration = Duration::from_secs(60);
/// The validator to be: after the four genesis validators in `Cluster::nodes`.
const JOINER: usize = 4;

fn key_of(cluster: &Cluster, i: usize) -> SigningKey {
    let k = NodeKey::load(&Home::new(&cluster.nodes[i].home).key()).unwrap();
    SigningKey::from_bytes(&k.secret)
}

fn address_of(key: &SigningKey) -> Address {
    Address::from_public_key(&key.verifying_key().to_bytes())
}

/// A bundle carrying `changes` to set `version`, co-signed by `cosigners`, submitted by the
/// first of them.
fn update_bundle(
    cluster: &Cluster,
    version: u64,
    changes: Vec<SetChange>,
    cosigners: &[usize],
    valid_until: u64,
) -> SignedBundle {
    let mut u = SignedSetUpdate::unsigned(SetUpdate {
        chain_id: cluster.chain_id,
        version,
        changes,
    });
    for &i in cosigners {
        u.sign(&key_of(cluster, i));
    }
    let submitter = key_of(cluster, cosigners[0]);
    sign(
        &submitter,
        cluster.chain_id,
        // One nonce per version and signer set: each bundle is new.
        version * 1_000 + cosigners.len() as u64,
        valid_until,
        vec![(lockstep_bundles::SET_UPDATE_ROLLUP, u.encode())],
    )
}

/// Submits `bundle` to `node` and waits for its inclusion; returns the height.
async fn included(cluster: &Cluster, node: usize, bundle: &SignedBundle) -> eyre::Result<u64> {
    let (hash, outcome) = send_and_wait(&cluster.http(node)?, bundle, NEXT).await?;
    match outcome {
        Outcome::Included { height, .. } => Ok(height),
        Outcome::Dropped { reason } => Err(eyre::eyre!("update {hash} dropped: {reason}")),
    }
}

/// The addresses that signed height `h`'s certificate, read from node `i`.
async fn signers(cluster: &Cluster, i: usize, h: u64) -> eyre::Result<Vec<Address>> {
    let j = cluster
        .http(i)?
        .get_rollup_batch(1, h)
        .await?
        .ok_or_else(|| eyre::eyre!("node{i} has no height {h}"))?;
    let b = lockstep_client::verify::from_json(&j)?;
    Ok(b.certificate.signatures.iter().map(|s| s.address).collect())
}

/// Waits until some certificate past `after`, read from node `i`, satisfies `test`; returns
/// its height.
async fn a_certificate_where(
    cluster: &Cluster,
    i: usize,
    after: u64,
    what: &str,
    test: impl Fn(&[Address]) -> bool,
) -> eyre::Result<u64> {
    let deadline = tokio::time::Instant::now() + NEXT;
    let mut h = after + 1;
    loop {
        let top = decided_height(cluster, i).await?;
        while h <= top {
            if test(&signers(cluster, i, h).await?) {
                return Ok(h);
            }
            h += 1;
        }
        if tokio::time::Instant::now() > deadline {
            eyre::bail!("timed out after {NEXT:?} waiting for {what} (checked to height {top})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_are_added_removed_and_repowered_while_bundles_flow_and_followers_verify(
) -> eyre::Result<()> {
    let mut cluster = Cluster::create(
        &network_dir("validator-set"),
        &ClusterOptions {
            validators: 4,
            joiners: 1,
            ..Default::default()
        },
    )?;
    cluster.start_all()?;
    cluster.wait_for_height(&[0, 1, 2, 3], 1, READY).await?;
    let keys: Vec<SigningKey> = (0..5).map(|i| key_of(&cluster, i)).collect();
    let joiner = address_of(&keys[JOINER]);
    // Nobody admits the joiner before an update does: it has decided nothing. (Its RPC comes
    // up once it has given up asking its peers for a snapshot offer, `snapshot_wait_ms`.)
    let joiner_height = eventually("the joiner's RPC", READY, || async {
        decided_height(&cluster, JOINER).await.ok()
    })
    .await?;
    assert_eq!(joiner_height, 0);

    // A follower of rollup 1 from genesis, on the nodes that stay, and a stream of bundles to
    // them, every acknowledgement recorded.
    let mut follower = Follower::new(
        (1..4).map(|i| cluster.nodes[i].ws_url()).collect(),
        1,
        Some(1),
        cluster.verifier()?,
        50,
    );
    let acked: Arc<Mutex<Vec<lockstep_bundles::Hash>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let clients: Vec<_> = (1..4).map(|i| cluster.http(i)).collect::<Result<_, _>>()?;
        let (acked, stop, chain) = (acked.clone(), stop.clone(), cluster.chain_id);
        tokio::spawn(async move {
            let user = SigningKey::generate(&mut rand::rngs::OsRng);
            let mut nonce = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                nonce += 1;
                let c = &clients[nonce as usize % clients.len()];
                let top = c.block_number().await.unwrap_or(0);
                let b = sign(
                    &user,
                    chain,
                    nonce,
                    top + 50,
                    vec![(1, nonce.to_le_bytes().to_vec())],
                );
                if let Ok(h) = c
                    .send_raw_bundle(lockstep_client::bundle::to_raw_hex(&b))
                    .await
                {
                    acked.lock().unwrap().push(h);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // Refused at once, 4008: co-signed by two of four (not more than two thirds), and for a
    // set version the chain has not reached.
    let top = decided_height(&cluster, 1).await?;
    let add = vec![SetChange::Add {
        public_key: keys[JOINER].verifying_key().to_bytes(),
        power: 1,
    }];
    for (bundle, why) in [
        (
            update_bundle(&cluster, 0, add.clone(), &[0, 1], top + 40),
            "two thirds",
        ),
        (
            update_bundle(&cluster, 1, add.clone(), &[0, 1, 2], top + 40),
            "version",
        ),
    ] {
        let r = cluster
            .http(1)?
            .send_raw_bundle(lockstep_client::bundle::to_raw_hex(&bundle))
            .await;
        let (code, message) = call_error(r);
        assert_eq!(code, 4008, "{message}");
        assert!(message.contains(why), "{message:?} does not say {why:?}");
    }

    // 1. Add the joiner: in force two heights after its block; it is admitted, catches up and
    //    signs.
    let at = included(
        &cluster,
        1,
        &update_bundle(&cluster, 0, add, &[0, 1, 2], top + 40),
    )
    .await?;
    let sets = cluster.http(2)?.get_validator_sets(None).await?;
    assert_eq!(sets.len(), 2, "{sets:?}");
    assert_eq!(
        (sets[1].version, sets[1].from_height, sets[1].included_at),
        (1, at + 2, at)
    );
    let joined = a_certificate_where(
        &cluster,
        1,
        at,
        "a certificate signed by the new validator",
        |s| s.contains(&joiner),
    )
    .await?;
    assert!(
        joined >= at + 2,
        "signed at {joined}, before its set was in force"
    );
    let cj = cluster.http(JOINER)?;
    eventually("the joiner to say it is a validator", NEXT, || async {
        cj.health().await.ok().filter(|h| h.validator)
    })
    .await?;

    // 2. Remove node0 (four of the five sign); from then on it signs nothing.
    let top = decided_height(&cluster, 1).await?;
    let gone = address_of(&keys[0]);
    let removed = included(
        &cluster,
        2,
        &update_bundle(
            &cluster,
            1,
            vec![SetChange::Remove { address: gone }],
            &[1, 2, 3, JOINER],
            top + 40,
        ),
    )
    .await?;
    let after = a_certificate_where(
        &cluster,
        1,
        removed + 1,
        "certificates without the removed validator",
        |_| true,
    )
    .await?;
    for h in after..after + 5 {
        cluster.wait_for_height(&[1], h, NEXT).await?;
        assert!(
            !signers(&cluster, 1, h).await?.contains(&gone),
            "node0 signed height {h}"
        );
    }
    let c0 = cluster.http(0)?;
    eventually("node0 to say it is no longer a validator", NEXT, || async {
        c0.health().await.ok().filter(|h| !h.validator)
    })
    .await?;
    // It is no longer needed: the other four decide without it.
    cluster.kill(0)?;

    // 3. Node1's power to 2 (three of the four sign); height after height is still decided.
    let top = decided_height(&cluster, 1).await?;
    let repowered = included(
        &cluster,
        3,
        &update_bundle(
            &cluster,
            2,
            vec![SetChange::SetPower {
                address: address_of(&keys[1]),
                power: 2,
            }],
            &[1, 2, 3],
            top + 40,
        ),
    )
    .await?;
    let sets = cluster.http(3)?.get_validator_sets(Some(3)).await?;
    assert_eq!(sets.len(), 1);
    let powers: HashMap<Address, u64> = sets[0]
        .validators
        .iter()
        .map(|v| (v.address, v.voting_power))
        .collect();
    assert_eq!(powers.len(), 4);
    assert_eq!(powers[&address_of(&keys[1])], 2);
    let end = repowered + 2 + 5;
    eprintln!(
        "joiner added at height {at} (signing from {joined}), node0 removed at {removed}, \
         node1 repowered at {repowered}; checking to height {end}"
    );
    cluster
        .wait_for_height(&[1, 2, 3, JOINER], end, NEXT)
        .await?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sender.await?;

    // The follower from genesis verified every height, across three sets, none of the last
    // two known to it at the start.
    let mut height = 0;
    while height < end {
        let v =
            lockstep_tests::within("the follower's next batch", NEXT, follower.next()).await??;
        assert_eq!(v.batch.height, height + 1, "heights consecutive");
        height = v.batch.height;
    }

    // Every acknowledged bundle included exactly once; the nodes agree on every block.
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "only {} bundles acknowledged",
        acked.len()
    );
    let c1 = cluster.http(1)?;
    let mut seen = std::collections::HashSet::new();
    for h in 1..=end {
        for b in c1.get_block(h).await?.unwrap().bundles {
            assert!(seen.insert(b), "bundle {b} included twice");
        }
    }
    for hash in &acked {
        let s = eventually("an acknowledged bundle's inclusion", NEXT, || async {
            let s = c1.get_bundle_status(*hash).await.ok()?;
            (s.status != "pending").then_some(s)
        })
        .await?;
        assert_eq!(s.status, "included", "{hash}: {s:?}");
    }
    assert_identical_blocks(&cluster, &[1, 2, 3, JOINER], end).await?;
    Ok(())
}

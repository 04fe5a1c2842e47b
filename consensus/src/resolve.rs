//! Turning a compact proposal's bundle hashes back into bundles: from this node's pool, from
//! gossip that is arriving right now, or from peers.
//!
//! Bundles reach every validator by gossip before they are proposed, so almost always they
//! are all pending here already. Under load gossip can be a moment behind the proposal, so
//! the validator first waits briefly for its own admission to catch up, then asks peers for
//! what is still missing. What peers send is checked like anything else from the network: it
//! must hash to the hash asked for and carry a valid signature, or it is ignored. A copy is
//! spared the signature check only if this very signature (not just the hash, which covers
//! the body only) was verified here before (ADR-023), so every bundle a proposal is resolved
//! to carries a signature this node verified.

use bytes::Bytes;
use lockstep_bundles::sig::{self, Item};
use lockstep_bundles::{Address, Hash, Limits, SignedBundle};
use lockstep_mempool::{Admitted, Known, Mempool};
use std::sync::Arc;
use std::time::Duration;

/// How long a validator waits for gossip to bring a proposal's missing bundles before it
/// asks peers for them.
pub const GOSSIP_WAIT: Duration = Duration::from_millis(50);
/// How long it then waits for peers (the proposer first). The consensus connector waits for
/// the host while it resolves, so this stays below the propose timeout (1 s by default).
pub const FETCH_DEADLINE: Duration = Duration::from_millis(700);

/// Where a validator gets the bundles a proposal names but it does not hold.
#[async_trait::async_trait]
pub trait BundleFetch: Send + Sync + 'static {
    /// Asks peers for bundles by hash, `proposer` first (it proposed them, so it holds them):
    /// one entry per hash, in order, as the peer sent it (not checked), or `None` if no peer
    /// had it.
    async fn fetch(&self, hashes: Vec<Hash>, proposer: Address) -> Vec<Option<Bytes>>;
}

/// Fetches nothing (a node without peers; tests).
pub struct NoFetch;

#[async_trait::async_trait]
impl BundleFetch for NoFetch {
    async fn fetch(&self, hashes: Vec<Hash>, _: Address) -> Vec<Option<Bytes>> {
        vec![None; hashes.len()]
    }
}

/// A proposal's bundles, in block order.
#[derive(Debug)]
pub struct Resolved {
    pub bundles: Vec<SignedBundle>,
    /// Each bundle's canonical encoding.
    pub encoded: Vec<Bytes>,
    /// The bundles that came from peers (their signatures verified here).
    pub fetched: Vec<Admitted>,
}

/// Why a proposal's bundles could not all be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// A bundle was already included: the proposal is invalid.
    Included { hash: Hash, height: u64 },
    /// This many bundles are neither here nor, with a valid signature, at any peer. Not proof
    /// that the proposer misbehaved, only that this node cannot vote for the block.
    Missing(usize),
}

/// How long each stage may take.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    pub gossip: Duration,
    pub fetch: Duration,
}

impl Default for Waits {
    fn default() -> Self {
        Waits {
            gossip: GOSSIP_WAIT,
            fetch: FETCH_DEADLINE,
        }
    }
}

/// The bundles named by `hashes` in a proposal by `proposer`, in order.
pub async fn resolve(
    mempool: &Mempool,
    fetcher: &dyn BundleFetch,
    proposer: Address,
    hashes: &[Hash],
    limits: &Limits,
    waits: Waits,
) -> Result<Resolved, Unresolved> {
    let started = std::time::Instant::now();
    let included = mempool.included_many(hashes);
    if let Some((hash, height)) = hashes
        .iter()
        .zip(&included)
        .find_map(|(h, k)| k.map(|height| (*h, height)))
    {
        return Err(Unresolved::Included { hash, height });
    }
    let mut found: Vec<Option<(Arc<SignedBundle>, Bytes)>> = mempool
        .pending_many(hashes)
        .into_iter()
        .map(|a| a.map(|a| (a.bundle, a.encoded)))
        .collect();
    let mut fetched = Vec::new();

    let missing = positions_missing(&found);
    let not_pending = missing.len();
    if !missing.is_empty() {
        metrics::counter!(crate::metrics::BUNDLES_AWAITED).increment(missing.len() as u64);
        let wanted: Vec<Hash> = missing.iter().map(|&i| hashes[i]).collect();
        let arrived = mempool.wait_for(&wanted, waits.gossip).await;
        for (&i, a) in missing.iter().zip(arrived) {
            found[i] = a.map(|a| (a.bundle, a.encoded));
        }
    }

    let waited = started.elapsed();
    let missing = positions_missing(&found);
    let after_wait = missing.len();
    if !missing.is_empty() {
        let wanted: Vec<Hash> = missing.iter().map(|&i| hashes[i]).collect();
        let answers = tokio::time::timeout(waits.fetch, fetcher.fetch(wanted, proposer))
            .await
            .unwrap_or_default();
        // Keep what decodes and hashes to what was asked for; then verify signatures, except
        // a copy whose very signature this node verified before (in an earlier proposal, or
        // pending here meanwhile).
        let mut candidates = Vec::new();
        for (&i, raw) in missing.iter().zip(answers) {
            let Some(raw) = raw else { continue };
            let Ok(b) = SignedBundle::decode_shared(&raw, limits) else {
                continue;
            };
            if SignedBundle::hash_of_encoding(&raw) != hashes[i] {
                continue;
            }
            candidates.push((i, b, raw));
        }
        let copies: Vec<(Hash, [u8; 64])> = candidates
            .iter()
            .map(|(i, b, _)| (hashes[*i], b.signature))
            .collect();
        let verified_before: Vec<bool> = mempool
            .known_many(&copies)
            .into_iter()
            .map(|k| matches!(k, Known::Verified | Known::Pending))
            .collect();
        let items: Vec<Item> = candidates
            .iter()
            .zip(&verified_before)
            .filter(|(_, before)| !**before)
            .map(|((i, b, _), _)| Item {
                pk: b.body.signer,
                msg: hashes[*i].0,
                sig: b.signature,
            })
            .collect();
        let verdicts = if items.is_empty() {
            Vec::new()
        } else {
            tokio::task::spawn_blocking(move || sig::verify_batch(&items))
                .await
                .unwrap_or_default()
        };
        let mut verdicts = verdicts.into_iter();
        for ((i, b, raw), before) in candidates.into_iter().zip(verified_before) {
            let ok = before || verdicts.next().unwrap_or(false);
            if !ok {
                // A peer sent the right body with a bad signature: its fault, not the
                // proposer's. The bundle stays missing.
                continue;
            }
            let bundle = Arc::new(b);
            fetched.push(Admitted {
                hash: hashes[i],
                bundle: bundle.clone(),
                encoded: raw.clone(),
            });
            found[i] = Some((bundle, raw));
        }
        metrics::counter!(crate::metrics::BUNDLES_FETCHED).increment(fetched.len() as u64);
    }

    let missing = positions_missing(&found).len();
    if not_pending > 0 {
        tracing::debug!(
            bundles = hashes.len(),
            not_pending,
            after_gossip_wait = after_wait,
            fetched = fetched.len(),
            missing,
            wait_ms = waited.as_secs_f64() * 1e3,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            "resolved proposal bundles"
        );
    }
    if missing > 0 {
        return Err(Unresolved::Missing(missing));
    }
    let (bundles, encoded) = found
        .into_iter()
        .flatten()
        .map(|(b, e)| ((*b).clone(), e))
        .unzip();
    Ok(Resolved {
        bundles,
        encoded,
        fetched,
    })
}

fn positions_missing<T>(found: &[Option<T>]) -> Vec<usize> {
    found
        .iter()
        .enumerate()
        .filter(|(_, f)| f.is_none())
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use lockstep_bundles::bundle::{BundleBody, Leg};
    use lockstep_mempool::included::IncludedSet;
    use lockstep_mempool::pool::PoolConfig;
    use lockstep_mempool::Origin;
    use parking_lot::Mutex;
    use std::collections::HashMap;

    fn bundle(n: u64) -> SignedBundle {
        let key = SigningKey::from_bytes(&[(n % 200) as u8 + 1; 32]);
        let body = BundleBody {
            chain_id: 1,
            signer: key.verifying_key().to_bytes(),
            nonce: n,
            valid_until: 100,
            legs: vec![Leg {
                rollup_id: 1,
                data: vec![n as u8; 16].into(),
            }],
        };
        let signature = key.sign(&body.hash().0).to_bytes();
        SignedBundle { body, signature }
    }

    fn admitted(b: &SignedBundle) -> Admitted {
        Admitted {
            hash: b.hash(),
            bundle: Arc::new(b.clone()),
            encoded: Bytes::from(b.encode()),
        }
    }

    fn pool() -> Mempool {
        Mempool::new(PoolConfig::default(), IncludedSet::new(100))
    }

    /// Peers that hold some encodings, and a record of what was asked.
    #[derive(Default)]
    struct Peers {
        held: HashMap<Hash, Bytes>,
        asked: Mutex<Vec<Hash>>,
    }

    #[async_trait::async_trait]
    impl BundleFetch for Peers {
        async fn fetch(&self, hashes: Vec<Hash>, _: Address) -> Vec<Option<Bytes>> {
            self.asked.lock().extend(&hashes);
            hashes.iter().map(|h| self.held.get(h).cloned()).collect()
        }
    }

    /// Resolves `hashes` as a proposal by any proposer, within the default limits.
    async fn run(
        m: &Mempool,
        peers: &dyn BundleFetch,
        hashes: &[Hash],
        waits: Waits,
    ) -> Result<Resolved, Unresolved> {
        resolve(
            m,
            peers,
            Address::default(),
            hashes,
            &Limits::default(),
            waits,
        )
        .await
    }

    fn quick() -> Waits {
        Waits {
            gossip: Duration::from_millis(20),
            fetch: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn pending_bundles_resolve_without_asking_peers() {
        let m = pool();
        let bs: Vec<SignedBundle> = (0..5).map(bundle).collect();
        m.insert_many(bs.iter().map(|b| (admitted(b), Origin::Peer)).collect(), 1);
        let hashes: Vec<Hash> = bs.iter().rev().map(SignedBundle::hash).collect();
        let peers = Peers::default();
        let r = run(&m, &peers, &hashes, quick()).await.unwrap();
        let got: Vec<Hash> = r.bundles.iter().map(SignedBundle::hash).collect();
        assert_eq!(got, hashes, "block order, not pool order");
        assert_eq!(r.encoded[0], Bytes::from(bs[4].encode()));
        assert!(r.fetched.is_empty());
        assert!(peers.asked.lock().is_empty());
    }

    #[tokio::test]
    async fn a_bundle_admitted_while_waiting_is_taken_from_the_pool() {
        let m = Arc::new(pool());
        let b = bundle(1);
        let hashes = vec![b.hash()];
        let m2 = m.clone();
        let late = admitted(&b);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            m2.insert_many(vec![(late, Origin::Peer)], 1);
        });
        let peers = Peers::default();
        // A wait far longer than the test's deadline: only the insert's wake-up can end it
        // in time (a wait that sleeps to its end would fail here, not pass late).
        let waits = Waits {
            gossip: Duration::from_secs(3600),
            fetch: Duration::from_secs(1),
        };
        let r = tokio::time::timeout(Duration::from_secs(30), run(&m, &peers, &hashes, waits))
            .await
            .expect("the insert ends the wait")
            .unwrap();
        assert_eq!(r.bundles, vec![b]);
        assert!(peers.asked.lock().is_empty(), "gossip brought it in time");
    }

    #[tokio::test]
    async fn missing_bundles_are_fetched_and_checked() {
        let m = pool();
        let (here, away, forged, garbled, nowhere) =
            (bundle(1), bundle(2), bundle(3), bundle(4), bundle(5));
        m.insert_many(vec![(admitted(&here), Origin::Peer)], 1);
        let mut bad_sig = forged.clone();
        bad_sig.signature[3] ^= 1;
        let mut peers = Peers::default();
        peers.held.insert(away.hash(), Bytes::from(away.encode()));
        // The right body with a forged signature, and bytes that are not the bundle asked for.
        peers
            .held
            .insert(forged.hash(), Bytes::from(bad_sig.encode()));
        peers
            .held
            .insert(garbled.hash(), Bytes::from(here.encode()));

        let all = vec![here.hash(), away.hash()];
        let r = run(&m, &peers, &all, quick()).await.unwrap();
        assert_eq!(r.bundles, vec![here.clone(), away.clone()]);
        assert_eq!(r.fetched.len(), 1);
        assert_eq!(r.fetched[0].hash, away.hash());
        assert_eq!(*peers.asked.lock(), vec![away.hash()]);

        for (h, what) in [
            (forged.hash(), "forged signature"),
            (garbled.hash(), "wrong bytes"),
            (nowhere.hash(), "nobody has it"),
        ] {
            let r = run(&m, &peers, &[here.hash(), h], quick()).await;
            assert_eq!(r.unwrap_err(), Unresolved::Missing(1), "{what}");
        }
    }

    #[tokio::test]
    async fn a_fetched_copy_skips_verification_only_with_the_signature_verified_here() {
        // A pool of one, full: what a proposal brought is only remembered as verified.
        let m = Mempool::new(
            PoolConfig {
                max_count: 1,
                ..PoolConfig::default()
            },
            IncludedSet::new(100),
        );
        m.insert_many(vec![(admitted(&bundle(9)), Origin::Peer)], 1);
        let b = bundle(1);
        m.insert_from_proposal(vec![admitted(&b)], 1);
        let mut forged = b.clone();
        forged.signature[3] ^= 1;
        let mut peers = Peers::default();
        peers.held.insert(b.hash(), Bytes::from(forged.encode()));
        let r = run(&m, &peers, &[b.hash()], quick()).await;
        assert_eq!(
            r.unwrap_err(),
            Unresolved::Missing(1),
            "a forged copy is verified"
        );
        // The very copy verified before is taken without verifying it again.
        peers.held.insert(b.hash(), Bytes::from(b.encode()));
        let r = run(&m, &peers, &[b.hash()], quick()).await.unwrap();
        assert_eq!(r.bundles, vec![b]);
    }

    #[tokio::test]
    async fn an_included_bundle_makes_the_proposal_invalid() {
        let m = pool();
        let b = bundle(1);
        m.on_commit(3, &[b.hash()]);
        let r = run(&m, &NoFetch, &[b.hash()], quick()).await;
        assert_eq!(
            r.unwrap_err(),
            Unresolved::Included {
                hash: b.hash(),
                height: 3
            }
        );
    }
}

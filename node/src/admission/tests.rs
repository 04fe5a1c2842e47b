//! Admission end to end on a real mempool and verifier: a group's outcomes, coalescing, the
//! submission queue at its limit, a full pool, a node low on disk.

use super::queue::SUBMIT_QUEUE;
use super::*;
use futures::FutureExt as _;
use lockstep_client::bundle::sign;
use lockstep_mempool::included::IncludedSet;
use lockstep_mempool::pool::PoolConfig;
use lockstep_p2p::{MessageId, PeerId, Verdict};
use parking_lot::Mutex as PlMutex;

/// Records what admission publishes.
#[derive(Default)]
struct Recorder {
    published: PlMutex<Vec<Bytes>>,
}

#[async_trait::async_trait]
impl BundleGossip for Recorder {
    async fn publish(&self, items: Vec<Bytes>) {
        self.published.lock().extend(items);
    }
    async fn report(&self, _id: MessageId, _from: PeerId, _v: Verdict) {}
    fn peers(&self) -> usize {
        0
    }
}

fn admission(pool: PoolConfig) -> (Arc<Admission>, Arc<Mempool>, Arc<Recorder>) {
    admission_with_disk(pool, crate::disk::DiskSpace::unlimited())
}

fn admission_with_disk(
    pool: PoolConfig,
    disk: Arc<crate::disk::DiskSpace>,
) -> (Arc<Admission>, Arc<Mempool>, Arc<Recorder>) {
    admission_with(pool, disk, Arc::new(NoPendingLog))
}

fn admission_with(
    pool: PoolConfig,
    disk: Arc<crate::disk::DiskSpace>,
    log: Arc<dyn PendingLog>,
) -> (Arc<Admission>, Arc<Mempool>, Arc<Recorder>) {
    let mempool = Arc::new(Mempool::new(pool, IncludedSet::new(100)));
    let (tip_tx, tip_rx) = watch::channel(Tip::default());
    std::mem::forget(tip_tx);
    let gossip = Arc::new(Recorder::default());
    let limits = Limits::default();
    let a = Admission::new(
        1,
        Arc::new(test_schedule()),
        0,
        limits,
        mempool.clone(),
        tip_rx,
        gossip.clone(),
        disk,
        log,
    );
    (a, mempool, gossip)
}

/// Four validators (keys 101..=104), chain 1.
fn test_schedule() -> lockstep_consensus::validators::Schedule {
    let set = lockstep_bundles::ValidatorSet::new(
        (101..=104)
            .map(|i| lockstep_bundles::Validator::new(key(i).verifying_key().to_bytes(), 1))
            .collect(),
    )
    .unwrap();
    lockstep_consensus::validators::Schedule::genesis(1, &set).unwrap()
}

fn key(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

/// A mix of every outcome: valid, bad signature, wrong chain, expired, undecodable,
/// a duplicate inside the group, and one already pending.
fn mixed() -> (Vec<Bytes>, Vec<Option<i32>>) {
    let good = |n: u64| Bytes::from(sign(&key(1), 1, n, 10, vec![(1, vec![n as u8])]).encode());
    let mut forged = sign(&key(2), 1, 7, 10, vec![(1, vec![7])]);
    forged.signature[5] ^= 1;
    let wrong_chain = sign(&key(3), 2, 8, 10, vec![(1, vec![8])]);
    let expired = sign(&key(4), 1, 9, 0, vec![(1, vec![9])]);
    let input = vec![
        good(1),
        Bytes::from(forged.encode()),
        good(2),
        Bytes::from(wrong_chain.encode()),
        Bytes::from_static(b"not a bundle"),
        Bytes::from(expired.encode()),
        good(1),
        good(3),
    ];
    let codes = vec![
        None,
        Some(4001),
        None,
        Some(4002),
        Some(4005),
        Some(4003),
        None,
        None,
    ];
    (input, codes)
}

fn codes(out: &[Result<Hash, AdmitError>]) -> Vec<Option<i32>> {
    out.iter()
        .map(|r| r.as_ref().err().map(|e| e.code()))
        .collect()
}

#[tokio::test]
async fn a_group_gets_the_same_outcomes_as_one_by_one_submission() {
    let (input, expected) = mixed();
    let (one, pool_one, published_one) = admission(PoolConfig::default());
    let mut singly = Vec::new();
    for b in &input {
        singly.push(one.submit_bytes(b.clone(), Source::Rpc).await);
    }
    let (many, pool_many, published_many) = admission(PoolConfig::default());
    let grouped = many.submit_many(input.clone(), Source::Rpc).await;

    assert_eq!(codes(&singly), expected);
    assert_eq!(codes(&grouped), expected);
    for (a, b) in singly.iter().zip(&grouped) {
        if let (Ok(x), Ok(y)) = (a, b) {
            assert_eq!(x, y);
        }
    }
    // Three distinct valid bundles, each published once (the duplicate is idempotent).
    assert_eq!(pool_one.size().0, 3);
    assert_eq!(pool_many.size().0, 3);
    assert_eq!(published_one.published.lock().len(), 3);
    assert_eq!(published_many.published.lock().len(), 3);
}

#[tokio::test]
async fn concurrent_single_submissions_are_coalesced_and_each_answered() {
    let (a, pool, _) = admission(PoolConfig::default());
    let bundles: Vec<Bytes> = (0..600u64)
        .map(|n| Bytes::from(sign(&key((n % 50) as u8 + 1), 1, n, 10, vec![(1, vec![1])]).encode()))
        .collect();
    let tasks: Vec<_> = bundles
        .iter()
        .cloned()
        .map(|b| {
            let a = a.clone();
            tokio::spawn(async move { a.submit_bytes(b, Source::Gossip).await })
        })
        .collect();
    for (t, b) in tasks.into_iter().zip(&bundles) {
        let hash = t.await.expect("task").expect("admitted");
        assert_eq!(hash, SignedBundle::hash_of_encoding(b));
    }
    assert_eq!(pool.size().0, 600);
    // Coalesced: the 600 submissions, queued together, were admitted in groups of up to
    // CHUNK, not one by one.
    let groups = a.groups_admitted();
    assert!(
        groups <= 600 / 2,
        "600 concurrent submissions took {groups} groups"
    );
    assert!(groups >= 600_u64.div_ceil(super::queue::CHUNK as u64));
}

#[tokio::test]
async fn a_full_pool_refuses_with_4006_and_keeps_what_it_has() {
    let pool = PoolConfig {
        max_count: 2,
        ..PoolConfig::default()
    };
    let (a, mempool, _) = admission(pool);
    let input: Vec<Bytes> = (0..4u64)
        .map(|n| Bytes::from(sign(&key(9), 1, n, 10, vec![(1, vec![1])]).encode()))
        .collect();
    let out = a.submit_many(input, Source::Rpc).await;
    assert_eq!(codes(&out), vec![None, None, Some(4006), Some(4006)]);
    assert_eq!(mempool.size().0, 2);
}

#[tokio::test]
async fn a_node_low_on_disk_refuses_submissions_but_takes_gossip_and_stays_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    // More free space required than any disk has.
    let low = crate::disk::DiskSpace::new(dir.path(), u64::MAX).unwrap();
    let (a, mempool, published) = admission_with_disk(PoolConfig::default(), low);
    let b = |n: u64| Bytes::from(sign(&key(5), 1, n, 10, vec![(1, vec![n as u8])]).encode());

    let refused = a.submit_bytes(b(1), Source::Rpc).await;
    let err = refused.unwrap_err();
    assert_eq!(err.code(), 4006);
    assert!(err.to_string().contains("disk is nearly full"), "{err}");
    // Batches of submissions too, and nothing was taken or published.
    assert_eq!(
        codes(&a.submit_many(vec![b(2), b(3)], Source::Rpc).await),
        vec![Some(4006), Some(4006)]
    );
    assert_eq!(mempool.size().0, 0);

    // Peers' bundles still come in (the network includes them anyway)...
    let gossiped = a.submit_bytes(b(4), Source::Gossip).await.unwrap();
    assert_eq!(mempool.size().0, 1);
    assert!(published.published.lock().is_empty());
    // ...and resubmitting a pending bundle still answers its hash.
    assert_eq!(a.submit_bytes(b(4), Source::Rpc).await.unwrap(), gossiped);
}

#[tokio::test]
async fn the_submit_queue_holds_submit_queue_submissions_then_says_busy() {
    // A current-thread runtime: the task draining the queue runs only once this test waits,
    // so each submission polled once below stays queued.
    let (a, mempool, _) = admission(PoolConfig::default());
    let b = Bytes::from(sign(&key(6), 1, 1, 10, vec![(1, vec![1])]).encode());
    for n in 0..SUBMIT_QUEUE {
        let queued = a.submit_bytes(b.clone(), Source::Rpc).now_or_never();
        assert!(
            queued.is_none(),
            "submission {n} was answered before it was admitted"
        );
    }
    let refused = a.submit_bytes(b.clone(), Source::Rpc).now_or_never();
    let err = refused.expect("refused at once").unwrap_err();
    assert_eq!(err.code(), 4006);
    assert!(err.to_string().contains("admission queue is full"), "{err}");
    // Once the queue drains (the draining task runs while this one waits), submissions are
    // taken again.
    let retry = async {
        loop {
            match a.submit_bytes(b.clone(), Source::Rpc).await {
                Err(e) if e.code() == 4006 => tokio::task::yield_now().await,
                other => return other,
            }
        }
    };
    let hash = tokio::time::timeout(std::time::Duration::from_secs(60), retry)
        .await
        .expect("the queue drains")
        .unwrap();
    assert_eq!(hash, SignedBundle::hash_of_encoding(&b));
    assert_eq!(mempool.size().0, 1);
}

/// Records what admission makes durable; fails while `fail` is set.
#[derive(Default)]
struct AckLog {
    records: PlMutex<Vec<PendingRecord>>,
    fail: std::sync::atomic::AtomicBool,
}

impl PendingLog for AckLog {
    fn record(&self, records: &[PendingRecord]) -> Result<(), String> {
        if self.fail.load(std::sync::atomic::Ordering::Relaxed) {
            return Err("disk on fire".into());
        }
        self.records.lock().extend_from_slice(records);
        Ok(())
    }
}

#[tokio::test]
async fn a_submission_is_answered_once_it_is_durable_and_busy_when_it_cannot_be() {
    let log = Arc::new(AckLog::default());
    let (a, mempool, _) = admission_with(
        PoolConfig::default(),
        crate::disk::DiskSpace::unlimited(),
        log.clone(),
    );
    let b = |n: u64| sign(&key(7), 1, n, 10, vec![(1, vec![n as u8])]);
    let recorded = || -> Vec<Hash> { log.records.lock().iter().map(|r| r.hash).collect() };

    // Submitted here: recorded, as admitted, before the answer.
    let h1 = a
        .submit_bytes(b(1).encode().into(), Source::Rpc)
        .await
        .unwrap();
    assert_eq!(recorded(), vec![h1]);
    let r = log.records.lock()[0].clone();
    assert_eq!((r.valid_until, r.admitted_at), (10, 0));
    assert_eq!(&r.encoded[..], &b(1).encode()[..]);

    // From a peer: not recorded (nobody was answered)…
    let h2 = a
        .submit_bytes(b(2).encode().into(), Source::Gossip)
        .await
        .unwrap();
    assert_eq!(recorded(), vec![h1]);
    // …until a user submits it here: then the pool's copy is.
    a.submit_bytes(b(2).encode().into(), Source::Rpc)
        .await
        .unwrap();
    assert_eq!(recorded(), vec![h1, h2]);

    // A write that fails answers 4006, and the same bundle may be submitted again.
    log.fail.store(true, std::sync::atomic::Ordering::Relaxed);
    let err = a
        .submit_bytes(b(3).encode().into(), Source::Rpc)
        .await
        .unwrap_err();
    assert_eq!(err.code(), 4006);
    assert!(err.to_string().contains("recorded durably"), "{err}");
    log.fail.store(false, std::sync::atomic::Ordering::Relaxed);
    let h3 = a
        .submit_bytes(b(3).encode().into(), Source::Rpc)
        .await
        .unwrap();
    assert_eq!(recorded(), vec![h1, h2, h3]);
    assert_eq!(mempool.size().0, 3);
}

// ---------------------------------------------------------------------------------------------
// Signatures are part of the dedupe (ADR-023): a bundle's hash covers its body only, so a copy
// of a known bundle is that bundle only if its signature is the one verified here.

/// `b` with its signature's last byte flipped: the same body, so the same hash, and a
/// signature that does not verify.
fn forged(b: &SignedBundle) -> SignedBundle {
    let mut f = b.clone();
    f.signature[63] ^= 1;
    assert_eq!(f.hash(), b.hash());
    f
}

#[tokio::test]
async fn a_forged_copy_of_a_pending_bundle_is_refused_with_4001() {
    let (a, mempool, _) = admission(PoolConfig::default());
    let b = sign(&key(11), 1, 1, 10, vec![(1, vec![1])]);
    let hash = a
        .submit_bytes(b.encode().into(), Source::Gossip)
        .await
        .unwrap();
    for source in [Source::Rpc, Source::Gossip] {
        let err = a
            .submit_bytes(forged(&b).encode().into(), source)
            .await
            .expect_err("a forged copy of a pending bundle is refused");
        assert_eq!(err.code(), 4001, "{source:?}: {err}");
        // From a peer: its fault (an honest peer relays only copies it verified).
        assert!(err.is_bad_peer(), "{err}");
    }
    // The pool keeps the copy it verified; the genuine copy is still idempotent.
    let kept = mempool.pending_many(&[hash]).remove(0).expect("pending");
    assert_eq!(kept.bundle.signature, b.signature);
    assert_eq!(
        a.submit_bytes(b.encode().into(), Source::Rpc)
            .await
            .unwrap(),
        hash
    );
}

#[tokio::test]
async fn a_forged_copy_of_an_included_bundle_is_refused_with_4001() {
    let (a, mempool, _) = admission(PoolConfig::default());
    let b = sign(&key(12), 1, 1, 10, vec![(1, vec![1])]);
    mempool.on_commit(1, &[b.hash()]);
    let err = a
        .submit_bytes(forged(&b).encode().into(), Source::Rpc)
        .await
        .expect_err("a forged copy of an included bundle is refused");
    assert_eq!(err.code(), 4001, "{err}");
    // The genuine copy is answered with its hash (idempotent).
    assert_eq!(
        a.submit_bytes(b.encode().into(), Source::Rpc)
            .await
            .unwrap(),
        b.hash()
    );
}

#[tokio::test]
async fn a_bundle_verified_in_a_proposal_skips_verification_only_with_the_same_signature() {
    // A pool of one, full: what a proposal brings is only remembered as verified.
    let (a, mempool, _) = admission(PoolConfig {
        max_count: 1,
        ..PoolConfig::default()
    });
    let filler = sign(&key(13), 1, 1, 10, vec![(1, vec![1])]);
    a.submit_bytes(filler.encode().into(), Source::Gossip)
        .await
        .unwrap();
    let b = sign(&key(14), 1, 2, 10, vec![(1, vec![2])]);
    let verified = Admitted {
        hash: b.hash(),
        bundle: Arc::new(b.clone()),
        encoded: b.encode().into(),
    };
    mempool.insert_from_proposal(vec![verified], 1);
    assert_eq!(mempool.size().0, 1, "remembered as verified, not pending");
    let err = a
        .submit_bytes(forged(&b).encode().into(), Source::Gossip)
        .await
        .expect_err("another signature is verified, and this one fails");
    assert_eq!(err.code(), 4001, "{err}");
    // The copy verified in the proposal passes every check but the pool's room.
    let err = a
        .submit_bytes(b.encode().into(), Source::Gossip)
        .await
        .unwrap_err();
    assert_eq!(err.code(), 4006, "{err}");
}

//! The host in-process: hosts driven by the `AppMsg`s Malachite's engine would send, over an
//! in-memory [`ChainStore`], a real [`Mempool`] and a fetcher that answers from a map. One
//! host proposes, others validate, all decide; hosts restart over their stores; proposals
//! that break a rule are refused. What the engine does between those messages (votes,
//! timeouts) is Malachite's and is not simulated here: each test plays the engine's part.

use super::validate::Refused;
use super::{Host, HostConfig, Tip};
use crate::context::{BlockId, Height, LockstepContext as Ctx, ProposalPart, ValidatorAddress};
use crate::resolve::BundleFetch;
use crate::signing::LockstepSigner;
use crate::store::{ChainStore, Committed, Result as StoreResult, StoreError, UndecidedRecord};
use crate::streaming::{split, CompleteStream};
use crate::validators::{Schedule, SetRecord};
use bytes::Bytes;
use lockstep_bundles::{
    Address, Block, BlockHeader, BundleBody, CommitCertificate, Hash, Leg, Limits, SignedBundle,
    Validator, ValidatorSet,
};
use lockstep_mempool::included::IncludedSet;
use lockstep_mempool::pool::PoolConfig;
use lockstep_mempool::{Admitted, Mempool, Origin, Status};
use malachitebft_app_channel::app::consensus::{MisbehaviorEvidence, ProposedValue, Role};
use malachitebft_app_channel::app::engine::host::{Next, SyncedValueOutcome};
use malachitebft_app_channel::app::streaming::{StreamContent, StreamMessage};
use malachitebft_app_channel::app::types::core::ValidatorSet as _;
use malachitebft_app_channel::app::types::core::{
    CommitCertificate as McCertificate, Context as _, LinearTimeouts, NilOrVal, Round, Validity,
    VoteExtensions,
};
use malachitebft_app_channel::app::types::PeerId;
use malachitebft_app_channel::{AppMsg, NetworkMsg, Signer as _};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, watch};

const CHAIN: u64 = 7;
/// How long a test waits for something that should happen at once.
const DEADLINE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// An in-memory store, with the semantics the RocksDB store has.

#[derive(Default)]
struct Mem {
    chain: BTreeMap<u64, (BlockHeader, Vec<u8>, Vec<Hash>, CommitCertificate)>,
    undecided: Vec<UndecidedRecord>,
    sets: Vec<SetRecord>,
    /// Every commit fails (a disk that refuses writes).
    fail_commits: bool,
}

#[derive(Default)]
struct MemStore(Mutex<Mem>);

impl MemStore {
    fn height(&self) -> u64 {
        self.0.lock().chain.keys().next_back().copied().unwrap_or(0)
    }
}

impl ChainStore for MemStore {
    fn latest(&self) -> StoreResult<Option<BlockHeader>> {
        Ok(self
            .0
            .lock()
            .chain
            .values()
            .next_back()
            .map(|c| c.0.clone()))
    }
    fn earliest(&self) -> StoreResult<u64> {
        Ok(self.0.lock().chain.keys().next().copied().unwrap_or(0))
    }
    fn block_bytes(&self, height: u64) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.0.lock().chain.get(&height).map(|c| c.1.clone()))
    }
    fn certificate(&self, height: u64) -> StoreResult<Option<CommitCertificate>> {
        Ok(self.0.lock().chain.get(&height).map(|c| c.3.clone()))
    }
    fn block_by_hash(&self, hash: &Hash) -> StoreResult<Option<Bytes>> {
        let m = self.0.lock();
        let decided = m.chain.values().find(|c| c.0.hash() == *hash);
        Ok(decided.map(|c| Bytes::from(c.1.clone())).or_else(|| {
            m.undecided
                .iter()
                .find(|r| r.block_hash == *hash && !r.block.is_empty())
                .map(|r| r.block.clone())
        }))
    }
    fn commit(
        &self,
        header: &BlockHeader,
        block: &[u8],
        hashes: &[Hash],
        certificate: &CommitCertificate,
        new_set: Option<&SetRecord>,
    ) -> StoreResult<Committed> {
        let mut m = self.0.lock();
        if m.fail_commits {
            return Err(StoreError("the disk refuses the write".into()));
        }
        if let Some(c) = m.chain.get(&header.height) {
            return if c.0.hash() == header.hash() {
                Ok(Committed::AlreadyPresent)
            } else {
                Err(StoreError(format!(
                    "a different block is committed at {}",
                    header.height
                )))
            };
        }
        m.chain.insert(
            header.height,
            (
                header.clone(),
                block.to_vec(),
                hashes.to_vec(),
                certificate.clone(),
            ),
        );
        m.undecided.retain(|r| r.height != header.height);
        m.sets.extend(new_set.cloned());
        Ok(Committed::Written)
    }
    fn validator_sets(&self) -> StoreResult<Vec<SetRecord>> {
        Ok(self.0.lock().sets.clone())
    }
    fn put_undecided(&self, record: &UndecidedRecord) -> StoreResult<()> {
        let mut m = self.0.lock();
        let decided = m.chain.keys().next_back().copied().unwrap_or(0);
        if record.height > decided {
            m.undecided.push(record.clone());
        }
        Ok(())
    }
    fn undecided(&self, height: u64) -> StoreResult<Vec<UndecidedRecord>> {
        let m = self.0.lock();
        Ok(m.undecided
            .iter()
            .filter(|r| r.height == height)
            .cloned()
            .collect())
    }
    fn included_since(&self, from: u64) -> StoreResult<Vec<(u64, Vec<Hash>)>> {
        let m = self.0.lock();
        Ok(m.chain
            .range(from..)
            .map(|(h, c)| (*h, c.2.clone()))
            .collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Peers that answer a fetch from a map.

#[derive(Default)]
struct MapFetch(Mutex<HashMap<Hash, Bytes>>);

impl MapFetch {
    fn offer(&self, bytes: Bytes) {
        self.0
            .lock()
            .insert(SignedBundle::hash_of_encoding(&bytes), bytes);
    }

    /// Offers `bytes` as what peers answer for the id `hash` (a block hash).
    fn offer_as(&self, hash: Hash, bytes: Bytes) {
        self.0.lock().insert(hash, bytes);
    }
}

#[async_trait::async_trait]
impl BundleFetch for MapFetch {
    async fn fetch(&self, hashes: Vec<Hash>, _: Address) -> Vec<Option<Bytes>> {
        let m = self.0.lock();
        hashes.iter().map(|h| m.get(h).cloned()).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Validators, bundles and a network of hosts.

fn secret(i: usize) -> [u8; 32] {
    [i as u8 + 1; 32]
}

fn public(i: usize) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(&secret(i))
        .verifying_key()
        .to_bytes()
}

fn address(i: usize) -> Address {
    Address::from_public_key(&public(i))
}

fn signer(i: usize) -> LockstepSigner {
    LockstepSigner::new(secret(i).into(), CHAIN)
}

fn validators(n: usize) -> ValidatorSet {
    ValidatorSet::new((0..n).map(|i| Validator::new(public(i), 1)).collect())
        .expect("a valid validator set")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A bundle signed by its own user (`seed`), for `chain`, valid until height 50.
fn bundle_for(chain: u64, seed: u64, data: usize) -> (Hash, Bytes) {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[31] = 0xb5;
    let key = ed25519_dalek::SigningKey::from_bytes(&s);
    let b = BundleBody {
        chain_id: chain,
        signer: key.verifying_key().to_bytes(),
        nonce: seed,
        valid_until: 50,
        legs: vec![Leg {
            rollup_id: 1 + seed % 3,
            data: vec![seed as u8; data].into(),
        }],
    }
    .sign(&key);
    (b.hash(), Bytes::from(b.encode()))
}

fn bundle(seed: u64) -> (Hash, Bytes) {
    bundle_for(CHAIN, seed, 16)
}

fn admitted(encoded: &Bytes) -> Admitted {
    let b = SignedBundle::decode_shared(encoded, &Limits::default()).expect("decodes");
    Admitted {
        hash: b.hash(),
        bundle: Arc::new(b),
        encoded: encoded.clone(),
    }
}

struct Node {
    index: usize,
    host: Host,
    net: mpsc::Sender<NetworkMsg<Ctx>>,
    published: mpsc::Receiver<NetworkMsg<Ctx>>,
    store: Arc<MemStore>,
    mempool: Arc<Mempool>,
    fetch: Arc<MapFetch>,
    tip: watch::Receiver<Tip>,
}

struct Setup {
    limits: Limits,
    propose_wait: Duration,
    /// The validator's signed-height floor file (none: no floor).
    floor: Option<std::path::PathBuf>,
    #[cfg(feature = "byzantine")]
    byzantine: super::ByzantineProposer,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            limits: Limits::default(),
            propose_wait: Duration::ZERO,
            floor: None,
            #[cfg(feature = "byzantine")]
            byzantine: Default::default(),
        }
    }
}

impl Node {
    /// Validator `index` of a 4-validator chain, with a fresh store and pool.
    fn new(index: usize) -> Node {
        Node::with(index, Setup::default())
    }

    fn with(index: usize, setup: Setup) -> Node {
        let mempool = Arc::new(Mempool::new(
            PoolConfig::default(),
            IncludedSet::new(setup.limits.max_ttl),
        ));
        Node::over(
            index,
            setup,
            Arc::new(MemStore::default()),
            mempool,
            Arc::new(MapFetch::default()),
        )
    }

    /// A host over an existing store and pool (a restart).
    fn over(
        index: usize,
        setup: Setup,
        store: Arc<MemStore>,
        mempool: Arc<Mempool>,
        fetch: Arc<MapFetch>,
    ) -> Node {
        let cfg = HostConfig {
            chain_id: CHAIN,
            limits: setup.limits,
            address: address(index),
            schedule: Arc::new(
                Schedule::load(
                    CHAIN,
                    &validators(4),
                    store.validator_sets().expect("the store reads"),
                )
                .expect("the stored sets load"),
            ),
            start_at: 0,
            timeouts: LinearTimeouts::default(),
            target_block_time: None,
            propose_wait: setup.propose_wait,
            #[cfg(feature = "byzantine")]
            byzantine: setup.byzantine.clone(),
        };
        let (tip_tx, tip) = watch::channel(Tip::default());
        let signer = match &setup.floor {
            Some(path) => signer(index).with_floor(Arc::new(
                crate::signing::SignFloor::open(path).expect("the floor opens"),
            )),
            None => signer(index),
        };
        let host = Host::new(
            cfg,
            signer,
            store.clone(),
            mempool.clone(),
            fetch.clone(),
            tip_tx,
        )
        .expect("host starts");
        let (net, published) = mpsc::channel(1024);
        Node {
            index,
            host,
            net,
            published,
            store,
            mempool,
            fetch,
            tip,
        }
    }

    /// The same validator restarted: a new host over this one's store and peers, with an
    /// empty pool (pending bundles do not survive a restart).
    fn restart(self, setup: Setup) -> Node {
        let Node {
            index,
            store,
            fetch,
            ..
        } = self;
        let mempool = Arc::new(Mempool::new(
            PoolConfig::default(),
            IncludedSet::new(setup.limits.max_ttl),
        ));
        Node::over(index, setup, store, mempool, fetch)
    }

    async fn ask<T>(&mut self, msg: impl FnOnce(oneshot::Sender<T>) -> AppMsg<Ctx>) -> T {
        let (tx, rx) = oneshot::channel();
        self.host
            .handle(msg(tx), &self.net)
            .await
            .expect("host handles the message");
        tokio::time::timeout(DEADLINE, rx)
            .await
            .expect("host answers in time")
            .expect("host answers")
    }

    fn pool(&self, bundles: &[&Bytes]) {
        for b in bundles {
            self.mempool
                .insert(admitted(b), self.store.height() + 1, Origin::Peer)
                .expect("pool has room");
        }
    }

    async fn ready(&mut self) -> u64 {
        self.ask(|reply| AppMsg::ConsensusReady { reply })
            .await
            .0
             .0
    }

    async fn start_round(&mut self, height: u64, round: u32) -> Vec<ProposedValue<Ctx>> {
        let proposer = proposer_of(height, round);
        let role = if proposer == self.index {
            Role::Proposer
        } else {
            Role::Validator
        };
        self.ask(|reply_value| AppMsg::StartedRound {
            height: Height(height),
            round: Round::new(round),
            proposer: ValidatorAddress(address(proposer)),
            role,
            reply_value,
        })
        .await
    }

    /// Asks for this node's proposal; returns its value id and the parts it published.
    async fn propose(
        &mut self,
        height: u64,
        round: u32,
    ) -> (BlockId, Vec<StreamMessage<ProposalPart>>) {
        let value = self
            .ask(|reply| AppMsg::GetValue {
                height: Height(height),
                round: Round::new(round),
                timeout: Duration::from_secs(1),
                reply,
            })
            .await;
        assert_eq!(
            (value.height, value.round),
            (Height(height), Round::new(round))
        );
        (value.value, self.drain_parts())
    }

    fn drain_parts(&mut self) -> Vec<StreamMessage<ProposalPart>> {
        let mut parts = Vec::new();
        while let Ok(NetworkMsg::PublishProposalPart(p)) = self.published.try_recv() {
            parts.push(p);
        }
        parts
    }

    /// Hands a peer's parts to this host; returns what it answers for the last one.
    async fn receive(
        &mut self,
        parts: &[StreamMessage<ProposalPart>],
    ) -> Option<ProposedValue<Ctx>> {
        let from = peer_id();
        let mut last = None;
        for part in parts {
            let part = part.clone();
            last = self
                .ask(|reply| AppMsg::ReceivedProposalPart {
                    from,
                    published_by: Some(from),
                    part,
                    reply,
                })
                .await;
        }
        last
    }

    async fn decide(&mut self, cert: &McCertificate<Ctx>) -> Next<Ctx> {
        let certificate = cert.clone();
        self.ask(|reply| AppMsg::Decided {
            certificate,
            extensions: VoteExtensions::default(),
            reply,
        })
        .await;
        let certificate = cert.clone();
        self.ask(|reply| AppMsg::Finalized {
            certificate,
            extensions: VoteExtensions::default(),
            evidence: MisbehaviorEvidence {
                proposals: Default::default(),
                votes: Default::default(),
            },
            reply,
        })
        .await
    }

    fn block(&self, height: u64) -> Option<Block> {
        self.store
            .block_bytes(height)
            .expect("store reads")
            .map(|b| Block::decode(&b).expect("stored block decodes"))
    }

    /// Waits until the store writer has recorded a proposal at `height`.
    async fn recorded(&self, height: u64) -> Vec<UndecidedRecord> {
        let until = Instant::now() + DEADLINE;
        loop {
            let r = self.store.undecided(height).expect("store reads");
            if !r.is_empty() {
                return r;
            }
            assert!(Instant::now() < until, "no proposal recorded at {height}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// A fresh peer id (a gossip identity).
fn peer_id() -> PeerId {
    let key = malachitebft_app_channel::app::types::Keypair::generate_ed25519();
    PeerId::from_multihash(key.public().to_peer_id().into()).expect("an ed25519 peer id")
}

fn proposer_of(height: u64, round: u32) -> usize {
    let set = crate::context::ValidatorSet::from_bundles(&validators(4)).expect("valid set");
    let p = Ctx { chain_id: CHAIN }
        .select_proposer(&set, Height(height), Round::new(round))
        .address;
    (0..4)
        .find(|&i| ValidatorAddress(address(i)) == p)
        .expect("the proposer is one of the four")
}

/// Any validator other than `not`.
fn other_than(not: usize) -> usize {
    (not + 1) % 4
}

/// A commit certificate for `value` at `(height, round)`, signed by validators 0..3 (a
/// quorum of the four).
async fn certificate(height: u64, round: u32, value: BlockId) -> McCertificate<Ctx> {
    let ctx = Ctx { chain_id: CHAIN };
    let mut votes = Vec::new();
    for i in 0..3 {
        let vote = ctx.new_precommit(
            Height(height),
            Round::new(round),
            NilOrVal::Val(value),
            ValidatorAddress(address(i)),
        );
        votes.push(signer(i).sign_vote(vote).await.expect("signs"));
    }
    let c = McCertificate::new(Height(height), Round::new(round), value, votes);
    assert_eq!(c.commit_signatures.len(), 3);
    c
}

fn bundle_hashes(block: &Block) -> Vec<Hash> {
    block.bundles.iter().map(SignedBundle::hash).collect()
}

// ---------------------------------------------------------------------------------------------
// Propose, validate, decide.

#[tokio::test]
async fn a_proposal_is_validated_by_its_peers_and_the_decided_block_is_the_same_everywhere() {
    let p = proposer_of(1, 0);
    let mut nodes: Vec<Node> = (0..4).map(Node::new).collect();
    let bundles: Vec<(Hash, Bytes)> = (0..5).map(bundle).collect();
    for n in &mut nodes {
        n.pool(&bundles.iter().map(|b| &b.1).collect::<Vec<_>>());
        assert_eq!(n.ready().await, 1);
        assert!(n.start_round(1, 0).await.is_empty());
    }
    let (value, parts) = nodes[p].propose(1, 0).await;
    assert!(!parts.is_empty(), "the proposer publishes its proposal");
    for n in nodes.iter_mut().filter(|n| n.index != p) {
        let pv = n
            .receive(&parts)
            .await
            .expect("a complete proposal gets a verdict");
        assert_eq!(pv.value, value);
        assert_eq!(pv.validity, Validity::Valid);
        assert_eq!(pv.proposer, ValidatorAddress(address(p)));
    }
    let cert = certificate(1, 0, value).await;
    for n in &mut nodes {
        assert!(matches!(n.decide(&cert).await, Next::Start(Height(2), _)));
        assert_eq!(n.tip.borrow().height, 1);
        assert_eq!(n.tip.borrow().hash, value.0);
        // Included bundles leave the pool and are known as included.
        assert_eq!(n.mempool.size().0, 0);
        assert_eq!(
            n.mempool.status(&bundles[0].0),
            Status::Included { height: 1 }
        );
    }
    let block = nodes[p].block(1).expect("the proposer committed block 1");
    assert_eq!(block.hash(), value.0);
    let mut included = bundle_hashes(&block);
    included.sort();
    let mut sent: Vec<Hash> = bundles.iter().map(|b| b.0).collect();
    sent.sort();
    assert_eq!(included, sent, "every pending bundle is in the block");
    for n in &nodes {
        assert_eq!(
            n.store.block_bytes(1).unwrap(),
            nodes[p].store.block_bytes(1).unwrap()
        );
        let c = n.store.certificate(1).unwrap().expect("certificate stored");
        assert_eq!(
            (c.height, c.block_hash, c.signatures.len()),
            (1, value.0, 3)
        );
    }
    // A peer that syncs gets the block and its certificate back.
    let served = nodes[other_than(p)]
        .ask(|reply| AppMsg::GetDecidedValues {
            range: Height(1)..=Height(3),
            reply,
        })
        .await;
    assert_eq!(served.len(), 1, "only height 1 is decided");
    assert_eq!(served[0].certificate.value_id, value);
    assert_eq!(
        Block::decode(&served[0].value_bytes).unwrap().hash(),
        value.0
    );
}

#[tokio::test]
async fn a_validator_fetches_the_bundles_it_lacks_and_keeps_them_pending() {
    let p = proposer_of(1, 0);
    let mut proposer = Node::new(p);
    let mut validator = Node::new(other_than(p));
    let (have, lack) = (bundle(1), bundle(2));
    proposer.pool(&[&have.1, &lack.1]);
    validator.pool(&[&have.1]);
    validator.fetch.offer(lack.1.clone());
    proposer.ready().await;
    validator.ready().await;
    validator.start_round(1, 0).await;
    let (value, parts) = proposer.propose(1, 0).await;
    let pv = validator.receive(&parts).await.expect("a verdict");
    assert_eq!((pv.value, pv.validity), (value, Validity::Valid));
    // What peers brought is pending here now, like a gossiped bundle.
    assert_eq!(validator.mempool.status(&lack.0), Status::Pending);
}

#[tokio::test]
async fn a_proposer_with_an_empty_pool_proposes_the_first_bundle_to_arrive() {
    let p = proposer_of(1, 0);
    let mut node = Node::with(
        p,
        Setup {
            propose_wait: Duration::from_secs(5),
            ..Setup::default()
        },
    );
    node.ready().await;
    node.start_round(1, 0).await;
    let (tx, mut rx) = oneshot::channel();
    node.host
        .handle(
            AppMsg::GetValue {
                height: Height(1),
                round: Round::new(0),
                timeout: Duration::from_secs(30),
                reply: tx,
            },
            &node.net,
        )
        .await
        .unwrap();
    assert!(
        rx.try_recv().is_err(),
        "an empty pool puts the proposal off"
    );
    let b = bundle(9);
    node.pool(&[&b.1]);
    // The deferred proposal comes back to the host loop (here: to this test) at once.
    let d = tokio::time::timeout(DEADLINE, node.host.deferred_rx.recv())
        .await
        .expect("the wait ends when a bundle arrives")
        .expect("deferred");
    node.host.propose_deferred(d, &node.net).await.unwrap();
    let value = rx.await.expect("the proposal is answered");
    let parts = node.drain_parts();
    assert_eq!(parts.len(), 1);
    let StreamContent::Data(ProposalPart::Whole { hashes, .. }) = &parts[0].content else {
        panic!("a small proposal is one whole part");
    };
    assert_eq!(hashes, &vec![b.0]);
    assert_eq!(node.host.blocks[&value.value.0].hashes, vec![b.0]);
}

#[tokio::test]
async fn a_decided_block_this_node_never_saw_is_fetched_by_its_hash_and_committed() {
    let p = proposer_of(1, 0);
    let mut proposer = Node::new(p);
    let mut late = Node::new(other_than(p));
    let b = bundle(8);
    proposer.pool(&[&b.1]);
    proposer.ready().await;
    late.ready().await;
    let (value, _parts) = proposer.propose(1, 0).await;
    // `late` never saw the proposal; its peers hold the block and answer its hash.
    let encoded = proposer.host.blocks[&value.0].encoded.clone();
    late.fetch.offer_as(value.0, encoded.clone());
    let cert = certificate(1, 0, value).await;
    let next = late.decide(&cert).await;
    assert!(
        matches!(next, Next::Start(Height(2), _)),
        "the height is committed and the next one starts, never restarted"
    );
    assert_eq!(late.tip.borrow().height, 1);
    assert_eq!(
        late.store.block_bytes(1).unwrap().as_deref(),
        Some(&encoded[..])
    );
    assert_eq!(late.mempool.status(&b.0), Status::Included { height: 1 });
}

#[tokio::test]
async fn a_decided_block_recorded_but_not_held_is_taken_from_the_store() {
    let p = proposer_of(1, 0);
    let mut proposer = Node::new(p);
    let mut node = Node::new(other_than(p));
    proposer.pool(&[&bundle(31).1]);
    proposer.ready().await;
    node.ready().await;
    let (value, _) = proposer.propose(1, 0).await;
    // The store has the proposal's record (with its body); the host does not hold it, and
    // no peer answers.
    node.store
        .put_undecided(&UndecidedRecord {
            height: 1,
            round: 0,
            valid_round: -1,
            proposer: address(p),
            block_hash: value.0,
            valid: true,
            block: proposer.host.blocks[&value.0].encoded.clone(),
        })
        .unwrap();
    let cert = certificate(1, 0, value).await;
    assert!(matches!(
        node.decide(&cert).await,
        Next::Start(Height(2), _)
    ));
    assert_eq!(node.block(1).map(|b| b.hash()), Some(value.0));
}

#[tokio::test]
async fn a_wrong_answer_for_a_decided_block_is_refused_and_the_block_asked_for_again() {
    let p = proposer_of(1, 0);
    let mut proposer = Node::new(p);
    let mut late = Node::new(other_than(p));
    proposer.pool(&[&bundle(32).1]);
    proposer.ready().await;
    late.ready().await;
    let (value, _) = proposer.propose(1, 0).await;
    let right = proposer.host.blocks[&value.0].encoded.clone();
    // Peers first answer with another block (it decodes and is whole, but is not the one
    // decided), then with bytes that are not a block at all.
    let other = Block::build(
        CHAIN,
        1,
        now_ms(),
        address(p),
        Hash::ZERO,
        validators(4).hash(),
        vec![],
        &[],
    );
    late.fetch.offer_as(value.0, Bytes::from(other.encode()));
    let fetch = late.fetch.clone();
    let cert = certificate(1, 0, value).await;
    let (next, ()) = tokio::join!(late.decide(&cert), async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        fetch.offer_as(value.0, Bytes::from_static(b"not a block"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        fetch.offer_as(value.0, right.clone());
    });
    assert!(matches!(next, Next::Start(Height(2), _)));
    assert_eq!(
        late.store.block_bytes(1).unwrap().as_deref(),
        Some(&right[..])
    );
}

#[tokio::test]
async fn a_commit_the_store_keeps_refusing_stops_the_host_rather_than_restart_the_height() {
    let p = proposer_of(1, 0);
    let mut proposer = Node::new(p);
    let mut node = Node::new(other_than(p));
    let b = bundle(33);
    for n in [&mut proposer, &mut node] {
        n.pool(&[&b.1]);
        n.ready().await;
        n.start_round(1, 0).await;
    }
    let (value, parts) = proposer.propose(1, 0).await;
    node.receive(&parts).await.expect("a verdict");
    node.store.0.lock().fail_commits = true;
    let cert = certificate(1, 0, value).await;
    let (reply, _answer) = oneshot::channel();
    let decided = AppMsg::Decided {
        certificate: cert.clone(),
        extensions: VoteExtensions::default(),
        reply,
    };
    let err = node
        .host
        .handle(decided, &node.net)
        .await
        .expect_err("the host stops");
    assert!(err.to_string().contains("cannot commit"), "{err}");
    assert_eq!(node.tip.borrow().height, 0, "nothing is published");
    assert_eq!(node.mempool.status(&b.0), Status::Pending);
    // Were the engine to finalize the height anyway, the host would stop, not restart it.
    let (reply, _answer) = oneshot::channel();
    let finalized = AppMsg::Finalized {
        certificate: cert,
        extensions: VoteExtensions::default(),
        evidence: MisbehaviorEvidence {
            proposals: Default::default(),
            votes: Default::default(),
        },
        reply,
    };
    let err = node
        .host
        .handle(finalized, &node.net)
        .await
        .expect_err("the host stops");
    assert!(err.to_string().contains("not committed"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Restarts.

#[tokio::test]
async fn after_a_restart_a_validator_reloads_the_proposal_it_held_and_commits_it() {
    let p = proposer_of(1, 0);
    let mut proposer = Node::new(p);
    let mut validator = Node::new(other_than(p));
    let b = bundle(3);
    proposer.pool(&[&b.1]);
    validator.pool(&[&b.1]);
    proposer.ready().await;
    validator.ready().await;
    validator.start_round(1, 0).await;
    let (value, parts) = proposer.propose(1, 0).await;
    validator.receive(&parts).await.expect("a verdict");
    assert_eq!(validator.recorded(1).await.len(), 1);

    // Restarted, with nothing in its pool: the record alone lets it vote and commit.
    let mut validator = validator.restart(Setup::default());
    assert_eq!(validator.mempool.size().0, 0, "a restart empties the pool");
    assert_eq!(validator.ready().await, 1);
    let reloaded = validator.start_round(1, 0).await;
    assert_eq!(
        reloaded.len(),
        1,
        "the engine is handed the proposal it saw"
    );
    assert_eq!(
        (reloaded[0].value, reloaded[0].validity),
        (value, Validity::Valid)
    );
    let cert = certificate(1, 0, value).await;
    assert!(matches!(
        validator.decide(&cert).await,
        Next::Start(Height(2), _)
    ));
    assert_eq!(validator.block(1).map(|b| b.hash()), Some(value.0));
    assert!(validator.store.undecided(1).unwrap().is_empty());

    // And after a restart past a commit, it starts at the next height from its store.
    let mut validator = validator.restart(Setup::default());
    assert_eq!(validator.ready().await, 2);
    assert_eq!(validator.tip.borrow().hash, value.0);
}

/// A path for a signed-height floor file of this test alone, with no file there yet.
fn fresh_floor(tag: &str) -> std::path::PathBuf {
    let floor = std::env::temp_dir().join(format!(
        "lockstep-host-floor-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_file(&floor);
    floor
}

/// Height 1's proposer, with a signed-height floor, proposes at round 0 and its proposal is
/// recorded; `lose` gives it back restarted without that block (over the setup to use), and
/// it is asked for round 0's proposal again. Returns the first value, the second value and
/// parts, and the restarted node (the floor file is removed).
async fn proposes_again_after_losing_its_block(
    tag: &str,
    lose: impl FnOnce(Node, Setup) -> Node,
) -> (BlockId, (BlockId, Vec<StreamMessage<ProposalPart>>), Node) {
    let floor = fresh_floor(tag);
    let setup = || Setup {
        floor: Some(floor.clone()),
        ..Setup::default()
    };
    let mut proposer = Node::with(proposer_of(1, 0), setup());
    proposer.pool(&[&bundle(4).1]);
    proposer.ready().await;
    let (value, first) = proposer.propose(1, 0).await;
    assert!(!first.is_empty());
    proposer.recorded(1).await;
    let mut proposer = lose(proposer, setup());
    proposer.pool(&[&bundle(5).1]);
    proposer.ready().await;
    proposer.start_round(1, 0).await;
    let again = proposer.propose(1, 0).await;
    let _ = std::fs::remove_file(&floor);
    (value, again, proposer)
}

#[tokio::test]
async fn a_proposer_that_lost_its_proposal_with_its_store_announces_the_same_block_again() {
    // The store (with the proposal's record) is lost — a full disk refused the write, or the
    // data directory was deleted — but not the floor beside the key.
    let (value, (again, parts), mut proposer) =
        proposes_again_after_losing_its_block("lost", |node, setup| Node::with(node.index, setup))
            .await;
    assert_eq!(
        again, value,
        "the same block, never a second one for the round"
    );
    assert!(
        parts.is_empty(),
        "its block is gone: announced without parts"
    );
    // The next round it leads is a new proposal.
    let later = 4;
    assert_eq!(proposer_of(1, later), proposer.index);
    proposer.start_round(1, later).await;
    let (fresh, parts) = proposer.propose(1, later).await;
    assert_ne!(fresh, value);
    assert!(!parts.is_empty());
}

#[tokio::test]
async fn a_proposer_whose_recorded_proposal_no_longer_reads_announces_the_same_block_again() {
    // Found by the fault runner: a validator restarted over a store whose record of its own
    // proposal held a block that did not decode remembered the proposal without its block,
    // built another for the same round, had it refused by its floor, and stopped.
    let (value, (again, parts), _) =
        proposes_again_after_losing_its_block("unread", |node, setup| {
            // The record is there, its block bytes no longer decode.
            for r in &mut node.store.0.lock().undecided {
                r.block = Bytes::from_static(b"not a block");
            }
            node.restart(setup)
        })
        .await;
    assert_eq!(
        again, value,
        "the same block, never a second one for the round"
    );
    assert!(
        parts.is_empty(),
        "its block is unreadable: announced without parts"
    );
}

#[tokio::test]
async fn a_restarted_proposer_proposes_the_same_block_again_in_the_same_round() {
    let p = proposer_of(1, 0);
    let mut proposer = Node::new(p);
    proposer.pool(&[&bundle(4).1]);
    proposer.ready().await;
    let (value, first) = proposer.propose(1, 0).await;
    proposer.recorded(1).await;
    let mut proposer = proposer.restart(Setup::default());
    // The pool changed meanwhile; a second, different block for the same round would be
    // equivocation.
    proposer.pool(&[&bundle(5).1]);
    proposer.ready().await;
    let known = proposer.start_round(1, 0).await;
    assert_eq!(
        known.iter().map(|pv| pv.value).collect::<Vec<_>>(),
        vec![value]
    );
    let (again, parts) = proposer.propose(1, 0).await;
    assert_eq!(again, value);
    assert_eq!(parts.len(), first.len());
    // In a later round it proposes again (round-robin brings it back at round 4), consensus
    // asks it to restream the value it locked on in round 0: the same block, for round 4.
    let later = 4;
    assert_eq!(proposer_of(1, later), p);
    proposer
        .host
        .handle(
            AppMsg::RestreamProposal {
                height: Height(1),
                round: Round::new(later),
                valid_round: Round::new(0),
                address: ValidatorAddress(address(p)),
                value_id: value,
            },
            &proposer.net,
        )
        .await
        .unwrap();
    let restreamed = proposer.drain_parts();
    assert!(!restreamed.is_empty(), "the locked value is streamed again");
    let mut validator = Node::new(other_than(p));
    validator.pool(&[&bundle(4).1]);
    validator.ready().await;
    validator.start_round(1, later).await;
    let pv = validator.receive(&restreamed).await.expect("a verdict");
    assert_eq!(
        (pv.value, pv.validity, pv.round, pv.valid_round),
        (value, Validity::Valid, Round::new(later), Round::new(0))
    );
}

// ---------------------------------------------------------------------------------------------
// Value sync.

#[tokio::test]
async fn a_synced_block_is_checked_then_committed_and_garbage_is_the_peers_fault() {
    let p = proposer_of(1, 0);
    let mut proposer = Node::new(p);
    proposer.pool(&[&bundle(6).1]);
    proposer.ready().await;
    let (value, _) = proposer.propose(1, 0).await;
    let cert = certificate(1, 0, value).await;
    proposer.decide(&cert).await;
    let bytes = Bytes::from(proposer.store.block_bytes(1).unwrap().unwrap());

    let mut behind = Node::new(other_than(p));
    behind.ready().await;
    let garbage = behind
        .ask(|reply| AppMsg::ProcessSyncedValue {
            height: Height(1),
            round: Round::new(0),
            proposer: ValidatorAddress(address(p)),
            value_bytes: Bytes::from_static(b"not a block"),
            reply,
        })
        .await;
    assert!(matches!(garbage, SyncedValueOutcome::PeerFault));
    let wrong_height = behind
        .ask(|reply| AppMsg::ProcessSyncedValue {
            height: Height(2),
            round: Round::new(0),
            proposer: ValidatorAddress(address(p)),
            value_bytes: bytes.clone(),
            reply,
        })
        .await;
    assert!(matches!(wrong_height, SyncedValueOutcome::PeerFault));
    let synced = behind
        .ask(|reply| AppMsg::ProcessSyncedValue {
            height: Height(1),
            round: Round::new(0),
            proposer: ValidatorAddress(address(p)),
            value_bytes: bytes.clone(),
            reply,
        })
        .await;
    let SyncedValueOutcome::Verdict(pv) = synced else {
        panic!("a valid synced block gets a verdict");
    };
    assert_eq!((pv.value, pv.validity), (value, Validity::Valid));
    assert!(matches!(
        behind.decide(&cert).await,
        Next::Start(Height(2), _)
    ));
    assert!(behind.tip.borrow().synced, "the tip says it came by sync");
    assert_eq!(
        behind.store.block_bytes(1).unwrap().as_deref(),
        Some(&bytes[..])
    );
}

// ---------------------------------------------------------------------------------------------
// Refused proposals.

/// A proposal for height 1 round 0 as a (possibly lying) proposer would stream it.
struct Forged {
    header: BlockHeader,
    hashes: Vec<Hash>,
    /// Who signs the parts.
    signed_by: usize,
    /// Who the parts say proposed.
    claimed: usize,
}

impl Forged {
    /// An honest proposal of `bundles` (in order) by height 1's proposer.
    fn honest(bundles: &[(Hash, Bytes)]) -> Forged {
        Forged::honest_at(1, Hash::ZERO, bundles)
    }

    /// An honest proposal at `height` (round 0) on top of `parent`.
    fn honest_at(height: u64, parent: Hash, bundles: &[(Hash, Bytes)]) -> Forged {
        let p = proposer_of(height, 0);
        let decoded: Vec<SignedBundle> = bundles
            .iter()
            .map(|b| (*admitted(&b.1).bundle).clone())
            .collect();
        let hashes: Vec<Hash> = bundles.iter().map(|b| b.0).collect();
        let block = Block::build(
            CHAIN,
            height,
            now_ms(),
            address(p),
            parent,
            validators(4).hash(),
            decoded,
            &hashes,
        );
        Forged {
            header: block.header,
            hashes,
            signed_by: p,
            claimed: p,
        }
    }

    fn height(&self) -> u64 {
        self.header.height
    }

    fn signature(&self) -> [u8; 64] {
        let id = BlockId(self.header.hash());
        let claimed = ValidatorAddress(address(self.claimed));
        signer(self.signed_by)
            .sign_part(self.height(), 0, &id, &claimed)
            .unwrap()
    }

    fn parts(&self) -> Vec<StreamMessage<ProposalPart>> {
        let (h, sig) = (self.height(), self.signature());
        split(
            h,
            0,
            -1,
            address(self.claimed),
            self.header.clone(),
            &self.hashes,
            sig,
        )
    }

    fn stream(&self) -> CompleteStream {
        CompleteStream {
            round: 0,
            pol_round: -1,
            proposer: address(self.claimed),
            header: self.header.clone(),
            hashes: self.hashes.clone(),
            signature: self.signature(),
        }
    }
}

/// What a validator (not the proposer) answers to `forged`: its verdict through the engine's
/// door, and the reason its checks give.
async fn verdict(
    setup: Setup,
    pool: &[&Bytes],
    fetchable: &[&Bytes],
    forged: &Forged,
) -> (Option<Validity>, Result<(), String>) {
    let mut node = Node::with(other_than(proposer_of(1, 0)), setup);
    node.pool(pool);
    for b in fetchable {
        node.fetch.offer((*b).clone());
    }
    node.ready().await;
    node.start_round(1, 0).await;
    judge(&mut node, forged).await
}

/// What `node`, already in `forged`'s round, answers to it: the reason its checks give, and
/// its verdict through the engine's door. A refused proposal must not be held for commit.
async fn judge(node: &mut Node, forged: &Forged) -> (Option<Validity>, Result<(), String>) {
    let reason = match node
        .host
        .check(&forged.stream(), forged.header.hash())
        .await
    {
        Ok(_) => Ok(()),
        Err(Refused::Invalid(r)) => Err(format!("invalid: {r}")),
        Err(Refused::Unavailable(r)) => Err(format!("unavailable: {r}")),
    };
    let pv = node.receive(&forged.parts()).await;
    if pv.as_ref().map(|pv| pv.validity) != Some(Validity::Valid) {
        assert!(
            node.host.blocks.is_empty(),
            "a refused proposal is not held for commit"
        );
    }
    (pv.map(|pv| pv.validity), reason)
}

/// A validator that has decided block 1 (built from `bundles`, pending on it and on the
/// proposer) and started height 2; and block 1's id.
async fn at_height_two(bundles: &[&Bytes]) -> (Node, BlockId) {
    let p = proposer_of(1, 0);
    let mut proposer = Node::new(p);
    let mut node = Node::new(other_than(p));
    for n in [&mut proposer, &mut node] {
        n.pool(bundles);
        n.ready().await;
        n.start_round(1, 0).await;
    }
    let (value, parts) = proposer.propose(1, 0).await;
    node.receive(&parts).await.expect("a verdict");
    let cert = certificate(1, 0, value).await;
    assert!(matches!(
        node.decide(&cert).await,
        Next::Start(Height(2), _)
    ));
    node.start_round(2, 0).await;
    (node, value)
}

#[track_caller]
fn assert_refused(
    got: (Option<Validity>, Result<(), String>),
    validity: Option<Validity>,
    reason: &str,
) {
    assert_eq!(got.0, validity, "verdict ({:?})", got.1);
    match got.1 {
        Err(r) => assert!(r.contains(reason), "reason {r:?} does not name {reason:?}"),
        Ok(()) => panic!("checks passed; expected {reason:?}"),
    }
}

#[tokio::test]
async fn an_honest_forged_proposal_passes_the_same_checks() {
    // The harness itself: an honestly built proposal is accepted, so each refusal below is
    // down to the one thing it changes.
    let b = [bundle(10), bundle(11)];
    let got = verdict(
        Setup::default(),
        &[&b[0].1, &b[1].1],
        &[],
        &Forged::honest(&b),
    )
    .await;
    assert_eq!(got, (Some(Validity::Valid), Ok(())));
}

#[tokio::test]
async fn a_proposal_from_a_validator_who_is_not_the_rounds_proposer_gets_no_verdict() {
    // Not the round's proposer's: it says nothing about the round's value, takes no room and
    // is not validated (ADR-023).
    let b = [bundle(12)];
    let mut f = Forged::honest(&b);
    f.claimed = other_than(f.claimed);
    f.signed_by = f.claimed;
    f.header.proposer = address(f.claimed);
    let got = verdict(Setup::default(), &[&b[0].1], &[], &f).await;
    assert_refused(got, None, "is not the proposer");
}

#[tokio::test]
async fn a_block_that_names_another_validator_as_its_proposer_is_invalid() {
    // The round's proposer streams and signs it, but the header credits someone else (who
    // would then be blamed for, or credited with, the block).
    let b = [bundle(30)];
    let mut f = Forged::honest(&b);
    f.header.proposer = address(other_than(f.claimed));
    let got = verdict(Setup::default(), &[&b[0].1], &[], &f).await;
    assert_refused(got, Some(Validity::Invalid), "names");
}

#[tokio::test]
async fn a_proposal_whose_parts_are_signed_by_another_key_gets_no_verdict() {
    // Anyone can send such a stream, for the real proposal's block too: were it judged
    // invalid, a forged copy seen first would make this node vote nil on the real block.
    let b = [bundle(13)];
    let mut f = Forged::honest(&b);
    f.signed_by = other_than(f.claimed);
    let got = verdict(Setup::default(), &[&b[0].1], &[], &f).await;
    assert_refused(got, None, "signature does not verify");
}

#[tokio::test]
async fn a_forged_copy_of_a_proposal_seen_first_does_not_stop_the_real_one() {
    let b = [bundle(41)];
    let real = Forged::honest(&b);
    let mut forged = Forged::honest(&b);
    forged.header = real.header.clone();
    forged.signed_by = other_than(real.claimed);
    let mut node = Node::new(other_than(proposer_of(1, 0)));
    node.pool(&[&b[0].1]);
    node.ready().await;
    node.start_round(1, 0).await;
    assert_eq!(node.receive(&forged.parts()).await, None);
    let pv = node.receive(&real.parts()).await.expect("a verdict");
    assert_eq!(pv.validity, Validity::Valid);
    assert!(
        node.host.evidence().list().is_empty(),
        "a forgery is nobody's evidence"
    );
}

#[tokio::test]
async fn a_proposal_that_does_not_extend_the_latest_block_is_invalid() {
    let b = [bundle(14)];
    let mut f = Forged::honest(&b);
    f.header.parent_hash = Hash([9; 32]);
    let got = verdict(Setup::default(), &[&b[0].1], &[], &f).await;
    assert_refused(got, Some(Validity::Invalid), "does not extend");
}

#[tokio::test]
async fn a_proposal_timestamped_too_far_ahead_is_invalid() {
    let b = [bundle(15)];
    let mut f = Forged::honest(&b);
    f.header.timestamp = now_ms() + super::MAX_CLOCK_DRIFT_MS + 60_000;
    let got = verdict(Setup::default(), &[&b[0].1], &[], &f).await;
    assert_refused(got, Some(Validity::Invalid), "out of range");
}

#[tokio::test]
async fn a_proposal_timestamped_before_its_parent_is_invalid() {
    // Block 1 is decided; a block 2 whose timestamp is earlier than block 1's goes back in
    // time, which the protocol forbids.
    let (mut node, block1) = at_height_two(&[]).await;
    let parent = node.tip.borrow().timestamp;
    let mut early = Forged::honest_at(2, block1.0, &[]);
    early.header.timestamp = parent - 1;
    let got = judge(&mut node, &early).await;
    assert_refused(got, Some(Validity::Invalid), "out of range");
    // At the parent's own timestamp it is fine (clocks at millisecond resolution). (Another
    // node: a second proposal for the round from the same proposer would be equivocation.)
    let (mut node, block1) = at_height_two(&[]).await;
    let parent = node.tip.borrow().timestamp;
    let mut same = Forged::honest_at(2, block1.0, &[]);
    same.header.timestamp = parent;
    assert_eq!(
        judge(&mut node, &same).await,
        (Some(Validity::Valid), Ok(()))
    );
}

#[tokio::test]
async fn a_proposal_for_another_chain_is_invalid() {
    let b = [bundle(16)];
    let mut f = Forged::honest(&b);
    f.header.chain_id = CHAIN + 1;
    let got = verdict(Setup::default(), &[&b[0].1], &[], &f).await;
    assert_refused(got, Some(Validity::Invalid), "for chain");
}

#[tokio::test]
async fn a_hash_list_that_does_not_match_the_header_is_invalid() {
    let b = [bundle(17), bundle(18)];
    let mut f = Forged::honest(&b);
    f.hashes.pop();
    let got = verdict(Setup::default(), &[&b[0].1, &b[1].1], &[], &f).await;
    assert_refused(got, Some(Validity::Invalid), "do not match the header");
}

#[tokio::test]
async fn a_proposal_naming_one_bundle_twice_is_invalid() {
    let b = bundle(19);
    let f = Forged::honest(&[b.clone(), b.clone()]);
    let got = verdict(Setup::default(), &[&b.1], &[], &f).await;
    assert_refused(got, Some(Validity::Invalid), "appears twice");
}

#[tokio::test]
async fn a_proposal_with_a_wrong_rollups_root_is_invalid() {
    let b = [bundle(20)];
    let mut f = Forged::honest(&b);
    f.header.rollups_root = Hash([1; 32]);
    let got = verdict(Setup::default(), &[&b[0].1], &[], &f).await;
    assert_refused(got, Some(Validity::Invalid), "rollups root");
}

#[tokio::test]
async fn a_proposal_above_max_block_bytes_is_invalid() {
    let b = [bundle_for(CHAIN, 21, 300), bundle_for(CHAIN, 22, 300)];
    let limits = Limits {
        max_block_bytes: 600,
        ..Limits::default()
    };
    let got = verdict(
        Setup {
            limits,
            ..Setup::default()
        },
        &[&b[0].1, &b[1].1],
        &[],
        &Forged::honest(&b),
    )
    .await;
    assert_refused(got, Some(Validity::Invalid), "above max_block_bytes");
}

#[tokio::test]
async fn a_proposal_with_a_bundle_for_another_chain_is_invalid() {
    // Signed correctly, so fetching it succeeds; the block's checks refuse it.
    let good = bundle(23);
    let foreign = bundle_for(CHAIN + 1, 24, 16);
    let f = Forged::honest(&[good.clone(), foreign.clone()]);
    let got = verdict(Setup::default(), &[&good.1], &[&foreign.1], &f).await;
    assert_refused(got, Some(Validity::Invalid), "is invalid");
}

#[tokio::test]
async fn a_proposal_with_a_bundle_already_included_is_invalid() {
    // Block 1 includes `b`; a proposal for height 2 that names `b` again is a replay.
    let b = bundle(25);
    let (mut node, block1) = at_height_two(&[&b.1]).await;
    let replay = Forged::honest_at(2, block1.0, std::slice::from_ref(&b));
    let got = judge(&mut node, &replay).await;
    assert_refused(got, Some(Validity::Invalid), "already included at height 1");
}

#[tokio::test]
async fn a_bundle_no_one_has_leaves_the_proposal_without_a_verdict() {
    let (have, missing) = (bundle(26), bundle(27));
    let f = Forged::honest(&[have.clone(), missing]);
    let got = verdict(Setup::default(), &[&have.1], &[], &f).await;
    assert_refused(got, None, "unavailable");
}

#[tokio::test]
async fn a_fetched_bundle_with_a_bad_signature_is_not_taken() {
    let good = bundle(28);
    let (hash, bytes) = bundle(29);
    let mut tampered = bytes.to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1; // the signature's last byte: same body, same hash
    let tampered = Bytes::from(tampered);
    assert_eq!(SignedBundle::hash_of_encoding(&tampered), hash);
    let f = Forged::honest(&[good.clone(), (hash, bytes)]);
    let got = verdict(Setup::default(), &[&good.1], &[&tampered], &f).await;
    assert_refused(got, None, "unavailable");
}

#[tokio::test]
async fn an_invalid_proposal_is_not_written_to_the_store() {
    let b = [bundle(40)];
    let mut f = Forged::honest(&b);
    f.header.rollups_root = Hash([1; 32]);
    let mut node = Node::new(other_than(proposer_of(1, 0)));
    node.pool(&[&b[0].1]);
    node.ready().await;
    node.start_round(1, 0).await;
    let pv = node.receive(&f.parts()).await.expect("a verdict");
    assert_eq!(pv.validity, Validity::Invalid);
    node.host.recorder.flush().await;
    assert!(
        node.store.undecided(1).unwrap().is_empty(),
        "an invalid proposal is not recorded (Malachite's WAL has the verdict)"
    );
    // The engine still gets the verdict when the round starts again (say, after a restart
    // of the round's timers): it is remembered in memory.
    let known = node.start_round(1, 0).await;
    assert_eq!(
        known.iter().map(|pv| pv.validity).collect::<Vec<_>>(),
        vec![Validity::Invalid]
    );
}

#[tokio::test]
async fn a_second_proposal_for_a_round_from_its_proposer_is_evidence_and_not_validated() {
    let (b1, b2, b3) = (bundle(42), bundle(43), bundle(44));
    let first = Forged::honest(std::slice::from_ref(&b1));
    let second = Forged::honest(std::slice::from_ref(&b2));
    let third = Forged::honest(std::slice::from_ref(&b3));
    let mut node = Node::new(other_than(proposer_of(1, 0)));
    node.pool(&[&b1.1, &b2.1, &b3.1]);
    node.ready().await;
    node.start_round(1, 0).await;
    let pv = node.receive(&first.parts()).await.expect("a verdict");
    assert_eq!(
        (pv.value.0, pv.validity),
        (first.header.hash(), Validity::Valid)
    );
    assert_eq!(node.recorded(1).await.len(), 1);

    // The same proposal again: the same verdict, not validated again.
    let again = node.receive(&first.parts()).await;
    assert_eq!(again.map(|pv| pv.value.0), Some(first.header.hash()));

    // A different one, signed by the same proposer for the same round: evidence, no verdict,
    // not validated (nothing held, nothing recorded).
    assert_eq!(node.receive(&second.parts()).await, None);
    assert!(!node.host.blocks.contains_key(&second.header.hash()));
    let evidence = node.host.evidence().list();
    assert_eq!(evidence.len(), 1);
    let e = &evidence[0];
    assert_eq!(
        (e.validator, e.height, e.round),
        (address(proposer_of(1, 0)), 1, 0)
    );
    let crate::evidence::Misbehaviour::Proposal {
        first: a,
        second: b,
    } = &e.misbehaviour
    else {
        panic!("a proposal: {e:?}");
    };
    assert_eq!(
        (a.block_hash(), b.block_hash()),
        (first.header.hash(), second.header.hash())
    );
    assert_eq!(
        (a.signature, b.signature),
        (first.signature(), second.signature())
    );
    // Both signatures check out against the proposer's key: anyone can verify the evidence.
    let verifier = crate::signing::LockstepVerifier::new(CHAIN);
    let set = crate::context::ValidatorSet::from_bundles(&validators(4)).unwrap();
    let key = Ctx { chain_id: CHAIN }
        .select_proposer(&set, Height(1), Round::new(0))
        .public_key;
    for p in [a, b] {
        assert!(verifier.verify_part(
            1,
            0,
            &p.block_hash(),
            &ValidatorAddress(p.proposer),
            &p.signature,
            &key
        ));
    }

    // A third: still one piece of evidence, still no verdict.
    assert_eq!(node.receive(&third.parts()).await, None);
    assert_eq!(node.host.evidence().list().len(), 1);
    node.host.recorder.flush().await;
    assert_eq!(
        node.store.undecided(1).unwrap().len(),
        1,
        "only the first is recorded"
    );
    // The engine is handed only the first.
    let known = node.start_round(1, 0).await;
    assert_eq!(
        known.iter().map(|pv| pv.value.0).collect::<Vec<_>>(),
        vec![first.header.hash()]
    );
}

#[tokio::test]
async fn a_future_proposal_is_held_until_its_height_and_junk_takes_no_room() {
    let p = proposer_of(1, 0);
    let mut proposer = Node::new(p);
    let mut node = Node::new(other_than(p));
    let b = bundle(45);
    for n in [&mut proposer, &mut node] {
        n.pool(&[&b.1]);
        n.ready().await;
        n.start_round(1, 0).await;
    }
    let (value, parts) = proposer.propose(1, 0).await;
    node.receive(&parts).await.expect("a verdict");
    let cert = certificate(1, 0, value).await;
    proposer.decide(&cert).await;
    // Height 2's proposal arrives before `node` has decided height 1; so do unsigned streams
    // for height 2, more than the buffer holds.
    let next = Forged::honest_at(2, value.0, &[]);
    for round in 0..2 * crate::streaming::MAX_FUTURE_STREAMS as u32 {
        let mut junk = Forged::honest_at(2, value.0, &[]);
        junk.header.timestamp += u64::from(round) + 1;
        junk.signed_by = other_than(junk.claimed);
        assert_eq!(node.receive(&junk.parts()).await, None);
    }
    assert_eq!(
        node.receive(&next.parts()).await,
        None,
        "held, not judged yet"
    );
    assert_eq!(node.host.future.len(), 1, "only the signed one is held");
    node.decide(&cert).await;
    let known = node.start_round(2, 0).await;
    assert_eq!(
        known
            .iter()
            .map(|pv| (pv.value.0, pv.validity))
            .collect::<Vec<_>>(),
        vec![(next.header.hash(), Validity::Valid)]
    );
}

/// Malachite's vote keeper reports a validator's two prevotes for one round with a finalized
/// height: the host keeps both signed votes as evidence against it, checkable with its key.
#[tokio::test]
async fn a_double_vote_the_engine_reports_is_kept_as_evidence() {
    let ctx = Ctx { chain_id: CHAIN };
    let a = BlockId(Hash::tagged(b"a", &[]));
    let b = BlockId(Hash::tagged(b"b", &[]));
    let prevote = |v: BlockId| {
        ctx.new_prevote(
            Height(7),
            Round::new(2),
            NilOrVal::Val(v),
            ValidatorAddress(address(1)),
        )
    };
    let first = signer(1).sign_vote(prevote(a)).await.expect("signs");
    let second = signer(1).sign_vote(prevote(b)).await.expect("signs");
    let mut ev = MisbehaviorEvidence::<Ctx> {
        proposals: Default::default(),
        votes: Default::default(),
    };
    assert!(super::misbehaviour::engine_evidence(&validators(4), &ev).is_empty());
    ev.votes.add(first.clone(), second.clone());
    let found = super::misbehaviour::engine_evidence(&validators(4), &ev);
    assert_eq!(found.len(), 1, "{found:?}");
    let e = &found[0];
    assert_eq!((e.validator, e.height, e.round), (address(1), 7, 2));
    assert_eq!(e.misbehaviour.label(), "prevote");
    let crate::evidence::Misbehaviour::Vote {
        first: f,
        second: s,
        ..
    } = &e.misbehaviour
    else {
        panic!("a vote: {e:?}");
    };
    assert_eq!((f.value, s.value), (Some(a.0), Some(b.0)));
    // Both signatures are the validator's own over each vote, as the engine received them.
    assert_eq!(f.signature, first.signature.to_bytes());
    assert_eq!(s.signature, second.signature.to_bytes());
    assert_ne!(f.signature, s.signature);
    // Recorded once, however often the engine reports it.
    let log = crate::evidence::EvidenceLog::new();
    assert!(log.record(e.clone()));
    assert!(!log.record(e.clone()));
    assert_eq!(log.list().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// The Byzantine proposer of the test build: each invalid block it makes is refused by an
// honest validator, and its flood costs bounded room.

#[cfg(feature = "byzantine")]
mod byzantine {
    use super::*;
    use crate::host::{ByzantineProposer, Corruption};
    use crate::streaming::{MAX_FUTURE_STREAMS, MAX_STREAMS};

    /// Height 1 decided (with two bundles, so there is an included one) on an honest proposer,
    /// a Byzantine validator configured by `byzantine` and an honest validator; the
    /// Byzantine one proposes at height 2 (a third bundle pending everywhere); the honest
    /// validator, able to fetch what the Byzantine one serves, answers. Returns its verdict
    /// and the Byzantine proposer.
    async fn honest_answer(byzantine: ByzantineProposer) -> (Option<Validity>, Node, Node) {
        let (p1, p2) = (proposer_of(1, 0), proposer_of(2, 0));
        let honest = (0..4).find(|i| *i != p1 && *i != p2).unwrap();
        let mut first = Node::new(p1);
        let mut liar = Node::with(
            p2,
            Setup {
                byzantine,
                ..Setup::default()
            },
        );
        let mut node = Node::new(honest);
        let b = [bundle(1), bundle(2)];
        for n in [&mut first, &mut liar, &mut node] {
            n.pool(&[&b[0].1, &b[1].1]);
            n.ready().await;
            n.start_round(1, 0).await;
        }
        let (value, parts) = first.propose(1, 0).await;
        let cert = certificate(1, 0, value).await;
        for n in [&mut liar, &mut node] {
            let pv = n.receive(&parts).await.expect("a verdict");
            assert_eq!(pv.validity, Validity::Valid);
            assert!(matches!(n.decide(&cert).await, Next::Start(Height(2), _)));
        }
        let third = bundle(3);
        for n in [&mut liar, &mut node] {
            n.pool(&[&third.1]);
            n.start_round(2, 0).await;
        }
        let (value, parts) = liar.propose(2, 0).await;
        for served in liar.host.cfg.byzantine.forged.all() {
            node.fetch.offer(served);
        }
        let pv = node.receive(&parts).await;
        if let Some(pv) = &pv {
            assert_eq!(pv.value, value, "the verdict is on the Byzantine block");
        }
        let validity = pv.map(|pv| pv.validity);
        if validity != Some(Validity::Valid) {
            assert!(
                !node.host.blocks.contains_key(&value.0),
                "a refused block is not held for commit"
            );
        }
        (validity, liar, node)
    }

    fn corrupting(kind: Corruption) -> ByzantineProposer {
        ByzantineProposer {
            corrupt: vec![kind],
            ..ByzantineProposer::default()
        }
    }

    #[tokio::test]
    async fn the_harness_accepts_an_honest_block_from_the_same_proposer() {
        let (v, ..) = honest_answer(ByzantineProposer::default()).await;
        assert_eq!(v, Some(Validity::Valid));
    }

    #[tokio::test]
    async fn every_invalid_block_of_a_byzantine_proposer_is_refused() {
        for kind in Corruption::ALL {
            let (v, liar, _) = honest_answer(corrupting(kind)).await;
            // A bad bundle signature or a forged part signature leaves the block without a
            // verdict (the bundle is missing; the stream is not the proposer's): a nil vote
            // at the timeout. Every other kind is judged invalid.
            let expected = match kind {
                Corruption::BadSignature | Corruption::ForgedPartSignature => None,
                _ => Some(Validity::Invalid),
            };
            assert_eq!(v, expected, "{}", kind.name());
            let made_up = liar.host.cfg.byzantine.forged.all().len();
            match kind {
                Corruption::BadSignature | Corruption::Expired => assert_eq!(made_up, 1),
                Corruption::Oversized => assert!(made_up > 1),
                _ => assert_eq!(made_up, 0, "{}", kind.name()),
            }
        }
    }

    #[tokio::test]
    async fn kinds_are_taken_in_turn() {
        let p = ByzantineProposer {
            corrupt: vec![Corruption::Expired, Corruption::FutureTimestamp],
            ..ByzantineProposer::default()
        };
        let (v, liar, _) = honest_answer(p).await;
        assert_eq!(v, Some(Validity::Invalid));
        assert_eq!(
            liar.host.next_corruption(),
            Some(Corruption::FutureTimestamp)
        );
        assert_eq!(liar.host.next_corruption(), Some(Corruption::Expired));
    }

    #[tokio::test]
    async fn a_flood_of_proposals_is_evidence_and_takes_bounded_room() {
        let liar_index = proposer_of(1, 0);
        let mut liar = Node::with(
            liar_index,
            Setup {
                byzantine: ByzantineProposer {
                    flood: 48,
                    ..ByzantineProposer::default()
                },
                ..Setup::default()
            },
        );
        let mut node = Node::new(other_than(liar_index));
        for n in [&mut liar, &mut node] {
            n.ready().await;
        }
        // Starting a round publishes the flood.
        liar.start_round(1, 0).await;
        let junk = liar.drain_parts();
        assert_eq!(junk.len(), 48);
        node.start_round(1, 0).await;
        for part in &junk {
            node.receive(std::slice::from_ref(part)).await;
        }
        assert!(node.host.future.len() <= MAX_FUTURE_STREAMS);
        assert!(node.host.streams.len() <= MAX_STREAMS);
        let evidence = node.host.evidence().list();
        assert!(
            !evidence.is_empty(),
            "two proposals for the liar's own rounds"
        );
        assert!(evidence.iter().all(|e| e.validator == address(liar_index)));
        // The honest proposal of the round is still judged on its merits: the liar's own
        // real proposal came after its junk and is evidence, but a later round's honest
        // proposer is unaffected.
        let mut honest = Node::new(proposer_of(1, 1));
        honest.ready().await;
        honest.start_round(1, 1).await;
        let (value, parts) = honest.propose(1, 1).await;
        node.start_round(1, 1).await;
        let pv = node.receive(&parts).await.expect("a verdict");
        assert_eq!((pv.value, pv.validity), (value, Validity::Valid));
    }
}

// ---------------------------------------------------------------------------------------------
// Validator set updates (ADR-027).

/// A bundle carrying an update of set version `version` that removes validator `leaving`,
/// co-signed by `cosigners`.
fn removal(version: u64, leaving: usize, cosigners: &[usize]) -> (Hash, Bytes) {
    let mut u = lockstep_bundles::SignedSetUpdate::unsigned(lockstep_bundles::SetUpdate {
        chain_id: CHAIN,
        version,
        changes: vec![lockstep_bundles::SetChange::Remove {
            address: address(leaving),
        }],
    });
    for i in cosigners {
        u.sign(&ed25519_dalek::SigningKey::from_bytes(&secret(*i)));
    }
    let submitter = ed25519_dalek::SigningKey::from_bytes(&[0x5e; 32]);
    let b = BundleBody {
        chain_id: CHAIN,
        signer: submitter.verifying_key().to_bytes(),
        nonce: version * 1000 + leaving as u64 + cosigners.len() as u64,
        valid_until: 50,
        legs: vec![Leg {
            rollup_id: lockstep_bundles::SET_UPDATE_ROLLUP,
            data: u.encode().into(),
        }],
    }
    .sign(&submitter);
    (b.hash(), Bytes::from(b.encode()))
}

/// Decides `height` on every node: its round-0 proposer proposes what its pool holds, the
/// others validate it (valid), all decide. Returns the decided value and what each node
/// answered to `Finalized`.
async fn decide_everywhere(nodes: &mut [Node], height: u64) -> (BlockId, Vec<Next<Ctx>>) {
    let p = proposer_of(height, 0);
    for n in nodes.iter_mut() {
        n.start_round(height, 0).await;
    }
    let (value, parts) = nodes[p].propose(height, 0).await;
    for n in nodes.iter_mut().filter(|n| n.index != p) {
        let pv = n.receive(&parts).await.expect("a verdict");
        assert_eq!(pv.validity, Validity::Valid, "node {} at {height}", n.index);
    }
    let cert = certificate(height, 0, value).await;
    let mut next = Vec::new();
    for n in nodes.iter_mut() {
        next.push(n.decide(&cert).await);
    }
    (value, next)
}

fn started_with(next: &Next<Ctx>) -> (u64, usize) {
    match next {
        Next::Start(h, params) => (h.0, params.validator_set.count()),
        other => panic!("expected the next height to start, got {other:?}"),
    }
}

#[tokio::test]
async fn a_set_update_in_a_block_decides_from_two_heights_later_on_every_node_and_after_a_restart()
{
    let update = removal(0, 3, &[0, 1, 2]);
    let mut nodes: Vec<Node> = (0..4).map(Node::new).collect();
    for n in &mut nodes {
        n.pool(&[&update.1, &bundle(1).1]);
        n.ready().await;
    }
    let (value, next) = decide_everywhere(&mut nodes, 1).await;
    let block = nodes[0].block(1).expect("block 1 committed");
    assert_eq!(block.hash(), value.0);
    assert!(
        bundle_hashes(&block).contains(&update.0),
        "the update is included"
    );
    // Height 2 is still the genesis set's; the update takes over at 3.
    for n in &next {
        assert_eq!(started_with(n), (2, 4));
    }
    for n in &nodes {
        let stored = n.store.validator_sets().unwrap();
        assert_eq!(stored.len(), 1, "the new set is stored with block 1");
        assert_eq!(
            (
                stored[0].version,
                stored[0].from_height,
                stored[0].included_at
            ),
            (1, 3, 1)
        );
        assert_eq!(n.host.cfg.schedule.at(3).set.len(), 3);
        assert_eq!(n.host.cfg.schedule.at(2).set.len(), 4);
    }
    let (_, next) = decide_everywhere(&mut nodes, 2).await;
    for n in &next {
        assert_eq!(
            started_with(n),
            (3, 3),
            "height 3 starts with the three left"
        );
    }
    // Height 3's headers name the new set.
    let three = nodes[0].host.cfg.schedule.at(3).hash;
    assert_ne!(three, validators(4).hash());
    // A restarted node takes the set back from its store and starts height 3 with it.
    let node = nodes.remove(1);
    let mut node = node.restart(Setup::default());
    let (tx, rx) = oneshot::channel();
    node.host
        .handle(AppMsg::ConsensusReady { reply: tx }, &node.net)
        .await
        .unwrap();
    let (h, params) = rx.await.unwrap();
    assert_eq!((h.0, params.validator_set.count()), (3, 3));
}

#[tokio::test]
async fn a_proposer_leaves_out_updates_the_chain_cannot_take_and_validators_refuse_them() {
    let p = proposer_of(1, 0);
    // Co-signed by two of four: not more than two thirds.
    let under = removal(0, 3, &[0, 1]);
    // For a set version the chain has not reached.
    let ahead = removal(1, 2, &[0, 1, 2]);
    let good = removal(0, 3, &[0, 1, 2]);
    let second = removal(0, 2, &[0, 1, 3]);
    let mut proposer = Node::new(p);
    proposer.pool(&[&under.1, &ahead.1, &good.1, &second.1, &bundle(2).1]);
    proposer.ready().await;
    proposer.start_round(1, 0).await;
    let (value, _) = proposer.propose(1, 0).await;
    let held = proposer.host.blocks[&value.0].hashes.clone();
    let updates: Vec<&Hash> = [&under.0, &ahead.0, &good.0, &second.0]
        .into_iter()
        .filter(|h| held.contains(h))
        .collect();
    assert_eq!(updates.len(), 1, "exactly one update is proposed");
    assert!(held.contains(&good.0) || held.contains(&second.0));
    assert!(held.contains(&bundle(2).0));
    // Validators refuse blocks that carry what the proposer left out.
    let setup = || Setup::default();
    for (bundles, reason) in [
        (vec![under.clone()], "two thirds"),
        (vec![ahead.clone()], "version"),
        (vec![good.clone(), second.clone()], "at most one"),
    ] {
        let pool: Vec<&Bytes> = bundles.iter().map(|b| &b.1).collect();
        let got = verdict(setup(), &pool, &[], &Forged::honest(&bundles)).await;
        assert_refused(got, Some(Validity::Invalid), reason);
    }
}

#[tokio::test]
async fn a_block_naming_another_validator_set_is_invalid() {
    let mut forged = Forged::honest(&[bundle(3)]);
    forged.header.validators_hash = validators(3).hash();
    let got = verdict(Setup::default(), &[&bundle(3).1], &[], &forged).await;
    assert_refused(got, Some(Validity::Invalid), "validators_hash");
}

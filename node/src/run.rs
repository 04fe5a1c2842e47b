//! Starting a node: load and check the home directory, wire store, mempool, gossip,
//! consensus, RPC and metrics, and shut down cleanly on SIGTERM or Ctrl-C.

use crate::admission::{self, Admission};
use crate::config::{Config, Role};
use crate::disk::{self, DiskSpace};
use crate::genesis::Genesis;
use crate::home::Home;
use crate::keys::NodeKey;
use crate::metrics_http;
use crate::rpc::{self, Rpc, RpcState};
use crate::store::Store;
use lockstep_consensus::codec::LockstepCodec;
use lockstep_consensus::context::{LockstepContext, ValidatorAddress};
use lockstep_consensus::signing::{LockstepSigner, LockstepVerifier, SignFloor, SignedLog};
use lockstep_consensus::validators::{Schedule, ScheduledSet};
use lockstep_consensus::{ChainStore, Host, HostConfig, Tip};
use lockstep_mempool::included::IncludedSet;
use lockstep_mempool::pool::PoolConfig;
use lockstep_mempool::Mempool;
use lockstep_p2p::BundleGossip;
use malachitebft_app_channel::app::config::{
    ConsensusConfig as EngineConsensus, GossipSubConfig, NodeConfig, PubSubProtocol, ValuePayload,
    ValueSyncConfig,
};
use malachitebft_app_channel::app::types::codec::Codec;
use malachitebft_app_channel::app::types::core::LinearTimeouts;
use malachitebft_app_channel::app::types::Keypair;
use malachitebft_app_channel::{
    ConsensusContext, EngineBuilder, NetworkContext, NetworkIdentity, RequestContext, Signer,
    SyncContext, WalContext,
};
use malachitebft_signing_ed25519::PrivateKey;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{error, info, warn};

#[derive(Clone)]
struct EngineConfig {
    moniker: String,
    consensus: EngineConsensus,
    value_sync: ValueSyncConfig,
}

impl NodeConfig for EngineConfig {
    fn moniker(&self) -> &str {
        &self.moniker
    }
    fn consensus(&self) -> &EngineConsensus {
        &self.consensus
    }
    fn consensus_mut(&mut self) -> &mut EngineConsensus {
        &mut self.consensus
    }
    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }
    fn value_sync_mut(&mut self) -> &mut ValueSyncConfig {
        &mut self.value_sync
    }
}

/// Gossipsub mesh degree for consensus messages and bundle gossip.
pub const MESH_N: usize = 2;

/// How a node's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Stopped (a signal, or its parent exited).
    Stopped,
    /// A validator that started behind the height it had signed at has followed the chain
    /// past it: it must be started again, now voting (`main` re-executes itself).
    Rejoin,
}

/// `following`: whether this node takes part in consensus — votes as a validator not
/// catching up, or follows every proposal and vote as a full node; otherwise it only syncs
/// decided values.
/// `admitted`: the other validators' peer ids and `peers.allowed`, the only peers (with
/// `consensus.peers`) Malachite keeps connections with.
fn engine_config(
    config: &Config,
    following: bool,
    admitted: impl Iterator<Item = lockstep_p2p::PeerId>,
) -> eyre::Result<EngineConfig> {
    let mut consensus = EngineConsensus {
        value_payload: ValuePayload::ProposalAndParts,
        enabled: following,
        ..Default::default()
    };
    // Validators keep direct connections to each other and publish to all of them (flood
    // publish), so relaying through the mesh is only a fallback for a broken link: a mesh of
    // degree 2 keeps that fallback while each node receives each vote and proposal part about
    // twice, not once per peer in the mesh (up to 6 by default).
    consensus.p2p.protocol = PubSubProtocol::GossipSub(GossipSubConfig::new(
        MESH_N,
        MESH_N + 1,
        MESH_N,
        1,
        false,
        false,
        true,
    ));
    consensus.p2p.listen_addr = config
        .consensus
        .listen
        .parse()
        .map_err(|e| eyre::eyre!("consensus.listen: {e}"))?;
    consensus.p2p.persistent_peers = config
        .consensus
        .peers
        .iter()
        .map(|p| {
            p.parse()
                .map_err(|e| eyre::eyre!("consensus.peers: {p}: {e}"))
        })
        .collect::<eyre::Result<_>>()?;
    // Only the validators (and the configured peers): Malachite closes any other peer's
    // connection when its identify arrives (persistent-peers-only mode). Each validator is
    // named by a peer-id-only address, which Malachite pins as persistent without dialling it.
    consensus.p2p.persistent_peers_only = true;
    for id in admitted {
        let pinned: malachitebft_app_channel::app::net::Multiaddr = format!("/p2p/{id}")
            .parse()
            .map_err(|e| eyre::eyre!("peer id {id}: {e}"))?;
        consensus.p2p.persistent_peers.push(pinned);
    }
    let value_sync = ValueSyncConfig {
        enabled: true,
        status_update_interval: Duration::from_secs(1),
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    Ok(EngineConfig {
        moniker: config.moniker.clone(),
        consensus,
        value_sync,
    })
}

fn timeouts(c: &crate::config::ConsensusConfig) -> LinearTimeouts {
    let delta = Duration::from_millis(c.timeout_delta_ms);
    let vote = Duration::from_millis(c.timeout_vote_ms);
    LinearTimeouts {
        propose: Duration::from_millis(c.timeout_propose_ms),
        propose_delta: delta,
        prevote: vote,
        prevote_delta: delta,
        precommit: vote,
        precommit_delta: delta,
        ..Default::default()
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Sets the store's memory gauges every few seconds, until the store is gone.
async fn report_store_memory(store: std::sync::Weak<Store>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let Some(store) = store.upgrade() else { return };
        let m = store.memory();
        for (kind, bytes) in [
            ("memtables", m.memtable_bytes),
            ("table_readers", m.table_readers_bytes),
            ("read_cache", m.read_cache_bytes),
            ("decoded_cache", m.decoded_cache_bytes),
        ] {
            metrics::gauge!(crate::metrics::STORE_MEMORY, "kind" => kind).set(bytes as f64);
        }
    }
}

/// This process's parent, as it was when the node started.
fn parent_now() -> u32 {
    #[cfg(unix)]
    {
        std::os::unix::process::parent_id()
    }
    #[cfg(not(unix))]
    {
        0
    }
}

/// Resolves once `parent`, the process that started this one, has exited (this process is
/// re-parented). Checked twice a second; `std`'s `parent_id` is all it needs, and unlike the
/// kernel's parent-death signal it does not fire when merely the spawning *thread* of a parent
/// exits.
async fn parent_gone(parent: u32) {
    #[cfg(unix)]
    {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            if parent_now() != parent {
                return;
            }
        }
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await
}

/// Runs the node in `home` until a shutdown signal or a fatal error; with `exit_with_parent`,
/// also when the process that started it exits (local networks and benchmarks start nodes as
/// child processes, and a killed harness must not leave validators running).
pub async fn start(home_dir: &Path, exit_with_parent: bool) -> eyre::Result<Exit> {
    let parent = parent_now();
    let home = Home::new(home_dir);
    let config = Config::load(&home.config())?;
    let genesis = Genesis::load(&home.genesis())?;
    let key = NodeKey::load(&home.key())?;
    let genesis_set = genesis.validator_set()?;
    let chain_id = genesis.chain_id;
    let limits = genesis.limits;
    let address = key.address();
    let full = config.role == Role::Full;
    // Full nodes this node admits on both swarms besides the validators.
    let allowed: Vec<lockstep_p2p::PeerId> = config
        .peers
        .allowed
        .iter()
        .map(|id| id.parse())
        .collect::<Result<_, _>>()
        .map_err(|e| eyre::eyre!("peers.allowed: {e}"))?;
    let byzantine = byzantine_behaviour(&config, &home)?;
    #[cfg(feature = "byzantine")]
    let proposer = match &byzantine {
        Some(b) => b.proposer()?,
        None => Default::default(),
    };
    let prometheus = metrics_http::install()?;

    let keep = config.history.keep_heights;
    if keep != 0 && keep < limits.max_ttl {
        eyre::bail!(
            "config {}: history.keep_heights {keep} is below the genesis max_ttl {}; \
             the replay window must stay on disk (use 0 to keep everything)",
            home.config().display(),
            limits.max_ttl
        );
    }
    // The store's file system must have room before anything is written to it.
    let space = DiskSpace::new(home_dir, config.storage.min_free_mb)
        .map_err(|e| eyre::eyre!("cannot read the free space on {}: {e}", home_dir.display()))?;
    if let Some(why) = disk::stop_reason(home_dir, space.free(), config.storage.stop_free_mb) {
        eyre::bail!("not starting: {why}");
    }
    let store = Arc::new(Store::open(&home.db(), keep)?);
    tokio::spawn(report_store_memory(Arc::downgrade(&store)));
    let latest = store.latest_height()?;
    // The validator set of every height: genesis, then every update the store has committed.
    let schedule = Arc::new(
        Schedule::load(chain_id, &genesis_set, store.validator_sets()?)
            .map_err(|e| eyre::eyre!("the validator sets in the store: {e}"))?,
    );
    let validators = schedule.at(latest + 1).set.clone();
    let is_validator = validators.get(&address).is_some();
    if full && schedule.all().iter().any(|s| s.set.get(&address).is_some()) {
        eyre::bail!(
            "config {}: role = \"full\", but this node's key ({address}) is a validator's; a \
             full node needs a key of its own (one validator key on two running nodes could \
             sign twice)",
            home.config().display()
        );
    }
    if !full && !is_validator {
        warn!(
            %address,
            "this node's key is not in the validator set of the next height: it follows the \
             chain without voting, and votes from the height an update adds it (set role = \
             \"full\" in its config if it never will)"
        );
    }
    let mut included = IncludedSet::new(limits.max_ttl);
    for (h, hashes) in store.included_since(included.window_start(latest))? {
        for x in hashes {
            included.insert(x, h);
        }
    }
    info!(moniker = %config.moniker, %address, chain_id, latest, is_validator, "starting");
    crate::metrics::record_startup(&crate::metrics::Startup {
        validators: &validators,
        address: &address,
        mempool_max_count: config.mempool.max_count,
        mempool_max_bytes: config.mempool.max_bytes,
        min_free_mb: config.storage.min_free_mb,
        stop_free_mb: config.storage.stop_free_mb,
        latest,
    });
    let pool = PoolConfig {
        max_count: config.mempool.max_count,
        max_bytes: config.mempool.max_bytes,
        max_per_signer: config.mempool.max_per_signer,
    };
    let mempool = Arc::new(Mempool::new(pool, included));
    // The bundles this node acknowledged before it stopped, back in the pool.
    let reloaded = admission::reload(&store, &mempool, &limits, latest)?;
    let (tip_tx, tip_rx) = watch::channel(Tip::default());
    let tip_watch = tip_rx.clone();

    // Validators' peer ids, the same on both swarms: the libp2p id of their keys, for every
    // set the chain has had or scheduled (new ones are admitted as updates commit).
    let validator_peers = validator_peer_ids(&schedule)?;
    let gossip_cfg = lockstep_p2p::GossipConfig {
        secret: key.secret,
        listen: config
            .gossip
            .listen
            .parse()
            .map_err(|e| eyre::eyre!("gossip.listen: {e}"))?,
        peers: config
            .gossip
            .peers
            .iter()
            .map(|p| p.parse().map_err(|e| eyre::eyre!("gossip.peers: {p}: {e}")))
            .collect::<eyre::Result<_>>()?,
        topic: format!("lockstep/bundles/v2/{chain_id}"),
        max_message_bytes: limits.max_bundle_bytes as usize + 4096,
        inbound_capacity: lockstep_p2p::DEFAULT_INBOUND_CAPACITY,
        mesh_n: MESH_N,
        publish_linger: Duration::from_millis(config.gossip.publish_linger_ms),
        message_id: admission::gossip_message_id,
        store: fetch_store(
            Arc::new(PendingBundles {
                mempool: mempool.clone(),
                store: store.clone(),
                schedule: schedule.clone(),
            }),
            &byzantine,
            #[cfg(feature = "byzantine")]
            &proposer.forged,
        ),
        max_fetch_bytes: limits.max_block_bytes as usize + BLOCK_HEADROOM,
        agent: gossip_agent(&address),
        validators: validator_peers
            .values()
            .copied()
            .chain(allowed.iter().copied())
            .collect(),
        allow_non_validators: config.gossip.allow_non_validators,
        max_inbound_per_ip: config.gossip.max_inbound_per_ip,
        max_inbound: config.gossip.max_inbound,
    };
    let (gossip_handle, inbound) = lockstep_p2p::spawn(gossip_cfg)?;
    let gossip: Arc<dyn BundleGossip> = Arc::new(gossip_handle);
    #[cfg(feature = "byzantine")]
    let gossip: Arc<dyn BundleGossip> = match &byzantine {
        Some(b) if b.withhold => Arc::new(crate::byzantine::Withholding(gossip)),
        _ => gossip,
    };
    // An empty store: join from a snapshot if the peers pruned height 1 (ADR-027).
    let mut start_at = 0;
    if latest == 0 && config.history.join_from_snapshot && !config.gossip.peers.is_empty() {
        let wait = Duration::from_millis(config.history.snapshot_wait_ms);
        if let Some(offer) = crate::snapshot::ask(&gossip, chain_id, &genesis_set, wait).await {
            store.write_validator_sets(&offer.sets)?;
            for r in offer.sets.iter().cloned() {
                schedule.insert(ScheduledSet::from_record(r).map_err(|e| eyre::eyre!(e))?);
            }
            if let Some(t) = offer.start() {
                info!(
                    start = t,
                    peer_earliest = offer.earliest,
                    peer_latest = offer.latest,
                    sets = offer.sets.len(),
                    "joining from a snapshot: the peers keep heights from {}; starting at {t} \
                     and syncing every block from there",
                    offer.earliest
                );
                start_at = t;
            }
        }
    }
    // The replay window: a node whose history starts above height 1 (joined from a
    // snapshot) judges no bundle until it holds `max_ttl` heights.
    let history_from = if latest == 0 {
        start_at.max(1)
    } else {
        store.earliest()?.max(1)
    };
    let window_complete_at = if history_from > 1 {
        history_from + limits.max_ttl - 1
    } else {
        0
    };
    let admission = Admission::new(
        chain_id,
        schedule.clone(),
        window_complete_at,
        limits,
        mempool.clone(),
        tip_rx.clone(),
        gossip.clone(),
        space.clone(),
        store.clone(),
    );
    tokio::spawn(admission::republish(
        gossip.clone(),
        reloaded,
        config.gossip.peers.len(),
    ));
    tokio::spawn(admission::run_gossip_inbound(
        inbound,
        admission.clone(),
        gossip.clone(),
    ));

    // Consensus. A validator whose store ends below the height it last signed at (its store
    // and WAL were lost or restored from an old copy) must not vote at the heights in between:
    // the network decided them while this node was there, and a vote now could contradict
    // the one it gave. It follows the chain by value sync, without voting, until it has the
    // block of that height, then starts again as a validator.
    let floor_path = home.signed_height();
    let floor = Arc::new(
        SignFloor::open(&floor_path)
            .map_err(|e| eyre::eyre!("cannot read {}: {e}", floor_path.display()))?,
    );
    // Likewise a validator without the whole replay window (it could vote for a block that
    // includes a bundle again).
    let rejoin_at = floor.at_start().max(window_complete_at);
    let catching_up = !full && rejoin_at > latest.max(start_at.saturating_sub(1)) + 1;
    if catching_up {
        warn!(
            latest,
            signed = floor.at_start(),
            window_complete_at,
            "this validator's store ends at {latest}, below the height it last signed at or \
             without the replay window: following the chain without voting until height \
             {rejoin_at}"
        );
    }
    let private = PrivateKey::from(key.secret);
    let signed_log = if config.consensus.signed_log {
        let path = home.signed_log();
        let log = SignedLog::open(&path).map_err(|e| {
            eyre::eyre!("cannot open the signed-message log {}: {e}", path.display())
        })?;
        Some(Arc::new(log))
    } else {
        None
    };
    let with_log = |s: LockstepSigner| {
        let s = s.with_floor(floor.clone());
        match &signed_log {
            Some(log) => s.with_log(log.clone()),
            None => s,
        }
    };
    let host_cfg = HostConfig {
        chain_id,
        limits,
        address,
        schedule: schedule.clone(),
        start_at,
        timeouts: timeouts(&config.consensus),
        target_block_time: Some(Duration::from_millis(config.consensus.target_block_time_ms))
            .filter(|d| !d.is_zero()),
        propose_wait: Duration::from_millis(config.consensus.propose_wait_ms),
        #[cfg(feature = "byzantine")]
        byzantine: proposer,
    };
    let chain_store: Arc<dyn ChainStore> = store.clone();
    let host = Host::new(
        host_cfg,
        with_log(LockstepSigner::new(private.clone(), chain_id)),
        chain_store,
        mempool.clone(),
        Arc::new(PeerFetch {
            gossip: gossip.clone(),
            schedule: schedule.clone(),
            limits,
        }),
        tip_tx,
    )?;

    let keypair = Keypair::ed25519_from_bytes(key.secret)?;
    let signer = with_log(LockstepSigner::new(private.clone(), chain_id));
    let me = ValidatorAddress(address);
    // A validator-role node signs as a validator whether or not the set of the next height
    // holds its key: Malachite asks it to vote at exactly the heights whose set does.
    let (identity, consensus_ctx) = if !full && !catching_up {
        let proof = signer
            .sign_validator_proof(
                key.public_key().to_vec(),
                keypair.public().to_peer_id().to_bytes(),
            )
            .await
            .map_err(|e| eyre::eyre!("validator proof: {e}"))?;
        let proof_bytes = LockstepCodec.encode(&proof)?;
        (
            NetworkIdentity::new_validator(
                config.moniker.clone(),
                keypair,
                address.to_string(),
                proof_bytes,
            ),
            ConsensusContext::new_validator(
                me,
                Box::new(LockstepVerifier::new(chain_id)),
                Box::new(signer),
            ),
        )
    } else {
        (
            NetworkIdentity::new(config.moniker.clone(), keypair, None),
            ConsensusContext::new_full_node(me, Box::new(LockstepVerifier::new(chain_id))),
        )
    };
    let builder = EngineBuilder::new(
        LockstepContext { chain_id },
        engine_config(
            &config,
            // A validator catching up only syncs decided values; every other node follows every
            // proposal and vote (a full node without a signer: Malachite signs only for a set
            // member).
            !catching_up,
            validator_peers
                .iter()
                .filter(|(a, _)| **a != address)
                .map(|(_, p)| *p)
                .chain(allowed.iter().copied()),
        )?,
    )
    .with_default_wal(WalContext::new(home.wal(), LockstepCodec));
    // The rest of the engine is the same whichever network actor it talks to.
    macro_rules! finish {
        ($b:expr) => {
            $b.with_default_sync(SyncContext::new(LockstepCodec))
                .with_default_consensus(consensus_ctx)
                .with_default_request(RequestContext::new(100))
                .build()
                .await?
        };
    }
    #[cfg(feature = "byzantine")]
    let (channels, mut engine) = match byzantine.as_ref().filter(|b| b.engine.is_active()) {
        Some(b) => {
            // Malachite's proxy signs the conflicting messages with this key: no sign floor
            // (it would refuse them), but the signed-message log sees them.
            let s = LockstepSigner::new(private.clone(), chain_id);
            let s = match &signed_log {
                Some(log) => s.with_log(log.clone()),
                None => s,
            };
            finish!(
                builder
                    .with_byzantine_network(malachitebft_app_channel::ByzantineContext {
                        identity,
                        codec: LockstepCodec,
                        config: b.engine.clone(),
                        signer: Box::new(s),
                        address: me,
                        conflicting_value_fn: Some(Box::new(crate::byzantine::conflicting_value)),
                        conflicting_vote_value_fn: Some(Box::new(
                            crate::byzantine::conflicting_vote_value
                        )),
                    })
                    .await?
            )
        }
        None => finish!(builder.with_default_network(NetworkContext::new(identity, LockstepCodec))),
    };
    #[cfg(not(feature = "byzantine"))]
    let (channels, mut engine) =
        finish!(builder.with_default_network(NetworkContext::new(identity, LockstepCodec)));
    // The evidence this node recorded in earlier runs, answered again, and every new entry kept.
    let evidence = host.evidence();
    evidence.keep_in(
        store.clone(),
        store
            .evidence()
            .map_err(|e| eyre::eyre!("cannot read the evidence kept in the store: {e}"))?,
    );
    tokio::spawn(admit_new_validators(
        schedule.clone(),
        tip_rx.clone(),
        gossip.clone(),
        channels.net_requests.clone(),
        address,
    ));
    let mut host_task = tokio::spawn(host.run(channels));

    // RPC and metrics.
    let state = RpcState {
        chain_id,
        store: store.clone(),
        mempool,
        admission,
        tip: tip_rx,
        gossip,
        schedule: schedule.clone(),
        address,
        signs: !full,
        subscriber_send_timeout: Duration::from_millis(config.rpc.subscriber_send_timeout_ms),
        reads: rpc::Reads::default(),
        started_at: rpc::now_ms(),
        stall_after: rpc::stall_bound(Duration::from_millis(config.consensus.target_block_time_ms)),
        evidence,
    };
    let (rpc_handle, rpc_addr) = rpc::serve(&config.rpc, Rpc(Arc::new(state))).await?;
    let metrics_addr = metrics_http::serve(config.metrics.listen, prometheus).await?;
    info!(rpc = %rpc_addr, metrics = %metrics_addr, "node ready");

    let result = tokio::select! {
        _ = shutdown_signal() => { info!("shutdown requested"); Ok(Exit::Stopped) }
        _ = parent_gone(parent), if exit_with_parent => {
            warn!("the process that started this node has exited; shutting down");
            Ok(Exit::Stopped)
        }
        _ = passed(tip_watch, rejoin_at), if catching_up => {
            info!(height = rejoin_at, "caught up past the height this validator last signed at and holds the replay window; starting again as a validator");
            Ok(Exit::Rejoin)
        }
        why = disk::watch(space, config.storage.stop_free_mb) => {
            error!("stopping: {why}");
            Err(eyre::eyre!("stopped: {why}"))
        }
        r = &mut host_task => {
            let e = match r { Ok(Err(e)) => e.to_string(), Ok(Ok(())) => "host stopped".into(), Err(e) => e.to_string() };
            error!("consensus host stopped: {e}");
            Err(eyre::eyre!("consensus host stopped: {e}"))
        }
        r = &mut engine.handle => {
            error!("consensus engine stopped: {r:?}");
            Err(eyre::eyre!("consensus engine stopped"))
        }
    };
    let _ = rpc_handle.stop();
    let _ = engine
        .actor
        .stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(5)))
        .await;
    host_task.abort();
    info!("stopped");
    result
}

/// Resolves once the tip has reached `height`.
async fn passed(mut tip: watch::Receiver<Tip>, height: u64) {
    loop {
        if tip.borrow_and_update().height >= height {
            return;
        }
        if tip.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Room in a fetch response for a whole block beyond `max_block_bytes` (which bounds its
/// bundles' bytes): the header and the bundle count take 180 bytes.
const BLOCK_HEADROOM: usize = 4096;

/// Ids of one fetch request that are looked up among the store's block bodies when they are
/// not pending bundles. A node asks for a decided block alone, so one would do; a few keep a
/// request of many unknown bundle hashes from costing as many store reads.
const BLOCK_LOOKUPS_PER_REQUEST: usize = 4;

#[cfg(feature = "byzantine")]
type Byzantine = Option<crate::byzantine::Behaviour>;
/// A release build has no Byzantine behaviour to hold.
#[cfg(not(feature = "byzantine"))]
enum NoByzantine {}
#[cfg(not(feature = "byzantine"))]
type Byzantine = Option<NoByzantine>;

/// The config's `[byzantine]` section: read by the test build, refused by the release one.
#[cfg(feature = "byzantine")]
fn byzantine_behaviour(config: &Config, home: &Home) -> eyre::Result<Byzantine> {
    let Some(table) = &config.byzantine else {
        return Ok(None);
    };
    let b = crate::byzantine::Behaviour::parse(table)
        .map_err(|e| eyre::eyre!("config {}: {e}", home.config().display()))?;
    if !b.is_active() {
        return Ok(None);
    }
    warn!(behaviour = ?b, "BYZANTINE: this validator misbehaves as its config says");
    Ok(Some(b))
}

#[cfg(not(feature = "byzantine"))]
fn byzantine_behaviour(config: &Config, home: &Home) -> eyre::Result<Byzantine> {
    if config.byzantine.is_some() {
        eyre::bail!(
            "config {}: a [byzantine] section is for lockstep-byzantine, the test build; this \
             binary has no Byzantine behaviours",
            home.config().display()
        );
    }
    Ok(None)
}

/// What peers' fetches are served from: this node's pending bundles and blocks; nothing for
/// a withholding Byzantine validator; and the bundles it made up for one proposing invalid
/// blocks.
fn fetch_store(
    store: Arc<dyn lockstep_p2p::fetch::ItemStore>,
    byzantine: &Byzantine,
    #[cfg(feature = "byzantine")] forged: &lockstep_consensus::host::Forged,
) -> Arc<dyn lockstep_p2p::fetch::ItemStore> {
    #[cfg(feature = "byzantine")]
    if byzantine.as_ref().is_some_and(|b| b.withhold) {
        return Arc::new(crate::byzantine::ServesNothing);
    }
    #[cfg(feature = "byzantine")]
    if byzantine
        .as_ref()
        .is_some_and(|b| !b.invalid_proposals.is_empty())
    {
        return Arc::new(crate::byzantine::ServesForged {
            store,
            forged: forged.clone(),
        });
    }
    #[cfg(not(feature = "byzantine"))]
    let _ = byzantine;
    store
}

/// What this node hands to peers that fetch by hash: its pending bundles, and blocks by block
/// hash (decided blocks it keeps and proposals it recorded; a validator that missed a decided
/// block asks for it so).
struct PendingBundles {
    mempool: Arc<Mempool>,
    store: Arc<Store>,
    /// For the snapshot offer.
    schedule: Arc<Schedule>,
}

impl lockstep_p2p::fetch::ItemStore for PendingBundles {
    fn lookup(&self, ids: &[[u8; 32]]) -> Vec<Option<bytes::Bytes>> {
        if ids == [crate::snapshot::offer_id()] {
            let offer = crate::snapshot::Offer::of(
                self.store.earliest().unwrap_or(0),
                self.store.latest_height().unwrap_or(0),
                &self.schedule,
            );
            return vec![Some(offer.encode())];
        }
        let hashes: Vec<lockstep_bundles::Hash> =
            ids.iter().map(|id| lockstep_bundles::Hash(*id)).collect();
        let mut found: Vec<Option<bytes::Bytes>> = self
            .mempool
            .pending_many(&hashes)
            .into_iter()
            .map(|a| a.map(|a| a.encoded))
            .collect();
        let missing = found.iter_mut().zip(&hashes).filter(|(f, _)| f.is_none());
        for (slot, hash) in missing.take(BLOCK_LOOKUPS_PER_REQUEST) {
            *slot = self.store.block_by_hash(hash).ok().flatten();
        }
        found
    }
}

/// The libp2p peer id (the same on the consensus and the gossip swarm) of every validator of
/// every set in `schedule`, by address.
fn validator_peer_ids(
    schedule: &Schedule,
) -> eyre::Result<std::collections::HashMap<lockstep_bundles::Address, lockstep_p2p::PeerId>> {
    let mut out = std::collections::HashMap::new();
    for set in schedule.all() {
        for v in set.set.validators() {
            out.insert(
                v.address,
                lockstep_p2p::peer_id_of_public_key(&v.public_key)?,
            );
        }
    }
    Ok(out)
}

/// Admits the validators each new set brings, on both swarms, once the update that makes the
/// set is committed (ADR-027): the gossip gate takes their connections and Malachite keeps
/// them as persistent peers, so their votes reach this node from the height the set decides.
async fn admit_new_validators(
    schedule: Arc<Schedule>,
    mut tip: watch::Receiver<Tip>,
    gossip: Arc<dyn BundleGossip>,
    net_requests: tokio::sync::mpsc::Sender<malachitebft_app_channel::NetworkRequest>,
    me: lockstep_bundles::Address,
) {
    let mut known: std::collections::HashSet<lockstep_bundles::Address> = schedule
        .all()
        .iter()
        .flat_map(|s| s.set.validators().iter().map(|v| v.address))
        .collect();
    while tip.changed().await.is_ok() {
        let mut new = Vec::new();
        for set in schedule.all() {
            for v in set.set.validators() {
                if known.insert(v.address) && v.address != me {
                    match lockstep_p2p::peer_id_of_public_key(&v.public_key) {
                        Ok(id) => new.push((v.address, id)),
                        Err(e) => {
                            warn!(validator = %v.address, "no peer id for a new validator: {e}")
                        }
                    }
                }
            }
        }
        if new.is_empty() {
            continue;
        }
        gossip.admit(new.iter().map(|(_, id)| *id).collect()).await;
        for (address, id) in new {
            let pinned = format!("/p2p/{id}").parse();
            let added = match pinned {
                Ok(addr) => malachitebft_app_channel::NetworkRequest::add_persistent_peer(
                    &net_requests,
                    addr,
                )
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| format!("{e:?}"))),
                Err(e) => Err(format!("{e}")),
            };
            match added {
                Ok(()) => info!(validator = %address, peer = %id, "admitted a new validator"),
                Err(e) => {
                    warn!(validator = %address, peer = %id, "cannot pin a new validator on the consensus swarm: {e}")
                }
            }
        }
    }
}

/// Where the consensus host gets a proposal's missing bundles (and a decided block it lacks):
/// gossip peers, the proposer first, known by its peer id from the genesis file.
struct PeerFetch {
    gossip: Arc<dyn BundleGossip>,
    schedule: Arc<Schedule>,
    limits: lockstep_bundles::Limits,
}

#[async_trait::async_trait]
impl lockstep_consensus::BundleFetch for PeerFetch {
    async fn fetch(
        &self,
        hashes: Vec<lockstep_bundles::Hash>,
        proposer: lockstep_bundles::Address,
    ) -> Vec<Option<bytes::Bytes>> {
        let ids = hashes.iter().map(|h| h.0).collect();
        let limits = self.limits;
        let check: lockstep_p2p::FetchCheck =
            Arc::new(move |id, item| fetched_ok(id, item, &limits));
        // The proposer's key, from the newest set that has it.
        let peer = self
            .schedule
            .all()
            .iter()
            .rev()
            .find_map(|s| s.set.get(&proposer).map(|v| v.public_key))
            .and_then(|pk| lockstep_p2p::peer_id_of_public_key(&pk).ok());
        self.gossip.fetch(ids, peer, check).await
    }
}

/// Whether a fetched item is what its id names: a bundle that hashes to it with a valid
/// signature, or a block whose hash it is. A copy that is not is asked of another peer.
fn fetched_ok(id: &[u8; 32], item: &bytes::Bytes, limits: &lockstep_bundles::Limits) -> bool {
    use lockstep_bundles::SignedBundle;
    if let Ok(b) = SignedBundle::decode_shared(item, limits) {
        return SignedBundle::hash_of_encoding(item).0 == *id
            && lockstep_bundles::sig::verify(&b.body.signer, id, &b.signature);
    }
    lockstep_bundles::Block::decode(item).is_ok_and(|b| b.hash().0 == *id)
}

/// How a node names itself on the gossip swarm: by its validator address, so peers fetching
/// a proposal's bundles ask its proposer first.
fn gossip_agent(address: &lockstep_bundles::Address) -> String {
    format!("lockstep/{address}")
}

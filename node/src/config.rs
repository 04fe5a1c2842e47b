//! `config.toml`: where a node listens, whom it connects to, and its local limits.
//! Every default is a named constant; the file is checked once at start-up.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

pub const DEFAULT_RPC_LISTEN: &str = "127.0.0.1:8545";
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9100";
pub const DEFAULT_CONSENSUS_LISTEN: &str = "/ip4/127.0.0.1/tcp/26656";
pub const DEFAULT_GOSSIP_LISTEN: &str = "/ip4/127.0.0.1/tcp/26756";
/// Minimum time per height. Empty heights still produce a (verifiable, empty) batch each;
/// an idle network's pace is set by [`DEFAULT_PROPOSE_WAIT_MS`] instead.
pub const DEFAULT_TARGET_BLOCK_TIME_MS: u64 = 30;
/// How long a proposer with an empty pool waits for a bundle before proposing an empty block
/// (the first bundle ends the wait).
pub const DEFAULT_PROPOSE_WAIT_MS: u64 = 100;
/// Default `gossip.publish_linger_ms`.
pub const DEFAULT_PUBLISH_LINGER_MS: u64 = 20;
pub const DEFAULT_TIMEOUT_PROPOSE_MS: u64 = 1_000;
pub const DEFAULT_TIMEOUT_VOTE_MS: u64 = 500;
pub const DEFAULT_TIMEOUT_DELTA_MS: u64 = 250;
pub const DEFAULT_RPC_MAX_CONNECTIONS: u32 = 512;
pub const DEFAULT_RPC_MAX_SUBSCRIPTIONS_PER_CONNECTION: u32 = 64;
/// Requests per second one RPC connection may make before getting error 4006.
pub const DEFAULT_RPC_RATE_PER_CONNECTION: u32 = 20_000;
/// A subscriber whose connection buffer stays full this long is dropped (it fell behind).
pub const DEFAULT_SUBSCRIBER_SEND_TIMEOUT_MS: u64 = 10_000;
/// Notifications buffered per RPC connection before sends wait (and, past the timeout above,
/// the subscriber is dropped).
pub const DEFAULT_RPC_CONNECTION_BUFFER: u32 = 1_024;
/// Calls per second one client address may make over all its RPC connections together before
/// getting error 4006 (0: no per-address limit). Two and a half connections' worth: opening
/// more connections does not buy a host more calls.
pub const DEFAULT_RPC_RATE_PER_IP: u32 = 50_000;
/// RPC connections one client address may hold open at once (0: no per-address limit); an
/// eighth of [`DEFAULT_RPC_MAX_CONNECTIONS`], so one host cannot hold every slot.
pub const DEFAULT_RPC_MAX_CONNECTIONS_PER_IP: u32 = 64;
/// Client addresses the per-address limits do not apply to: loopback, where the node's own
/// machine connects from (a local reverse proxy shares one address among all its clients).
pub const DEFAULT_RPC_IP_LIMIT_EXEMPT: [&str; 2] = ["127.0.0.1", "::1"];
/// How often the node pings each WebSocket connection.
pub const DEFAULT_RPC_PING_INTERVAL_MS: u64 = 20_000;
/// A WebSocket connection that has answered no ping (and sent nothing) for this long is closed,
/// at the next ping after it; above [`DEFAULT_RPC_PING_INTERVAL_MS`].
pub const DEFAULT_RPC_PING_TIMEOUT_MS: u64 = 60_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcConfig {
    pub listen: SocketAddr,
    #[serde(default = "d_max_conn")]
    pub max_connections: u32,
    #[serde(default = "d_max_subs")]
    pub max_subscriptions_per_connection: u32,
    #[serde(default = "d_rate")]
    pub rate_per_connection: u32,
    #[serde(default = "d_send_timeout")]
    pub subscriber_send_timeout_ms: u64,
    #[serde(default = "d_buffer")]
    pub connection_buffer: u32,
    /// Calls per second from one client address, all its connections together (0: no limit).
    #[serde(default = "d_rate_ip")]
    pub rate_per_ip: u32,
    /// Connections one client address may hold open at once (0: no limit).
    #[serde(default = "d_max_conn_ip")]
    pub max_connections_per_ip: u32,
    /// Client addresses exempt from the two per-address limits: a reverse proxy's address
    /// (every client behind it shares it; limit per client at the proxy). Default: loopback.
    #[serde(default = "d_ip_exempt")]
    pub ip_limit_exempt: Vec<std::net::IpAddr>,
    /// How often each WebSocket connection is pinged.
    #[serde(default = "d_ping_interval")]
    pub ping_interval_ms: u64,
    /// A WebSocket connection silent (no pong, no message) this long is closed.
    #[serde(default = "d_ping_timeout")]
    pub ping_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusConfig {
    /// libp2p address for consensus traffic (Malachite's own swarm).
    pub listen: String,
    /// Other validators' consensus addresses.
    #[serde(default)]
    pub peers: Vec<String>,
    #[serde(default = "d_block_time")]
    pub target_block_time_ms: u64,
    /// A proposer whose pool is empty waits up to this long for a bundle, then proposes an
    /// empty block; the first bundle to arrive ends the wait. Below half of
    /// `timeout_propose_ms`; 0 proposes at once.
    #[serde(default = "d_propose_wait")]
    pub propose_wait_ms: u64,
    #[serde(default = "d_propose")]
    pub timeout_propose_ms: u64,
    #[serde(default = "d_vote")]
    pub timeout_vote_ms: u64,
    #[serde(default = "d_delta")]
    pub timeout_delta_ms: u64,
    /// Append every vote and proposal this node signs to `<home>/signed.jsonl`, one JSON line
    /// each, for checking a run for faults (see `lockstep_consensus::signing::SignedLog`).
    #[serde(default)]
    pub signed_log: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GossipConfig {
    /// libp2p address for bundle gossip.
    pub listen: String,
    /// Peers as `/ip4/…/tcp/…/p2p/<peer id>`.
    #[serde(default)]
    pub peers: Vec<String>,
    /// Least time between two gossip messages of newly admitted bundles: bundles admitted
    /// sooner after the last message wait out the rest of it and go together in the next
    /// (0: each admission group at once). An idle node gossips at once.
    #[serde(default = "d_publish_linger")]
    pub publish_linger_ms: u64,
    /// Take gossip connections from peers that are not validators (full nodes). Off: only the
    /// genesis validators' peer ids get past the handshake.
    #[serde(default)]
    pub allow_non_validators: bool,
    /// Most inbound gossip connections from one IP address at once, counted from acceptance
    /// (before the handshake); a validator's stops counting once its peer id is known.
    #[serde(default = "d_max_inbound_per_ip")]
    pub max_inbound_per_ip: usize,
    /// Most established inbound gossip connections.
    #[serde(default = "d_max_inbound")]
    pub max_inbound: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MempoolConfig {
    #[serde(default = "d_pool_count")]
    pub max_count: usize,
    #[serde(default = "d_pool_bytes")]
    pub max_bytes: usize,
    #[serde(default = "d_pool_signer")]
    pub max_per_signer: usize,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            max_count: d_pool_count(),
            max_bytes: d_pool_bytes(),
            max_per_signer: d_pool_signer(),
        }
    }
}

/// Decided heights a node keeps by default (0 keeps all).
pub const DEFAULT_KEEP_HEIGHTS: u64 = 0;

/// How long a node with an empty store waits for a peer's snapshot offer by default.
pub const DEFAULT_SNAPSHOT_WAIT_MS: u64 = 5_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Decided heights kept for RPC, subscriptions and syncing peers; older heights are pruned.
    /// 0 keeps everything; otherwise it must be at least the genesis `max_ttl`.
    #[serde(default)]
    pub keep_heights: u64,
    /// With an empty store, ask peers where their history starts and start there if they
    /// pruned height 1 (joining from a snapshot, ADR-027); off: always start at height 1.
    #[serde(default = "d_true")]
    pub join_from_snapshot: bool,
    /// How long to wait for a peer's answer before starting at height 1.
    #[serde(default = "d_snapshot_wait")]
    pub snapshot_wait_ms: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            keep_heights: DEFAULT_KEEP_HEIGHTS,
            join_from_snapshot: true,
            snapshot_wait_ms: DEFAULT_SNAPSHOT_WAIT_MS,
        }
    }
}

fn d_true() -> bool {
    true
}

fn d_snapshot_wait() -> u64 {
    DEFAULT_SNAPSHOT_WAIT_MS
}

/// Free-space levels of the store's file system (see `crate::disk`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Below this many free megabytes, new submissions are refused with 4006 (0: never).
    #[serde(default = "d_min_free")]
    pub min_free_mb: u64,
    /// Below this many free megabytes, the node stops (and will not start); below
    /// `min_free_mb` unless 0 (never).
    #[serde(default = "d_stop_free")]
    pub stop_free_mb: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            min_free_mb: d_min_free(),
            stop_free_mb: d_stop_free(),
        }
    }
}

/// What a node is on its network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Votes and proposes with its key (which must be in the genesis validator set).
    #[default]
    Validator,
    /// Follows the chain (every proposal and vote, every certificate checked against the
    /// validator set), stores it and serves the whole JSON-RPC API; bundles submitted to it
    /// are gossiped to the validators. Never signs a vote; its key must not be a validator's.
    Full,
}

impl std::fmt::Display for Role {
    /// As the config spells it: `validator` or `full`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Role::Validator => "validator",
            Role::Full => "full",
        })
    }
}

/// Peers a node admits besides the genesis validators.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeersConfig {
    /// libp2p peer ids (base58, `12D3Koo…`: a node's id is printed at start and is its key's)
    /// that may connect to this node's consensus and gossip swarms: the full nodes it serves.
    /// Both swarms otherwise take only the genesis validators.
    #[serde(default)]
    pub allowed: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub moniker: String,
    /// `validator` (the default) or `full`.
    #[serde(default)]
    pub role: Role,
    pub rpc: RpcConfig,
    pub metrics: MetricsConfig,
    pub consensus: ConsensusConfig,
    pub gossip: GossipConfig,
    #[serde(default)]
    pub mempool: MempoolConfig,
    #[serde(default)]
    pub history: HistoryConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub peers: PeersConfig,
    /// Byzantine behaviours: read only by `lockstep-byzantine`, the test build (see
    /// `byzantine.rs`); `lockstep` refuses to start with this section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byzantine: Option<toml::Table>,
}

fn d_min_free() -> u64 {
    crate::disk::DEFAULT_MIN_FREE_MB
}
fn d_stop_free() -> u64 {
    crate::disk::DEFAULT_STOP_FREE_MB
}
fn d_max_conn() -> u32 {
    DEFAULT_RPC_MAX_CONNECTIONS
}
fn d_max_subs() -> u32 {
    DEFAULT_RPC_MAX_SUBSCRIPTIONS_PER_CONNECTION
}
fn d_rate() -> u32 {
    DEFAULT_RPC_RATE_PER_CONNECTION
}
fn d_send_timeout() -> u64 {
    DEFAULT_SUBSCRIBER_SEND_TIMEOUT_MS
}
fn d_buffer() -> u32 {
    DEFAULT_RPC_CONNECTION_BUFFER
}
fn d_rate_ip() -> u32 {
    DEFAULT_RPC_RATE_PER_IP
}
fn d_max_conn_ip() -> u32 {
    DEFAULT_RPC_MAX_CONNECTIONS_PER_IP
}
fn d_ip_exempt() -> Vec<std::net::IpAddr> {
    DEFAULT_RPC_IP_LIMIT_EXEMPT
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect()
}
fn d_ping_interval() -> u64 {
    DEFAULT_RPC_PING_INTERVAL_MS
}
fn d_ping_timeout() -> u64 {
    DEFAULT_RPC_PING_TIMEOUT_MS
}
fn d_block_time() -> u64 {
    DEFAULT_TARGET_BLOCK_TIME_MS
}
fn d_max_inbound_per_ip() -> usize {
    lockstep_p2p::DEFAULT_MAX_INBOUND_PER_IP
}
fn d_max_inbound() -> usize {
    lockstep_p2p::DEFAULT_MAX_INBOUND
}
fn d_publish_linger() -> u64 {
    DEFAULT_PUBLISH_LINGER_MS
}
fn d_propose_wait() -> u64 {
    DEFAULT_PROPOSE_WAIT_MS
}
fn d_propose() -> u64 {
    DEFAULT_TIMEOUT_PROPOSE_MS
}
fn d_vote() -> u64 {
    DEFAULT_TIMEOUT_VOTE_MS
}
fn d_delta() -> u64 {
    DEFAULT_TIMEOUT_DELTA_MS
}
fn d_pool_count() -> usize {
    lockstep_mempool::pool::DEFAULT_MAX_COUNT
}
fn d_pool_bytes() -> usize {
    lockstep_mempool::pool::DEFAULT_MAX_BYTES
}
fn d_pool_signer() -> usize {
    lockstep_mempool::pool::DEFAULT_MAX_PER_SIGNER
}

impl Config {
    pub fn new(moniker: &str) -> Config {
        Config {
            moniker: moniker.into(),
            rpc: RpcConfig {
                listen: DEFAULT_RPC_LISTEN.parse().expect("constant address"),
                max_connections: d_max_conn(),
                max_subscriptions_per_connection: d_max_subs(),
                rate_per_connection: d_rate(),
                subscriber_send_timeout_ms: d_send_timeout(),
                connection_buffer: d_buffer(),
                rate_per_ip: d_rate_ip(),
                max_connections_per_ip: d_max_conn_ip(),
                ip_limit_exempt: d_ip_exempt(),
                ping_interval_ms: d_ping_interval(),
                ping_timeout_ms: d_ping_timeout(),
            },
            metrics: MetricsConfig {
                listen: DEFAULT_METRICS_LISTEN.parse().expect("constant address"),
            },
            consensus: ConsensusConfig {
                listen: DEFAULT_CONSENSUS_LISTEN.into(),
                peers: vec![],
                target_block_time_ms: d_block_time(),
                propose_wait_ms: d_propose_wait(),
                timeout_propose_ms: d_propose(),
                timeout_vote_ms: d_vote(),
                timeout_delta_ms: d_delta(),
                signed_log: false,
            },
            gossip: GossipConfig {
                listen: DEFAULT_GOSSIP_LISTEN.into(),
                peers: vec![],
                publish_linger_ms: d_publish_linger(),
                allow_non_validators: false,
                max_inbound_per_ip: d_max_inbound_per_ip(),
                max_inbound: d_max_inbound(),
            },
            mempool: MempoolConfig::default(),
            history: HistoryConfig::default(),
            storage: StorageConfig::default(),
            peers: PeersConfig::default(),
            byzantine: None,
            role: Role::Validator,
        }
    }

    /// Loads and checks the file; errors name the file and the field.
    pub fn load(path: &Path) -> eyre::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| eyre::eyre!("cannot read config {}: {e}", path.display()))?;
        let c: Config = toml::from_str(&text)
            .map_err(|e| eyre::eyre!("config {} is invalid: {e}", path.display()))?;
        c.check()
            .map_err(|e| eyre::eyre!("config {}: {e}", path.display()))?;
        Ok(c)
    }

    fn check(&self) -> Result<(), String> {
        let ma = |what: &str, s: &str| -> Result<(), String> {
            let m: lockstep_p2p::Address = s
                .parse()
                .map_err(|e| format!("{what}: `{s}` is not a multiaddr: {e}"))?;
            if !s.contains("/tcp/") {
                return Err(format!("{what}: `{m}` must be a TCP address"));
            }
            Ok(())
        };
        ma("consensus.listen", &self.consensus.listen)?;
        for p in &self.consensus.peers {
            ma("consensus.peers", p)?;
        }
        for id in &self.peers.allowed {
            id.parse::<lockstep_p2p::PeerId>()
                .map_err(|e| format!("peers.allowed: `{id}` is not a libp2p peer id: {e}"))?;
        }
        ma("gossip.listen", &self.gossip.listen)?;
        for p in &self.gossip.peers {
            ma("gossip.peers", p)?;
        }
        if self.consensus.timeout_propose_ms == 0 || self.consensus.timeout_vote_ms == 0 {
            return Err("consensus timeouts must be positive".into());
        }
        if self.consensus.propose_wait_ms >= self.consensus.timeout_propose_ms / 2 {
            return Err(format!(
                "consensus.propose_wait_ms ({}) must be below half of consensus.timeout_propose_ms ({}): \
                 the others would time out waiting for the proposal",
                self.consensus.propose_wait_ms, self.consensus.timeout_propose_ms
            ));
        }
        if self.mempool.max_count == 0
            || self.mempool.max_bytes == 0
            || self.mempool.max_per_signer == 0
        {
            return Err("mempool limits must be positive".into());
        }
        let st = &self.storage;
        if st.min_free_mb != 0 && st.stop_free_mb >= st.min_free_mb {
            return Err(format!(
                "storage.stop_free_mb ({}) must be below storage.min_free_mb ({}): a node \
                 refuses submissions before it stops",
                st.stop_free_mb, st.min_free_mb
            ));
        }
        if self.rpc.rate_per_connection == 0 {
            return Err("rpc.rate_per_connection must be positive".into());
        }
        if self.rpc.connection_buffer == 0 {
            return Err(
                "rpc.connection_buffer must be positive (messages queued per connection)".into(),
            );
        }
        let r = &self.rpc;
        if r.ping_interval_ms == 0 || r.ping_timeout_ms <= r.ping_interval_ms {
            return Err(format!(
                "rpc.ping_timeout_ms ({}) must be above rpc.ping_interval_ms ({}), which must be \
                 positive: a client answers one ping per interval",
                r.ping_timeout_ms, r.ping_interval_ms
            ));
        }
        Ok(())
    }

    pub fn save(&self, path: &Path) -> eyre::Result<()> {
        std::fs::write(path, toml::to_string_pretty(self)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_round_trips_and_bad_addresses_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        let c = Config::new("n0");
        c.save(&p).unwrap();
        let back = Config::load(&p).unwrap();
        assert_eq!(back.moniker, "n0");
        let mut bad = c.clone();
        bad.gossip.peers = vec!["not-an-address".into()];
        bad.save(&p).unwrap();
        let err = Config::load(&p).unwrap_err().to_string();
        assert!(err.contains("gossip.peers"), "{err}");
    }

    #[test]
    fn a_config_is_a_validators_unless_it_says_full_and_allowed_peers_are_peer_ids() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        let mut c = Config::new("n0");
        c.save(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        // A config written before roles existed is a validator's.
        let old: String = text
            .lines()
            .filter(|l| !l.starts_with("role"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&p, old).unwrap();
        let back = Config::load(&p).unwrap();
        assert_eq!(back.role, Role::Validator);
        assert!(back.peers.allowed.is_empty());
        c.role = Role::Full;
        c.peers.allowed = vec!["12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo".into()];
        c.save(&p).unwrap();
        let back = Config::load(&p).unwrap();
        assert_eq!(back.role, Role::Full);
        assert_eq!(back.role.to_string(), "full");
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .contains("role = \"full\""));
        c.peers.allowed = vec!["node1".into()];
        c.save(&p).unwrap();
        let err = Config::load(&p).unwrap_err().to_string();
        assert!(err.contains("peers.allowed"), "{err}");
    }

    #[test]
    fn the_signed_message_log_is_off_unless_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        let mut c = Config::new("n0");
        c.save(&p).unwrap();
        // A config written before the option existed loads with it off.
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("signed_log = false"), "{text}");
        std::fs::write(&p, text.replace("signed_log = false\n", "")).unwrap();
        assert!(!Config::load(&p).unwrap().consensus.signed_log);
        c.consensus.signed_log = true;
        c.save(&p).unwrap();
        assert!(Config::load(&p).unwrap().consensus.signed_log);
    }

    #[test]
    fn a_zero_connection_buffer_is_refused_at_start() {
        // jsonrpsee makes the connection's channel with this capacity, and tokio panics on a
        // zero-capacity channel at every WebSocket upgrade: refuse it before it is served.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        let mut c = Config::new("n0");
        c.rpc.connection_buffer = 0;
        c.save(&p).unwrap();
        let err = Config::load(&p).unwrap_err().to_string();
        assert!(err.contains("rpc.connection_buffer"), "{err}");
    }

    #[test]
    fn a_ping_timeout_not_above_the_interval_is_refused_and_old_configs_get_the_rpc_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        let mut c = Config::new("n0");
        // A live client answers one ping per interval: a timeout at the interval closes it.
        c.rpc.ping_timeout_ms = c.rpc.ping_interval_ms;
        c.save(&p).unwrap();
        let err = Config::load(&p).unwrap_err().to_string();
        assert!(err.contains("rpc.ping_timeout_ms"), "{err}");
        c.rpc.ping_timeout_ms = c.rpc.ping_interval_ms + 1;
        c.save(&p).unwrap();
        assert!(Config::load(&p).is_ok());
        // A config written before the keys existed loads with the defaults.
        let text = std::fs::read_to_string(&p).unwrap();
        let mut old: toml::Table = toml::from_str(&text).unwrap();
        let rpc = old["rpc"].as_table_mut().unwrap();
        for k in [
            "rate_per_ip",
            "max_connections_per_ip",
            "ip_limit_exempt",
            "ping_interval_ms",
            "ping_timeout_ms",
        ] {
            assert!(rpc.remove(k).is_some(), "{k}");
        }
        let old = toml::to_string(&old).unwrap();
        std::fs::write(&p, old).unwrap();
        let back = Config::load(&p).unwrap().rpc;
        assert_eq!(back.rate_per_ip, DEFAULT_RPC_RATE_PER_IP);
        assert_eq!(
            back.max_connections_per_ip,
            DEFAULT_RPC_MAX_CONNECTIONS_PER_IP
        );
        assert_eq!(back.ping_interval_ms, DEFAULT_RPC_PING_INTERVAL_MS);
        assert_eq!(back.ping_timeout_ms, DEFAULT_RPC_PING_TIMEOUT_MS);
        let loopback: Vec<std::net::IpAddr> =
            vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        assert_eq!(back.ip_limit_exempt, loopback);
    }

    #[test]
    fn a_stop_level_at_or_above_the_refusal_level_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        let mut c = Config::new("n0");
        c.storage.min_free_mb = 512;
        c.storage.stop_free_mb = 512;
        c.save(&p).unwrap();
        let err = Config::load(&p).unwrap_err().to_string();
        assert!(err.contains("storage.stop_free_mb"), "{err}");
        c.storage.min_free_mb = 0;
        c.save(&p).unwrap();
        assert_eq!(Config::load(&p).unwrap().storage.stop_free_mb, 512);
        // A config written before the section existed still loads, with the defaults.
        let text = std::fs::read_to_string(&p).unwrap();
        let (before, _) = text.split_once("[storage]").unwrap();
        std::fs::write(&p, before).unwrap();
        let back = Config::load(&p).unwrap();
        assert_eq!(back.storage.min_free_mb, crate::disk::DEFAULT_MIN_FREE_MB);
    }

    #[test]
    fn a_propose_wait_the_others_would_time_out_on_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        let mut c = Config::new("n0");
        c.consensus.timeout_propose_ms = 1_000;
        c.consensus.propose_wait_ms = 500;
        c.save(&p).unwrap();
        let err = Config::load(&p).unwrap_err().to_string();
        assert!(err.contains("propose_wait_ms"), "{err}");
        c.consensus.propose_wait_ms = 499;
        c.save(&p).unwrap();
        assert_eq!(Config::load(&p).unwrap().consensus.propose_wait_ms, 499);
    }
}

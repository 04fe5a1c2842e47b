//! The one cluster harness: makes validator homes (keys, genesis, configs, free loopback
//! ports), starts real `lockstep` processes, writes `endpoints.json`, and stops, kills and
//! restarts nodes. Used by the `lockstep-testnet` CLI, the end-to-end tests and the benchmark.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bench;
pub mod faults;
pub mod net;

use eyre::{bail, eyre, Context as _};
use lockstep_bundles::ValidatorSet;
use lockstep_client::verify::BatchVerifier;
use lockstep_node::config::Config;
use lockstep_node::genesis::Genesis;
use lockstep_node::home::Home;
use lockstep_node::keys::NodeKey;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Chain id of local networks.
pub const LOCAL_CHAIN_ID: u64 = 1337;
pub const ENDPOINTS_FILE: &str = "endpoints.json";

/// `endpoints.json` (protocol §4).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    pub chain_id: u64,
    pub nodes: Vec<EndpointNode>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointNode {
    pub name: String,
    /// `validator` or `full`.
    #[serde(default)]
    pub role: lockstep_node::config::Role,
    pub rpc: String,
    pub ws: String,
    pub metrics: String,
    pub pid: Option<u32>,
}

/// One validator process and its home.
pub struct Node {
    pub name: String,
    /// The node's home. It may be a mount point (e.g. a small tmpfs for a disk-full fault,
    /// mounted before the node starts: a lab node runs in its own mount namespace, made by
    /// `ip netns exec` from the mounts of the moment): nothing here uses its parent.
    pub home: PathBuf,
    pub config: Config,
    /// Extra environment variables of the process, applied at each [`Cluster::start`] (e.g.
    /// `LD_PRELOAD`/`FAKETIME` for a clock fault).
    pub env: Vec<(String, String)>,
    /// The binary this node runs, when not the cluster's `lockstep` (e.g.
    /// [`byzantine_binary`] for a validator that misbehaves).
    pub bin: Option<PathBuf>,
    child: Option<Child>,
}

impl Node {
    pub fn rpc_url(&self) -> String {
        format!("http://{}", self.config.rpc.listen)
    }
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.config.rpc.listen)
    }
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.config.metrics.listen)
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

/// A local network of validators.
pub struct Cluster {
    pub dir: PathBuf,
    pub chain_id: u64,
    pub genesis: Genesis,
    pub nodes: Vec<Node>,
    bin: PathBuf,
    /// The network lab the nodes run in ([`Network::Lab`]); dropped after the nodes are
    /// killed, so its namespaces go with them.
    lab: Option<net::Lab>,
}

/// Where the validators' network is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Network {
    /// Every node on 127.0.0.1 with free ports (the default).
    #[default]
    Loopback,
    /// Each node in its own network namespace of a [`net::Lab`] (needs root), listening on its
    /// namespace address with fixed ports ([`LAB_RPC_PORT`] …), so faults can be made in the
    /// kernel. With `relay`, every consensus and gossip link goes through the lab's delay relay
    /// (jitter seeded with [`ClusterOptions::lab_seed`]), and peers are listed by their relay
    /// addresses.
    Lab { relay: bool },
}

/// Ports of a node in a lab namespace (each namespace has its own port space).
pub const LAB_RPC_PORT: u16 = 8545;
pub const LAB_METRICS_PORT: u16 = 9100;
pub const LAB_CONSENSUS_PORT: u16 = 26656;
pub const LAB_GOSSIP_PORT: u16 = 26756;

/// Lowest port handed out to local networks.
const FIRST_PORT: u32 = 20_000;

/// A free TCP port on loopback for a node to listen on, from below the kernel's ephemeral
/// range: a port from that range (what binding port 0 returns) can be taken by any outbound
/// connection's source port between being picked and the node binding it — validators dial
/// each other while the rest of the network starts. Ports are handed out in turn from a
/// per-process starting point, each checked free by binding it.
fn free_port() -> eyre::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|p| p.parse::<u32>().ok())
        })
        .unwrap_or(32_768);
    let span = ephemeral_low.saturating_sub(FIRST_PORT);
    if span < 1_000 {
        return Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port());
    }
    // Different processes (test binaries run one after another, a bench beside them) start
    // at different points.
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST_PORT + (start + n) % span;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    eyre::bail!("no free port between {FIRST_PORT} and {ephemeral_low}")
}

/// The `lockstep` binary: `$LOCKSTEP_BIN`, else next to the running executable (or its
/// parent, for test binaries under `deps/`).
pub fn lockstep_binary() -> eyre::Result<PathBuf> {
    binary("lockstep", "LOCKSTEP_BIN")
        .ok_or_else(|| eyre::eyre!("cannot find the lockstep binary; build it (cargo build --bin lockstep) or set LOCKSTEP_BIN"))
}

/// `lockstep-byzantine`, the node's test build with Byzantine behaviours:
/// `$LOCKSTEP_BYZANTINE_BIN`, else next to the running executable.
pub fn byzantine_binary() -> eyre::Result<PathBuf> {
    binary("lockstep-byzantine", "LOCKSTEP_BYZANTINE_BIN").ok_or_else(|| {
        eyre::eyre!(
            "cannot find the lockstep-byzantine binary; build it (cargo build --bin \
             lockstep-byzantine --features lockstep-node/byzantine) or set LOCKSTEP_BYZANTINE_BIN"
        )
    })
}

fn binary(name: &str, env: &str) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let mut dir = exe.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        let candidate = d.join(name);
        if candidate.is_file() {
            return Some(candidate);
        }
        dir = d.parent().map(Path::to_path_buf);
        if dir
            .as_ref()
            .is_some_and(|p| p.file_name().is_some_and(|n| n == "target"))
        {
            break;
        }
    }
    None
}

/// Per-network settings a test or benchmark may change.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub validators: usize,
    /// Full nodes beside the validators (`role = "full"`, named `full0`, `full1`, …, after
    /// the validators in [`Cluster::nodes`]); every node admits them (`peers.allowed`) and
    /// lists every other node as a peer. Loopback only.
    pub full_nodes: usize,
    /// Validators to be (`joiner0`, … after the full nodes): validator-role nodes whose keys
    /// are not in genesis and that no node admits or dials; they list the others as peers and
    /// are admitted when a validator set update adds them (ADR-027). Loopback only.
    pub joiners: usize,
    pub chain_id: u64,
    pub target_block_time_ms: u64,
    pub propose_wait_ms: u64,
    /// Each node's `gossip.publish_linger_ms`.
    pub publish_linger_ms: u64,
    /// Each node's `history.keep_heights` (0 keeps every height).
    pub keep_heights: u64,
    /// Protocol limits written into the genesis file.
    pub limits: lockstep_bundles::Limits,
    /// Applied to each node's config before it is written.
    pub tweak: Option<fn(&mut Config)>,
    /// Loopback, or a network lab.
    pub network: Network,
    /// Seed of the lab relay's jitter.
    pub lab_seed: u64,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            validators: 4,
            full_nodes: 0,
            joiners: 0,
            chain_id: LOCAL_CHAIN_ID,
            target_block_time_ms: lockstep_node::config::DEFAULT_TARGET_BLOCK_TIME_MS,
            propose_wait_ms: lockstep_node::config::DEFAULT_PROPOSE_WAIT_MS,
            publish_linger_ms: lockstep_node::config::DEFAULT_PUBLISH_LINGER_MS,
            keep_heights: lockstep_node::config::DEFAULT_KEEP_HEIGHTS,
            limits: lockstep_bundles::Limits::default(),
            tweak: None,
            network: Network::Loopback,
            lab_seed: 0,
        }
    }
}

impl Cluster {
    /// Opens the network in `dir`, creating homes for a new one. Existing homes (and their
    /// data) are reused as they are: nothing of a previous run is removed. In a lab
    /// ([`Network::Lab`]) the lab is created first, and each existing config's addresses
    /// (listen and peers) are rewritten for it, since a lab's subnet is chosen at run time.
    pub fn create(dir: &Path, opts: &ClusterOptions) -> eyre::Result<Cluster> {
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        let bin = lockstep_binary()?;
        let lab = match opts.network {
            Network::Loopback => None,
            Network::Lab { relay } => {
                let relay_ports = if relay {
                    vec![LAB_CONSENSUS_PORT, LAB_GOSSIP_PORT]
                } else {
                    vec![]
                };
                let lab = net::Lab::create_with(
                    opts.validators,
                    &net::LabOptions {
                        relay_ports,
                        seed: opts.lab_seed,
                    },
                )?;
                Some(lab)
            }
        };
        if (opts.full_nodes > 0 || opts.joiners > 0) && lab.is_some() {
            bail!("full nodes and joiners run on loopback networks only");
        }
        let names: Vec<String> = (0..opts.validators)
            .map(|i| format!("node{i}"))
            .chain((0..opts.full_nodes).map(|i| format!("full{i}")))
            .chain((0..opts.joiners).map(|i| format!("joiner{i}")))
            .collect();
        let existing = names
            .iter()
            .all(|n| Home::new(&dir.join(n)).config().exists());
        if !existing {
            // An empty directory (a mount point made ready for a home) is no partial network.
            if names.iter().any(|n| !is_absent_or_empty(&dir.join(n))) {
                bail!(
                    "{} holds a partial network; remove it or choose another --dir",
                    dir.display()
                );
            }
            Self::make_homes(&dir, &names, opts, lab.as_ref())?;
        } else if let Some(lab) = &lab {
            let homes: Vec<Home> = names.iter().map(|n| Home::new(&dir.join(n))).collect();
            let keys = homes
                .iter()
                .map(|h| NodeKey::load(&h.key()))
                .collect::<eyre::Result<Vec<_>>>()?;
            let addrs = lab_addresses(lab, &gossip_ids(&keys)?)?;
            for (h, a) in homes.iter().zip(&addrs) {
                let mut c = Config::load(&h.config())?;
                a.apply(&mut c);
                c.save(&h.config())?;
            }
        }
        let genesis = Genesis::load(&Home::new(&dir.join(&names[0])).genesis())?;
        if genesis.validators.len() != opts.validators {
            bail!(
                "{} holds a network of {} validators, not {}",
                dir.display(),
                genesis.validators.len(),
                opts.validators
            );
        }
        let nodes = names
            .iter()
            .map(|n| {
                let home = dir.join(n);
                Ok(Node {
                    name: n.clone(),
                    config: Config::load(&Home::new(&home).config())?,
                    home,
                    env: Vec::new(),
                    bin: None,
                    child: None,
                })
            })
            .collect::<eyre::Result<Vec<_>>>()?;
        Ok(Cluster {
            dir,
            chain_id: genesis.chain_id,
            genesis,
            nodes,
            bin,
            lab,
        })
    }

    fn make_homes(
        dir: &Path,
        names: &[String],
        opts: &ClusterOptions,
        lab: Option<&net::Lab>,
    ) -> eyre::Result<()> {
        let keys: Vec<NodeKey> = names.iter().map(|_| NodeKey::generate()).collect();
        let mut genesis = Genesis::new(
            opts.chain_id,
            &keys[..opts.validators]
                .iter()
                .map(|k| k.public_key())
                .collect::<Vec<_>>(),
        );
        genesis.limits = opts.limits;
        let ids = gossip_ids(&keys)?;
        let mut addrs = match lab {
            Some(lab) => lab_addresses(lab, &ids)?,
            None => loopback_addresses(&ids)?,
        };
        // Nobody dials a joiner: it dials them, and is admitted once an update adds it.
        let members = opts.validators + opts.full_nodes;
        if members < names.len() {
            let joiner_ports: Vec<String> = addrs[members..]
                .iter()
                .flat_map(|a| [a.consensus.clone(), a.gossip.clone()])
                .collect();
            for a in &mut addrs[..members] {
                a.consensus_peers.retain(|p| !joiner_ports.contains(p));
                a.gossip_peers
                    .retain(|p| !joiner_ports.iter().any(|j| p.starts_with(&format!("{j}/"))));
            }
        }
        for (i, name) in names.iter().enumerate() {
            let mut c = Config::new(name);
            addrs[i].apply(&mut c);
            c.consensus.target_block_time_ms = opts.target_block_time_ms;
            c.consensus.propose_wait_ms = opts.propose_wait_ms;
            c.gossip.publish_linger_ms = opts.publish_linger_ms;
            c.history.keep_heights = opts.keep_heights;
            if i >= opts.validators && i < members {
                c.role = lockstep_node::config::Role::Full;
            }
            c.peers.allowed = ids[opts.validators..members]
                .iter()
                .enumerate()
                .filter(|(j, _)| opts.validators + j != i)
                .map(|(_, id)| id.clone())
                .collect();
            if let Some(t) = opts.tweak {
                t(&mut c);
            }
            Home::new(&dir.join(name)).init(&c, Some(&keys[i]), Some(&genesis))?;
        }
        Ok(())
    }

    /// The network lab the nodes run in (`None` on loopback).
    pub fn lab(&self) -> Option<&net::Lab> {
        self.lab.as_ref()
    }

    /// What network the nodes run on, for a run's record: loopback, or the lab's namespaces,
    /// and through the relay with the delay of link 0→1 (set per link, usually all alike).
    pub fn network_description(&self) -> String {
        let Some(lab) = &self.lab else {
            return "loopback (127.0.0.1), no link delay".into();
        };
        let mut s = format!(
            "{} network namespaces ({} to {}) on bridge {}, nftables table {}",
            lab.len(),
            lab.namespace(0),
            lab.namespace(lab.len().saturating_sub(1)),
            lab.bridge(),
            net::NFT_TABLE
        );
        if lab.has_relay() {
            let (delay, jitter) = lab.delay(0, 1);
            s.push_str(&format!(
                "; every peer link through the harness's userspace TCP relay (netem is \
                 missing): one-way delay {} ms + uniform jitter up to {} ms per chunk, stream \
                 order kept; direct peer packets dropped by nftables",
                delay.as_millis(),
                jitter.as_millis()
            ));
        } else {
            s.push_str("; no link delay");
        }
        s
    }

    pub fn validator_set(&self) -> eyre::Result<ValidatorSet> {
        self.genesis.validator_set()
    }

    /// A verifier for this network's batches, from its genesis alone.
    pub fn verifier(&self) -> eyre::Result<BatchVerifier> {
        Ok(BatchVerifier::new(self.chain_id, self.validator_set()?))
    }

    /// Starts node `i` (if it is not running).
    pub fn start(&mut self, i: usize) -> eyre::Result<()> {
        let node = &mut self.nodes[i];
        let bin = node.bin.clone().unwrap_or_else(|| self.bin.clone());
        if node.is_running() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.home.join("node.log"))?;
        // In a lab, `ip netns exec` enters the node's namespace and execs the node: the child's
        // pid is the node's, so signals and waits reach it.
        let mut cmd = match &self.lab {
            Some(lab) => lab.command(i, &bin),
            None => Command::new(&bin),
        };
        let child = cmd
            .arg("start")
            .arg("--home")
            .arg(&node.home)
            .arg("--exit-with-parent")
            .envs(node.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .wrap_err_with(|| format!("cannot start {}", bin.display()))?;
        node.child = Some(child);
        self.write_endpoints()
    }

    pub fn start_all(&mut self) -> eyre::Result<()> {
        for i in 0..self.nodes.len() {
            self.start(i)?;
        }
        Ok(())
    }

    fn signal(&mut self, i: usize, sig: nix::sys::signal::Signal) -> eyre::Result<Option<Child>> {
        let Some(child) = self.nodes[i].child.take() else {
            return Ok(None);
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, sig);
        Ok(Some(child))
    }

    /// Kills node `i` with SIGKILL (a crash).
    pub fn kill(&mut self, i: usize) -> eyre::Result<()> {
        if let Some(mut c) = self.signal(i, nix::sys::signal::Signal::SIGKILL)? {
            c.wait()?;
        }
        self.write_endpoints()
    }

    /// Stops node `i` with SIGTERM and waits (SIGKILL after `grace`).
    pub fn stop(&mut self, i: usize, grace: Duration) -> eyre::Result<()> {
        if let Some(mut c) = self.signal(i, nix::sys::signal::Signal::SIGTERM)? {
            let deadline = std::time::Instant::now() + grace;
            loop {
                if c.try_wait()?.is_some() {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    let _ = c.kill();
                    c.wait()?;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.write_endpoints()
    }

    pub fn stop_all(&mut self) -> eyre::Result<()> {
        for i in 0..self.nodes.len() {
            self.stop(i, Duration::from_secs(10))?;
        }
        Ok(())
    }

    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            chain_id: self.chain_id,
            nodes: self
                .nodes
                .iter()
                .map(|n| EndpointNode {
                    name: n.name.clone(),
                    role: n.config.role,
                    rpc: n.rpc_url(),
                    ws: n.ws_url(),
                    metrics: n.metrics_url(),
                    pid: n.pid(),
                })
                .collect(),
        }
    }

    pub fn write_endpoints(&self) -> eyre::Result<()> {
        let path = self.dir.join(ENDPOINTS_FILE);
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&self.endpoints())? + "\n",
        )
        .wrap_err_with(|| format!("cannot write {}", path.display()))
    }

    /// HTTP client for node `i`.
    pub fn http(&self, i: usize) -> eyre::Result<jsonrpsee::http_client::HttpClient> {
        jsonrpsee::http_client::HttpClientBuilder::default()
            .request_timeout(Duration::from_secs(10))
            .build(self.nodes[i].rpc_url())
            .map_err(|e| eyre!("rpc client for {}: {e}", self.nodes[i].name))
    }

    /// Latest height of node `i`, if it answers.
    pub async fn height(&self, i: usize) -> Option<u64> {
        use lockstep_client::SeqApiClient;
        self.http(i).ok()?.block_number().await.ok()
    }

    /// Waits until every node in `which` has decided at least `height`.
    pub async fn wait_for_height(
        &self,
        which: &[usize],
        height: u64,
        timeout: Duration,
    ) -> eyre::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut all = true;
            for &i in which {
                if self.height(i).await.unwrap_or(0) < height {
                    all = false;
                }
            }
            if all {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                let hs: Vec<_> = futures_heights(self, which).await;
                bail!("nodes {which:?} did not reach height {height} within {timeout:?} (heights {hs:?}); logs in {}", self.dir.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every running node answers and has decided height 1.
    pub async fn wait_ready(&self, timeout: Duration) -> eyre::Result<()> {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        self.wait_for_height(&all, 1, timeout).await
    }
}

/// The text a node's Prometheus metrics endpoint serves (a minimal HTTP/1.1 GET over TCP).
pub async fn scrape_metrics(url: &str) -> eyre::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap_or((rest, "metrics"));
    let mut s = tokio::net::TcpStream::connect(host).await?;
    s.write_all(
        format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut body = String::new();
    s.read_to_string(&mut body).await?;
    Ok(body)
}

/// Every series of the metric `name` in a Prometheus text body: `(labels, value)`, where
/// `labels` is the text between the braces (empty for an unlabelled series).
pub fn metric_series<'a>(body: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    body.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = if let Some(r) = rest.strip_prefix('{') {
                r.split_once('}')?
            } else if rest.starts_with(' ') {
                ("", rest)
            } else {
                return None;
            };
            Some((
                labels,
                value.split_whitespace().next()?.parse::<f64>().ok()?,
            ))
        })
        .collect()
}

/// The sum of every series of the metric `name` in a Prometheus text body (0 if none).
pub fn metric_sum(body: &str, name: &str) -> f64 {
    metric_series(body, name).iter().map(|(_, v)| v).sum()
}

/// Bytes of the files under `dir`, recursively (what a node's store takes on disk).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

async fn futures_heights(c: &Cluster, which: &[usize]) -> Vec<Option<u64>> {
    let mut v = Vec::new();
    for &i in which {
        v.push(c.height(i).await);
    }
    v
}

/// Where one node listens and how it reaches each peer.
struct NodeAddresses {
    rpc: std::net::SocketAddr,
    metrics: std::net::SocketAddr,
    consensus: String,
    gossip: String,
    consensus_peers: Vec<String>,
    gossip_peers: Vec<String>,
    /// The harness's own address as the node sees it, when not loopback: exempt from the
    /// per-address RPC limits, as an operator exempts its own tools (the harness reads every
    /// block of every node at the end of a fault run).
    harness: Option<std::net::IpAddr>,
}

impl NodeAddresses {
    fn apply(&self, c: &mut Config) {
        if let Some(ip) = self.harness {
            if !c.rpc.ip_limit_exempt.contains(&ip) {
                c.rpc.ip_limit_exempt.push(ip);
            }
        }
        c.rpc.listen = self.rpc;
        c.metrics.listen = self.metrics;
        c.consensus.listen = self.consensus.clone();
        c.consensus.peers = self.consensus_peers.clone();
        c.gossip.listen = self.gossip.clone();
        c.gossip.peers = self.gossip_peers.clone();
    }
}

/// Every node's gossip peer id (its key's libp2p id, as on the consensus swarm).
fn gossip_ids(keys: &[NodeKey]) -> eyre::Result<Vec<String>> {
    keys.iter()
        .map(|k| lockstep_p2p_peer_id(&k.secret))
        .collect()
}

/// Loopback: free ports on 127.0.0.1, peers by their listen addresses.
fn loopback_addresses(gossip_ids: &[String]) -> eyre::Result<Vec<NodeAddresses>> {
    let mut ports = Vec::new();
    for _ in gossip_ids {
        ports.push([free_port()?, free_port()?, free_port()?, free_port()?]);
    }
    let mut out = Vec::new();
    for (i, [rpc, metrics, consensus, gossip]) in ports.iter().copied().enumerate() {
        let others = || (0..ports.len()).filter(move |&j| j != i);
        out.push(NodeAddresses {
            rpc: format!("127.0.0.1:{rpc}").parse()?,
            metrics: format!("127.0.0.1:{metrics}").parse()?,
            consensus: format!("/ip4/127.0.0.1/tcp/{consensus}"),
            gossip: format!("/ip4/127.0.0.1/tcp/{gossip}"),
            consensus_peers: others()
                .map(|j| format!("/ip4/127.0.0.1/tcp/{}", ports[j][2]))
                .collect(),
            gossip_peers: others()
                .map(|j| format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", ports[j][3], gossip_ids[j]))
                .collect(),
            // Loopback is exempt by default.
            harness: None,
        });
    }
    Ok(out)
}

/// A lab: each node on its namespace address with the fixed lab ports; peers by real address,
/// or by the relay's address of link `i→j` when the lab relays.
fn lab_addresses(lab: &net::Lab, gossip_ids: &[String]) -> eyre::Result<Vec<NodeAddresses>> {
    let peer = |i: usize, j: usize, port: u16| -> eyre::Result<std::net::SocketAddr> {
        if lab.has_relay() {
            lab.relay_addr(i, j, port)
        } else {
            Ok(std::net::SocketAddr::from((lab.node_ip(j), port)))
        }
    };
    let mut out = Vec::new();
    for i in 0..gossip_ids.len() {
        let ip = lab.node_ip(i);
        let mut consensus_peers = Vec::new();
        let mut gossip_peers = Vec::new();
        for (j, id) in gossip_ids.iter().enumerate() {
            if j != i {
                let c = peer(i, j, LAB_CONSENSUS_PORT)?;
                let g = peer(i, j, LAB_GOSSIP_PORT)?;
                consensus_peers.push(format!("/ip4/{}/tcp/{}", c.ip(), c.port()));
                gossip_peers.push(format!("/ip4/{}/tcp/{}/p2p/{id}", g.ip(), g.port()));
            }
        }
        out.push(NodeAddresses {
            rpc: (ip, LAB_RPC_PORT).into(),
            metrics: (ip, LAB_METRICS_PORT).into(),
            consensus: format!("/ip4/{ip}/tcp/{LAB_CONSENSUS_PORT}"),
            gossip: format!("/ip4/{ip}/tcp/{LAB_GOSSIP_PORT}"),
            consensus_peers,
            gossip_peers,
            harness: Some(lab.harness_ip().into()),
        });
    }
    Ok(out)
}

/// Whether `dir` is missing or an empty directory.
fn is_absent_or_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => !dir.exists(),
    }
}

fn lockstep_p2p_peer_id(secret: &[u8; 32]) -> eyre::Result<String> {
    lockstep_p2p::peer_id(secret)
        .map(|p| p.to_string())
        .map_err(|e| eyre!("{e}"))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = self.write_endpoints();
    }
}

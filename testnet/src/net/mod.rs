//! The network lab: validators on a real (virtual) network whose faults are made in the kernel.
//!
//! [`Lab::create`] makes one network namespace per node, each with a veth pair whose other end
//! is a port of one bridge in the root namespace. Addresses live only inside the namespaces
//! (node `i` at `10.213.K.(i+1)/24` on its `eth0`), plus the harness's own on the bridge
//! (`10.213.K.254`); `K` is the lab's id, claimed under a lock so labs of concurrent runs
//! coexist. Names start with [`NAME_PREFIX`]: bridge `lslabK`, root-side veth `lslabKvI`,
//! namespace `lslabKnI`; `/run/lockstep-lab/K.owner` names the owning process, so
//! [`Lab::cleanup_stale`] can remove what killed runs left behind.
//!
//! Faults are nftables rules in each namespace's `table inet lockstep`, rewritten atomically
//! (one `nft -f` transaction per namespace) on each change, so no path routes around them;
//! packets from and to the harness's bridge address are always accepted, so RPC and metrics
//! stay reachable whatever the fault. A rule naming a node matches both its real address and
//! its shadow (relay) address. Every rule is on the receiver's input hook: whatever reaches a
//! namespace passes it exactly once, directly or through the relay (the relay's legs towards a
//! node come from the sender's shadow address), so a loss percentage counts once, and the
//! sender sees silence as on a real network — a drop on its own output hook would fail its
//! `connect` and `send` at once with EPERM instead.
//!
//! The kernel has no netem, so delay and jitter are made by a userspace TCP relay in the
//! harness process (see `relay.rs`): each node `j` gets a shadow address `10.213.K.(101+j)` on
//! the bridge, and for each relayed node port `P` and directed link `i→j` a listener on
//! `shadow_j:(P + RELAY_PORT_OFFSET + i)` forwards to `real_j:P` from `shadow_i`. In relay mode
//! packets between two nodes' real addresses are dropped, so every peer connection goes through
//! the relay.

mod relay;
#[cfg(test)]
mod tests;

use eyre::{bail, eyre, Context as _};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Every name the lab makes (bridge, veths, namespaces) starts with this.
pub const NAME_PREFIX: &str = "lslab";
/// Most nodes in one lab (their shadow addresses are `.101` to `.200`).
pub const MAX_NODES: usize = 100;
/// A relayed node port `P` of link `i→j` is reached at `shadow_j:(P + RELAY_PORT_OFFSET + i)`.
pub const RELAY_PORT_OFFSET: u16 = 1_000;
/// The nftables table the lab writes in each namespace.
pub const NFT_TABLE: &str = "inet lockstep";

/// Lab subnets are `10.213.K.0/24`.
const SUBNET: [u8; 2] = [10, 213];
const HARNESS_HOST: u8 = 254;
const SHADOW_FIRST_HOST: u8 = 101;
/// Lab ids tried, lowest first.
const IDS: std::ops::RangeInclusive<u8> = 1..=250;
/// Owner files and the lock that serialises claiming ids and cleaning up.
const STATE_DIR: &str = "/run/lockstep-lab";

/// What [`Lab::create_with`] makes besides the namespaces.
#[derive(Debug, Clone, Default)]
pub struct LabOptions {
    /// Node ports reached through the delay relay (e.g. the consensus and gossip ports);
    /// empty: no relay, nodes talk directly.
    pub relay_ports: Vec<u16>,
    /// Seed of the relay's jitter samples.
    pub seed: u64,
}

/// The lab's fault state; every namespace's rules are derived from it.
#[derive(Debug, Default)]
struct Faults {
    /// Directed links cut by the current partition.
    partition: BTreeSet<(usize, usize)>,
    /// Directed links cut by `block_one_way`.
    one_way: BTreeSet<(usize, usize)>,
    /// Loss percentage per directed link.
    loss: BTreeMap<(usize, usize), u8>,
}

/// The `ip` and `nft` programs.
#[derive(Debug, Clone)]
struct Tools {
    ip: PathBuf,
    nft: PathBuf,
}

impl Tools {
    fn find() -> eyre::Result<Tools> {
        if !nix::unistd::geteuid().is_root() {
            bail!(
                "fault tests need root: network namespaces, veth pairs, a bridge and nftables \
                 rules are made with `ip` and `nft` (run the tests as root, e.g. with sudo -E)"
            );
        }
        let ip = find_program("ip").ok_or_else(|| {
            eyre!("fault tests need `ip` (iproute2): install it with `apt-get install -y iproute2`")
        })?;
        let nft = find_program("nft").ok_or_else(|| {
            eyre!(
                "fault tests need `nft` (nftables): install it with `apt-get install -y nftables` \
                 (scripts/deps.sh installs it)"
            )
        })?;
        Ok(Tools { ip, nft })
    }
}

/// `name` on `PATH`, or in the system binary directories a non-login root shell may lack.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs `cmd`, returning its stdout; a failure names the command and its stderr.
fn run(cmd: &mut Command) -> eyre::Result<String> {
    run_with_input(cmd, None)
}

fn run_with_input(cmd: &mut Command, input: Option<&str>) -> eyre::Result<String> {
    let shown = format!("{cmd:?}");
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .wrap_err_with(|| format!("cannot run {shown}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .wrap_err_with(|| format!("cannot write to {shown}"))?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The lock serialising id claims and stale cleanup across processes (and threads: each call
/// opens its own file description).
fn state_lock() -> eyre::Result<nix::fcntl::Flock<std::fs::File>> {
    std::fs::create_dir_all(STATE_DIR).wrap_err_with(|| format!("cannot create {STATE_DIR}"))?;
    let path = Path::new(STATE_DIR).join("lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .wrap_err_with(|| format!("cannot open {}", path.display()))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| eyre!("cannot lock {}: {e}", path.display()))
}

fn owner_file(id: u8) -> PathBuf {
    Path::new(STATE_DIR).join(format!("{id}.owner"))
}

/// A process's start time (clock ticks since boot), to tell it from a later one with its pid.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, starttime 22.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the owner recorded in an owner file still runs.
fn owner_alive(text: &str) -> bool {
    let mut it = text.split_whitespace();
    let (Some(pid), Some(start)) = (it.next(), it.next()) else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    start_time(pid) == Some(start)
}

/// The lab id in a name made by a lab (`lslab7`, `lslab7v0`, `lslab7n3`), if it is one.
fn lab_id_of(name: &str) -> Option<u8> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let tail = &rest[digits.len()..];
    let ok_tail = tail.is_empty()
        || ((tail.starts_with('v') || tail.starts_with('n'))
            && tail.len() > 1
            && tail[1..].chars().all(|c| c.is_ascii_digit()));
    if !ok_tail {
        return None;
    }
    digits.parse().ok()
}

/// Names of the network namespaces (`ip netns list`).
fn namespaces(t: &Tools) -> eyre::Result<Vec<String>> {
    Ok(run(Command::new(&t.ip).args(["netns", "list"]))?
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

/// Names of the root namespace's links (`ip -o link show`), without `@peer` suffixes.
fn links(t: &Tools) -> eyre::Result<Vec<String>> {
    Ok(run(Command::new(&t.ip).args(["-o", "link", "show"]))?
        .lines()
        .filter_map(|l| {
            let name = l.split(": ").nth(1)?;
            Some(name.split('@').next().unwrap_or(name).to_string())
        })
        .collect())
}

/// Removes every lab resource whose owner is gone; the caller holds the state lock.
fn cleanup_stale_locked(t: &Tools) -> eyre::Result<Vec<String>> {
    let stale = |id: u8| match std::fs::read_to_string(owner_file(id)) {
        Ok(text) => !owner_alive(&text),
        Err(_) => true,
    };
    let mut removed = Vec::new();
    for ns in namespaces(t)? {
        if lab_id_of(&ns).is_some_and(stale) {
            run(Command::new(&t.ip).args(["netns", "del", &ns]))?;
            removed.push(format!("namespace {ns}"));
        }
    }
    for link in links(t)? {
        if lab_id_of(&link).is_some_and(stale) {
            // A veth may already be gone with its namespace.
            if run(Command::new(&t.ip).args(["link", "del", &link])).is_ok() {
                removed.push(format!("link {link}"));
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir(STATE_DIR) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name
                .strip_suffix(".owner")
                .and_then(|s| s.parse::<u8>().ok())
            else {
                continue;
            };
            if stale(id) {
                std::fs::remove_file(e.path())?;
                removed.push(format!("owner file {name}"));
            }
        }
    }
    Ok(removed)
}

/// A network of `n` namespaces on one bridge, with nftables faults and an optional delay relay.
/// Dropping it removes everything it made.
pub struct Lab {
    id: u8,
    n: usize,
    tools: Tools,
    relay_ports: Vec<u16>,
    relay: Option<relay::Relay>,
    faults: Mutex<Faults>,
    /// Set once everything is removed (by a failed create), so `Drop` does nothing.
    removed: bool,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("id", &self.id)
            .field("nodes", &self.n)
            .field("relay_ports", &self.relay_ports)
            .finish()
    }
}

impl Lab {
    /// A lab of `n` namespaces, nodes talking directly.
    pub fn create(n: usize) -> eyre::Result<Lab> {
        Self::create_with(n, &LabOptions::default())
    }

    /// A lab of `n` namespaces; with `opts.relay_ports`, peer traffic to those ports goes
    /// through the delay relay. Fails (never skips) when not root or `ip`/`nft` are missing.
    pub fn create_with(n: usize, opts: &LabOptions) -> eyre::Result<Lab> {
        let tools = Tools::find()?;
        if n == 0 || n > MAX_NODES {
            bail!("a lab holds 1 to {MAX_NODES} nodes, not {n}");
        }
        let mut ports = opts.relay_ports.clone();
        ports.sort_unstable();
        ports.dedup();
        for w in ports.windows(2) {
            if usize::from(w[1] - w[0]) < n {
                bail!(
                    "relayed ports {} and {} are closer than the {n} nodes: their relay ports \
                     (port + {RELAY_PORT_OFFSET} + node) would overlap",
                    w[0],
                    w[1]
                );
            }
        }
        if let Some(&p) = ports.last() {
            if usize::from(p) + usize::from(RELAY_PORT_OFFSET) + n > usize::from(u16::MAX) {
                bail!("relayed port {p} is too high (relay ports are port + {RELAY_PORT_OFFSET} + node)");
            }
        }
        let id = {
            let _lock = state_lock()?;
            cleanup_stale_locked(&tools)?;
            Self::claim_id(&tools)?
        };
        let mut lab = Lab {
            id,
            n,
            tools,
            relay_ports: ports,
            relay: None,
            faults: Mutex::new(Faults::default()),
            removed: false,
        };
        if let Err(e) = lab.setup(opts.seed) {
            lab.remove();
            return Err(e.wrap_err(format!("cannot create network lab {id}")));
        }
        Ok(lab)
    }

    /// Claims the lowest free id: no owner file, no leftover names, subnet unused. The caller
    /// holds the state lock.
    fn claim_id(t: &Tools) -> eyre::Result<u8> {
        let names: Vec<String> = namespaces(t)?.into_iter().chain(links(t)?).collect();
        let addrs = run(Command::new(&t.ip).args(["-4", "-o", "addr", "show"]))?;
        let me = std::process::id();
        let start = start_time(me).ok_or_else(|| eyre!("cannot read /proc/{me}/stat"))?;
        for id in IDS {
            let subnet = format!(" {}.{}.{id}.", SUBNET[0], SUBNET[1]);
            if owner_file(id).exists()
                || names.iter().any(|n| lab_id_of(n) == Some(id))
                || addrs.contains(&subnet)
            {
                continue;
            }
            let path = owner_file(id);
            let mut f = match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).wrap_err_with(|| format!("cannot create {}", path.display()))
                }
            };
            writeln!(f, "{me} {start}")?;
            return Ok(id);
        }
        bail!("no free network lab id: every 10.213.K.0/24 ({IDS:?}) is in use")
    }

    fn setup(&mut self, seed: u64) -> eyre::Result<()> {
        let ip = self.tools.ip.clone();
        let br = self.bridge();
        run(Command::new(&ip).args(["link", "add", &br, "type", "bridge"]))?;
        // The harness's address first: it is the primary one, the source of harness traffic.
        run(Command::new(&ip).args([
            "addr",
            "add",
            &format!("{}/24", self.harness_ip()),
            "dev",
            &br,
        ]))?;
        if !self.relay_ports.is_empty() {
            for j in 0..self.n {
                run(Command::new(&ip).args([
                    "addr",
                    "add",
                    &format!("{}/24", self.shadow_ip(j)),
                    "dev",
                    &br,
                ]))?;
            }
        }
        run(Command::new(&ip).args(["link", "set", &br, "up"]))?;
        for i in 0..self.n {
            let ns = self.namespace(i);
            let veth = format!("{NAME_PREFIX}{}v{i}", self.id);
            run(Command::new(&ip).args(["netns", "add", &ns]))?;
            run(Command::new(&ip).args([
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]))?;
            run(Command::new(&ip).args(["link", "set", &veth, "master", &br, "up"]))?;
            run(Command::new(&ip).args([
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", self.node_ip(i)),
                "dev",
                "eth0",
            ]))?;
            run(Command::new(&ip).args(["-n", &ns, "link", "set", "eth0", "up"]))?;
            run(Command::new(&ip).args(["-n", &ns, "link", "set", "lo", "up"]))?;
        }
        self.apply(&Faults::default())?;
        if !self.relay_ports.is_empty() {
            let mut listeners = Vec::new();
            for &port in &self.relay_ports {
                for from in 0..self.n {
                    for to in 0..self.n {
                        if from != to {
                            listeners.push(relay::Listener {
                                from,
                                to,
                                listen: self.relay_addr_unchecked(from, to, port),
                                source: self.shadow_ip(from),
                                target: SocketAddr::from((self.node_ip(to), port)),
                            });
                        }
                    }
                }
            }
            self.relay = Some(relay::Relay::start(self.n, listeners, seed)?);
        }
        Ok(())
    }

    /// Removes every lab resource whose owning process is gone (killed runs); returns what
    /// it removed. [`Lab::create`] does this first.
    pub fn cleanup_stale() -> eyre::Result<Vec<String>> {
        let tools = Tools::find()?;
        let _lock = state_lock()?;
        cleanup_stale_locked(&tools)
    }

    /// Removes everything this lab made (best effort: each step runs whatever failed before).
    fn remove(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        // The relay's tasks and sockets first, then the network under them.
        drop(self.relay.take());
        let ip = &self.tools.ip;
        for i in 0..self.n {
            let _ = run(Command::new(ip).args([
                "link",
                "del",
                &format!("{NAME_PREFIX}{}v{i}", self.id),
            ]));
            let _ = run(Command::new(ip).args(["netns", "del", &self.namespace(i)]));
        }
        let _ = run(Command::new(ip).args(["link", "del", &self.bridge()]));
        let _ = std::fs::remove_file(owner_file(self.id));
    }

    /// The lab's id `K` (its subnet is `10.213.K.0/24`).
    pub fn id(&self) -> u8 {
        self.id
    }

    /// Nodes (namespaces) in the lab.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The bridge's name in the root namespace.
    pub fn bridge(&self) -> String {
        format!("{NAME_PREFIX}{}", self.id)
    }

    /// Node `i`'s network namespace (for `ip netns exec`).
    pub fn namespace(&self, i: usize) -> String {
        format!("{NAME_PREFIX}{}n{i}", self.id)
    }

    /// All namespaces of the lab.
    pub fn namespaces(&self) -> Vec<String> {
        (0..self.n).map(|i| self.namespace(i)).collect()
    }

    fn host(&self, h: u8) -> Ipv4Addr {
        Ipv4Addr::new(SUBNET[0], SUBNET[1], self.id, h)
    }

    /// Node `i`'s address (on `eth0` in its namespace).
    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        self.host(u8::try_from(i + 1).unwrap_or(u8::MAX))
    }

    /// Node `i`'s shadow address on the bridge: the source of relayed traffic from `i`, and
    /// the address of the relay's listeners towards `i`.
    pub fn shadow_ip(&self, i: usize) -> Ipv4Addr {
        self.host(SHADOW_FIRST_HOST.saturating_add(u8::try_from(i).unwrap_or(u8::MAX)))
    }

    /// The harness's address on the bridge; always reaches every node.
    pub fn harness_ip(&self) -> Ipv4Addr {
        self.host(HARNESS_HOST)
    }

    /// Whether peer traffic goes through the delay relay.
    pub fn has_relay(&self) -> bool {
        self.relay.is_some()
    }

    /// The ports the relay forwards.
    pub fn relay_ports(&self) -> &[u16] {
        &self.relay_ports
    }

    fn relay_addr_unchecked(&self, from: usize, to: usize, port: u16) -> SocketAddr {
        let p = port
            .saturating_add(RELAY_PORT_OFFSET)
            .saturating_add(u16::try_from(from).unwrap_or(u16::MAX));
        SocketAddr::from((self.shadow_ip(to), p))
    }

    /// Where node `from` reaches node `to`'s `port` through the relay (link `from→to`).
    pub fn relay_addr(&self, from: usize, to: usize, port: u16) -> eyre::Result<SocketAddr> {
        self.check(from)?;
        self.check(to)?;
        if self.relay.is_none() {
            bail!("lab {} has no relay", self.id);
        }
        if from == to || !self.relay_ports.contains(&port) {
            bail!(
                "the relay forwards ports {:?} between different nodes, not {from}→{to}:{port}",
                self.relay_ports
            );
        }
        Ok(self.relay_addr_unchecked(from, to, port))
    }

    /// A command run inside node `i`'s namespace (`ip netns exec <ns> <program>`); `exec`
    /// keeps the pid, so the child's id is the program's.
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(&self.tools.ip);
        c.arg("netns")
            .arg("exec")
            .arg(self.namespace(i))
            .arg(program);
        c
    }

    /// Runs `f` on a thread inside node `i`'s namespace: sockets it creates belong to that
    /// namespace wherever they are used afterwards.
    pub fn in_namespace<T: Send>(&self, i: usize, f: impl FnOnce() -> T + Send) -> eyre::Result<T> {
        self.check(i)?;
        let path = Path::new("/var/run/netns").join(self.namespace(i));
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = std::fs::File::open(&path)
                    .wrap_err_with(|| format!("cannot open {}", path.display()))?;
                nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| eyre!("cannot enter {}: {e}", path.display()))?;
                Ok(f())
            })
            .join()
            .map_err(|_| eyre!("the thread in {} panicked", path.display()))?
        })
    }

    /// Node `i`'s nftables table as `nft list` shows it.
    pub fn rules(&self, i: usize) -> eyre::Result<String> {
        self.check(i)?;
        run(self
            .command(i, &self.tools.nft)
            .args(["list", "table", "inet", "lockstep"]))
    }

    fn check(&self, i: usize) -> eyre::Result<()> {
        if i >= self.n {
            bail!("lab {} has nodes 0..{}, not {i}", self.id, self.n);
        }
        Ok(())
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Node `i`'s addresses as an nft set: real and shadow.
    fn ids(&self, i: usize) -> String {
        format!("{{ {}, {} }}", self.node_ip(i), self.shadow_ip(i))
    }

    /// Node `x`'s whole table for the fault state `f` (replaced in one transaction).
    fn ruleset(&self, x: usize, f: &Faults) -> String {
        let mut input = String::new();
        let _ = writeln!(input, "    iifname \"lo\" accept");
        let _ = writeln!(
            input,
            "    ip saddr {} accept comment \"harness\"",
            self.harness_ip()
        );
        if !self.relay_ports.is_empty() {
            let others: Vec<String> = (0..self.n)
                .filter(|&o| o != x)
                .map(|o| self.node_ip(o).to_string())
                .collect();
            if !others.is_empty() {
                let _ = writeln!(
                    input,
                    "    ip saddr {{ {} }} drop comment \"relay mode: no direct peer traffic\"",
                    others.join(", ")
                );
            }
        }
        for (what, set) in [("partition", &f.partition), ("one-way", &f.one_way)] {
            for &(from, to) in set {
                if to == x {
                    let _ = writeln!(
                        input,
                        "    ip saddr {} drop comment \"{what} {from}->{to}\"",
                        self.ids(from)
                    );
                }
            }
        }
        for (&(from, to), &p) in &f.loss {
            if to == x {
                // `numgen random mod 100` is 0..=99: 100 % is a plain drop.
                let when = if p >= 100 {
                    String::new()
                } else {
                    format!("numgen random mod 100 < {p} ")
                };
                let _ = writeln!(
                    input,
                    "    ip saddr {} {when}drop comment \"loss {p}% {from}->{to}\"",
                    self.ids(from)
                );
            }
        }
        format!(
            "add table {NFT_TABLE}\ndelete table {NFT_TABLE}\ntable {NFT_TABLE} {{\n  \
             chain input {{\n    type filter hook input priority 0; policy accept;\n{input}  }}\n}}\n"
        )
    }

    /// Writes every namespace's table for the fault state `f`.
    fn apply(&self, f: &Faults) -> eyre::Result<()> {
        for x in 0..self.n {
            let rules = self.ruleset(x, f);
            run_with_input(
                self.command(x, &self.tools.nft).args(["-f", "-"]),
                Some(&rules),
            )
            .wrap_err_with(|| format!("cannot write the nftables rules of node {x}:\n{rules}"))?;
        }
        Ok(())
    }

    /// Changes the fault state with `change` and rewrites the rules; on failure the old state
    /// is kept (and written back).
    fn change(&self, change: impl FnOnce(&mut Faults)) -> eyre::Result<()> {
        let mut f = self.faults();
        let old = Faults {
            partition: f.partition.clone(),
            one_way: f.one_way.clone(),
            loss: f.loss.clone(),
        };
        change(&mut f);
        if let Err(e) = self.apply(&f) {
            *f = old;
            let _ = self.apply(&f);
            return Err(e);
        }
        Ok(())
    }

    fn mechanism(&self) -> String {
        format!(
            "nftables drop rules in each namespace's table {NFT_TABLE} (lab {}), matching real \
             and relay (shadow) addresses; harness {} exempt",
            self.id,
            self.harness_ip()
        )
    }

    /// Cuts the network into `groups`: nodes in different groups exchange no packet; a node in
    /// two groups reaches both; nodes in no group keep full connectivity. Replaces the previous
    /// partition (one-way blocks and loss stay).
    pub fn partition(&self, groups: &[Vec<usize>]) -> eyre::Result<String> {
        for &i in groups.iter().flatten() {
            self.check(i)?;
        }
        let grouped: BTreeSet<usize> = groups.iter().flatten().copied().collect();
        let mut cut = BTreeSet::new();
        for &a in &grouped {
            for &b in &grouped {
                let together = groups.iter().any(|g| g.contains(&a) && g.contains(&b));
                if a != b && !together {
                    cut.insert((a, b));
                }
            }
        }
        let shown = groups
            .iter()
            .map(|g| {
                let v: Vec<String> = g.iter().map(usize::to_string).collect();
                format!("{{{}}}", v.join(","))
            })
            .collect::<Vec<_>>()
            .join("|");
        self.change(|f| f.partition = cut)?;
        Ok(format!(
            "partition {shown}: {}, both directions, on each receiver's input hook",
            self.mechanism()
        ))
    }

    /// Drops every packet from `from` to `to`; the reverse direction is untouched (a TCP
    /// connection either way then stalls, its replies being lost).
    pub fn block_one_way(&self, from: usize, to: usize) -> eyre::Result<String> {
        self.check(from)?;
        self.check(to)?;
        self.change(|f| {
            f.one_way.insert((from, to));
        })?;
        Ok(format!(
            "block {from}->{to}: {}, on {to}'s input hook",
            self.mechanism()
        ))
    }

    /// Undoes [`Lab::block_one_way`] for that link.
    pub fn unblock_one_way(&self, from: usize, to: usize) -> eyre::Result<String> {
        self.change(|f| {
            f.one_way.remove(&(from, to));
        })?;
        Ok(format!(
            "unblock {from}->{to}: its nftables drop rules removed"
        ))
    }

    /// Drops `percent` % of the packets from `from` to `to` at random (0 removes the rule).
    pub fn set_loss(&self, from: usize, to: usize, percent: u8) -> eyre::Result<String> {
        self.check(from)?;
        self.check(to)?;
        if percent > 100 {
            bail!("loss is a percentage, not {percent}");
        }
        self.change(|f| {
            if percent == 0 {
                f.loss.remove(&(from, to));
            } else {
                f.loss.insert((from, to), percent);
            }
        })?;
        Ok(format!(
            "loss {percent}% {from}->{to}: nftables `numgen random mod 100 < {percent} drop` on \
             {to}'s input hook in table {NFT_TABLE} (real and relay addresses of {from})"
        ))
    }

    /// Removes every partition, one-way block and loss rule (relay delays stay).
    pub fn heal(&self) -> eyre::Result<String> {
        self.change(|f| *f = Faults::default())?;
        Ok(format!(
            "heal: every partition, block and loss rule removed from table {NFT_TABLE} in lab {}",
            self.id
        ))
    }

    /// Sets the one-way delay of link `from→to` through the relay: each chunk is delivered
    /// `delay` plus a uniform sample of `[0, jitter]` after it arrived, never before the
    /// previous chunk of its stream. Applies to chunks arriving from now on.
    pub fn set_delay(
        &self,
        from: usize,
        to: usize,
        delay: Duration,
        jitter: Duration,
    ) -> eyre::Result<String> {
        self.check(from)?;
        self.check(to)?;
        let Some(r) = &self.relay else {
            bail!(
                "lab {} has no relay: delays need LabOptions::relay_ports (the kernel has no netem)",
                self.id
            );
        };
        r.set_delay(from, to, delay, jitter);
        Ok(self.delay_mechanism(&format!("{from}->{to}"), delay, jitter))
    }

    fn delay_mechanism(&self, links: &str, delay: Duration, jitter: Duration) -> String {
        format!(
            "delay {links} {} ms + jitter up to {} ms: userspace TCP relay in the harness \
             (per chunk, stream order kept) via shadow addresses on bridge {}; direct peer \
             packets dropped by nftables",
            delay.as_millis(),
            jitter.as_millis(),
            self.bridge()
        )
    }

    /// [`Lab::set_delay`] on every directed link.
    pub fn set_delay_all(&self, delay: Duration, jitter: Duration) -> eyre::Result<String> {
        for from in 0..self.n {
            for to in 0..self.n {
                if from != to {
                    self.set_delay(from, to, delay, jitter)?;
                }
            }
        }
        Ok(self.delay_mechanism("on every link", delay, jitter))
    }

    /// The delay and jitter of link `from→to` (zero without a relay).
    pub fn delay(&self, from: usize, to: usize) -> (Duration, Duration) {
        self.relay
            .as_ref()
            .map(|r| r.delay(from, to))
            .unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.remove();
    }
}

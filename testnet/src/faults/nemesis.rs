//! The nemesis: faults applied to a running network and undone, each made by a real mechanism
//! (kernel packet filters, signals, a delaying relay, libfaketime, a full file system), and
//! each saying which mechanism it used.

use crate::Cluster;
use eyre::{bail, Context as _};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Size of the tmpfs each validator's home is on in a fault run (filled by [`Fault::DiskFull`]).
pub const HOME_TMPFS_MB: u64 = 1_536;
/// How long a graceful stop may take before the node is killed.
const GRACE: Duration = Duration::from_secs(10);

/// One fault. Nodes are indices into the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// Nodes in different groups exchange no packet; a node in two groups bridges them.
    Partition(Vec<Vec<usize>>),
    /// Packets from `from` to each of `to` are dropped; the other way they pass.
    OneWay { from: usize, to: Vec<usize> },
    /// SIGSTOP, then SIGCONT.
    Pause(usize),
    /// SIGKILL, then started again.
    Kill(usize),
    /// SIGTERM (a graceful stop), then started again.
    Restart(usize),
    /// SIGKILL, its store and consensus WAL deleted (keys, config and signed-message log
    /// kept), then started again: it syncs from its peers.
    Wipe(usize),
    /// The node's wall clock runs `secs` ahead (negative: behind).
    Skew { node: usize, secs: i64 },
    /// The node's home file system filled to the last byte. The node's free-space guard
    /// (`storage.min_free_mb`, `storage.stop_free_mb`) sees it coming and stops the node.
    DiskFull(usize),
    /// The same with the node's free-space guard turned off (restarted with both limits 0
    /// first), so its writes fail with `ENOSPC`: a store write that fails.
    DiskFullUnguarded(usize),
    /// Every link delayed (one way) with jitter, and lossy.
    Slow {
        delay_ms: u64,
        jitter_ms: u64,
        loss_pct: u8,
    },
    /// A validator removed from the set by an on-chain update the others co-sign (ADR-027);
    /// its node runs on, following without voting. Undone by an update adding it back.
    RemoveValidator(usize),
    /// The validators restarted as `lockstep-byzantine`, misbehaving alike; undone by
    /// restarting them as `lockstep` (same keys, stores and WALs).
    Byzantine {
        nodes: Vec<usize>,
        behaviour: Misbehaviour,
    },
}

/// Junk proposal streams a flooding validator publishes at every round it enters (about 30
/// a second on a healthy 4-validator network: some 700 junk streams a second).
pub const FLOOD_PER_ROUND: u32 = 24;

/// What a Byzantine validator does (its config's `[byzantine]` section).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Misbehaviour {
    /// Every vote it signs, it also signs for another value, and sends both.
    EquivocateVotes,
    /// Every proposal it signs, it also signs for another block, and sends both.
    EquivocateProposals,
    /// Sends no vote and no proposal.
    Silent,
    /// Gossips none of the bundles submitted to it and serves no fetch: its blocks name
    /// bundles only it has.
    Withhold,
    /// As proposer, leaves out every bundle of workload signer `signer` (public key `key`,
    /// hex).
    Censor { signer: usize, key: String },
    /// As proposer, proposes only invalid blocks: every kind in turn (a bundle with a bad
    /// signature, expired, already included, named twice, too many bytes, a forged part
    /// signature, a timestamp an hour ahead).
    Invalid,
    /// At the start of every round, publishes junk proposals for this and the next two
    /// heights (signed with its key: for its own rounds, second proposals) and streams it
    /// never finishes.
    Flood,
}

impl Misbehaviour {
    pub fn describe(&self) -> &'static str {
        match self {
            Misbehaviour::EquivocateVotes => "signs two votes for every vote",
            Misbehaviour::EquivocateProposals => "signs two proposals for every proposal",
            Misbehaviour::Silent => "sends no vote and no proposal",
            Misbehaviour::Withhold => "withholds its bundles (no gossip, no fetch)",
            Misbehaviour::Censor { .. } => "censors one signer's bundles when it proposes",
            Misbehaviour::Invalid => "proposes only invalid blocks (every kind in turn)",
            Misbehaviour::Flood => "floods its peers with junk proposals every round",
        }
    }

    /// Whether its signed-message log must show conflicting signatures (else the run did not
    /// test what it says).
    pub fn equivocates(&self) -> bool {
        matches!(
            self,
            Misbehaviour::EquivocateVotes | Misbehaviour::EquivocateProposals | Misbehaviour::Flood
        )
    }

    /// How many heights above the one in progress it signs at (a flooding validator's junk
    /// goes two heights ahead): its own conflicts there are still its behaviour.
    pub fn signs_ahead(&self) -> u64 {
        match self {
            Misbehaviour::Flood => 2,
            _ => 0,
        }
    }

    /// The config's `[byzantine]` section.
    pub fn section(&self) -> eyre::Result<toml::Table> {
        let text = match self {
            Misbehaviour::EquivocateVotes => "[engine]\nequivocate_votes = { mode = \"always\" }\n".to_string(),
            Misbehaviour::EquivocateProposals => {
                "[engine]\nequivocate_proposals = { mode = \"always\" }\n".to_string()
            }
            Misbehaviour::Silent => "[engine]\ndrop_votes = { mode = \"always\" }\ndrop_proposals = { mode = \"always\" }\n".to_string(),
            Misbehaviour::Withhold => "withhold = true\n".to_string(),
            Misbehaviour::Censor { key, .. } => format!("censor_signers = [\"{key}\"]\n"),
            Misbehaviour::Invalid => "invalid_proposals = [\"all\"]\n".to_string(),
            Misbehaviour::Flood => format!("flood_proposals = {FLOOD_PER_ROUND}\n"),
        };
        Ok(toml::from_str(&text)?)
    }
}

fn set(nodes: &[usize]) -> String {
    format!(
        "{{{}}}",
        nodes
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",")
    )
}

impl Fault {
    pub fn describe(&self) -> String {
        match self {
            Fault::Partition(groups) => format!(
                "partition {}",
                groups.iter().map(|g| set(g)).collect::<Vec<_>>().join("|")
            ),
            Fault::OneWay { from, to } => format!("drop packets {from} → {}", set(to)),
            Fault::Pause(n) => format!("pause node{n}"),
            Fault::Kill(n) => format!("kill -9 node{n}, restart"),
            Fault::Restart(n) => format!("graceful restart of node{n}"),
            Fault::Wipe(n) => format!("kill -9 node{n}, wipe its store, restart"),
            Fault::Skew { node, secs } => format!("clock of node{node} {secs:+} s"),
            Fault::DiskFull(n) => format!("disk of node{n} full"),
            Fault::DiskFullUnguarded(n) => {
                format!("disk of node{n} full, its free-space guard off")
            }
            Fault::Slow {
                delay_ms,
                jitter_ms,
                loss_pct,
            } => format!("every link {delay_ms}±{jitter_ms} ms one way, {loss_pct}% loss"),
            Fault::Byzantine { nodes, behaviour } => {
                format!("{} Byzantine: {}", set(nodes), behaviour.describe())
            }
            Fault::RemoveValidator(n) => {
                format!("node{n} removed from the validator set by an update, then added back")
            }
        }
    }

    /// Validators that misbehave (rather than fail) in this fault.
    pub fn byzantine(&self) -> Vec<usize> {
        match self {
            Fault::Byzantine { nodes, .. } => nodes.clone(),
            _ => vec![],
        }
    }

    /// What the fault's Byzantine validators do.
    pub fn misbehaviour(&self) -> Option<Misbehaviour> {
        match self {
            Fault::Byzantine { behaviour, .. } => Some(behaviour.clone()),
            _ => None,
        }
    }

    /// Validators the fault touches.
    pub fn faulty(&self, n: usize) -> Vec<usize> {
        match self {
            Fault::Partition(groups) => {
                let main = largest(groups);
                (0..n).filter(|i| !main.contains(i)).collect()
            }
            Fault::OneWay { from, .. } => vec![*from],
            Fault::Pause(i)
            | Fault::Kill(i)
            | Fault::Restart(i)
            | Fault::Wipe(i)
            | Fault::DiskFull(i)
            | Fault::DiskFullUnguarded(i) => vec![*i],
            Fault::Skew { node, .. } => vec![*node],
            Fault::Byzantine { nodes, .. } => nodes.clone(),
            // Out of the set it follows without voting, and the rest are the whole set.
            Fault::Slow { .. } | Fault::RemoveValidator(_) => vec![],
        }
    }

    /// Whether the validators that still reach each other hold more than 2/3 of the power
    /// (every validator has the same power).
    pub fn quorum_kept(&self, n: usize) -> bool {
        let connected = n - self.faulty(n).len();
        3 * connected > 2 * n
    }

    pub fn wiped(&self) -> Vec<usize> {
        match self {
            Fault::Wipe(i) => vec![*i],
            _ => vec![],
        }
    }

    /// Whether the fault needs every link to go through the delaying relay.
    pub fn needs_relay(&self) -> bool {
        matches!(self, Fault::Slow { .. })
    }

    /// Applies the fault; returns the mechanism used.
    pub async fn apply(&self, c: &mut Cluster) -> eyre::Result<String> {
        let n = c.nodes.len();
        match self {
            Fault::Partition(groups) => lab(c)?.partition(groups),
            Fault::OneWay { from, to } => {
                let mut m = String::new();
                for t in to {
                    m = lab(c)?.block_one_way(*from, *t)?;
                }
                Ok(m)
            }
            Fault::Pause(i) => {
                signal(c, *i, nix::sys::signal::Signal::SIGSTOP)?;
                Ok("SIGSTOP, then SIGCONT".into())
            }
            Fault::Kill(i) => {
                c.kill(*i)?;
                Ok("SIGKILL, then a new process".into())
            }
            Fault::Restart(i) => {
                c.stop(*i, GRACE)?;
                Ok("SIGTERM (graceful stop), then a new process".into())
            }
            Fault::Wipe(i) => {
                c.kill(*i)?;
                let data = c.nodes[*i].home.join(lockstep_node::home::DATA_DIR);
                std::fs::remove_dir_all(&data)
                    .wrap_err_with(|| format!("cannot wipe {}", data.display()))?;
                std::fs::create_dir_all(&data)?;
                Ok(
                    "SIGKILL, data/ (RocksDB store and consensus WAL) deleted, a new process"
                        .into(),
                )
            }
            Fault::Skew { node, secs } => {
                let lib = faketime_library()?;
                c.stop(*node, GRACE)?;
                c.nodes[*node].env = vec![
                    ("LD_PRELOAD".into(), lib.display().to_string()),
                    ("FAKETIME".into(), format!("{secs:+}")),
                    ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
                ];
                c.start(*node)?;
                Ok(format!(
                    "libfaketime (LD_PRELOAD {}, FAKETIME={secs:+}, monotonic clock untouched); \
                     the node restarted to take it, and again without it to undo",
                    lib.display()
                ))
            }
            Fault::DiskFull(i) => {
                let filled = fill(&c.nodes[*i].home)?;
                Ok(format!(
                    "home on a {HOME_TMPFS_MB} MiB tmpfs, {} MiB of filler written until ENOSPC",
                    filled >> 20
                ))
            }
            Fault::DiskFullUnguarded(i) => {
                c.stop(*i, GRACE)?;
                set_guard(c, *i, false)?;
                c.start(*i)?;
                // Let it rejoin before its disk fills under it.
                tokio::time::sleep(Duration::from_secs(2)).await;
                let filled = fill(&c.nodes[*i].home)?;
                Ok(format!(
                    "node restarted with storage.min_free_mb = storage.stop_free_mb = 0, then \
                     its home ({HOME_TMPFS_MB} MiB tmpfs) filled with {} MiB until ENOSPC",
                    filled >> 20
                ))
            }
            Fault::Slow {
                delay_ms,
                jitter_ms,
                loss_pct,
            } => {
                let lab = lab(c)?;
                let mut m = vec![lab.set_delay_all(
                    Duration::from_millis(*delay_ms),
                    Duration::from_millis(*jitter_ms),
                )?];
                if *loss_pct > 0 {
                    let mut loss = String::new();
                    for a in 0..n {
                        for b in (0..n).filter(|b| *b != a) {
                            loss = lab.set_loss(a, b, *loss_pct)?;
                        }
                    }
                    m.push(loss);
                }
                Ok(m.join("; "))
            }
            Fault::RemoveValidator(i) => {
                let address = key_of(c, *i)?.address();
                let (at, version) =
                    change_set(c, *i, lockstep_bundles::SetChange::Remove { address }).await?;
                Ok(format!(
                    "an update removing node{i} (set version {version}), co-signed by every \
                     other validator and submitted to another node, included at height {at}, in \
                     force from {}; added back by a second update",
                    at + lockstep_bundles::SET_UPDATE_DELAY
                ))
            }
            Fault::Byzantine { nodes, behaviour } => {
                let bin = crate::byzantine_binary()?;
                for node in nodes {
                    c.stop(*node, GRACE)?;
                    set_byzantine(c, *node, Some(behaviour.section()?))?;
                    c.nodes[*node].bin = Some(bin.clone());
                    c.start(*node)?;
                }
                Ok(format!(
                    "restarted as {} with a [byzantine] section (Malachite's \
                     ByzantineNetworkProxy for equivocation and silence; the proposer's reaping \
                     for censoring; the gossip handle and fetch store for withholding), then \
                     as lockstep again",
                    bin.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ))
            }
        }
    }

    /// Undoes the fault.
    pub async fn undo(&self, c: &mut Cluster) -> eyre::Result<()> {
        match self {
            Fault::Partition(_) | Fault::OneWay { .. } => {
                lab(c)?.heal()?;
            }
            Fault::Pause(i) => signal(c, *i, nix::sys::signal::Signal::SIGCONT)?,
            Fault::Kill(i) | Fault::Restart(i) | Fault::Wipe(i) => c.start(*i)?,
            Fault::Skew { node, .. } => {
                c.stop(*node, GRACE)?;
                c.nodes[*node].env.clear();
                c.start(*node)?;
            }
            Fault::DiskFull(i) => {
                let _ = std::fs::remove_file(filler(&c.nodes[*i].home));
                // A node whose disk filled stops itself; start it again.
                c.start(*i)?;
            }
            Fault::DiskFullUnguarded(i) => {
                let _ = std::fs::remove_file(filler(&c.nodes[*i].home));
                c.stop(*i, GRACE)?;
                set_guard(c, *i, true)?;
                c.start(*i)?;
            }
            Fault::Slow { .. } => {
                let lab = lab(c)?;
                lab.set_delay_all(Duration::ZERO, Duration::ZERO)?;
                lab.heal()?;
            }
            Fault::RemoveValidator(i) => {
                let public_key = key_of(c, *i)?.public_key();
                change_set(
                    c,
                    *i,
                    lockstep_bundles::SetChange::Add {
                        public_key,
                        power: 1,
                    },
                )
                .await?;
            }
            Fault::Byzantine { nodes, .. } => {
                for node in nodes {
                    c.stop(*node, GRACE)?;
                    set_byzantine(c, *node, None)?;
                    c.nodes[*node].bin = None;
                    c.start(*node)?;
                }
            }
        }
        Ok(())
    }
}

fn key_of(c: &Cluster, i: usize) -> eyre::Result<lockstep_node::keys::NodeKey> {
    lockstep_node::keys::NodeKey::load(&lockstep_node::home::Home::new(&c.nodes[i].home).key())
}

/// Makes `change` (about node `about`) to the newest validator set: co-signed by every member
/// of that set other than `about`, submitted to one of them, and waited for until it is in
/// force on that node. Returns the height that included it and the version it changed.
async fn change_set(
    c: &Cluster,
    about: usize,
    change: lockstep_bundles::SetChange,
) -> eyre::Result<(u64, u64)> {
    use lockstep_client::SeqApiClient;
    let via = (0..c.nodes.len())
        .find(|j| *j != about)
        .ok_or_else(|| eyre::eyre!("no other node to submit the update to"))?;
    let rpc = c.http(via)?;
    let sets = rpc.get_validator_sets(None).await?;
    let newest = sets
        .last()
        .ok_or_else(|| eyre::eyre!("node{via} answered no validator set"))?;
    let mut update = lockstep_bundles::SignedSetUpdate::unsigned(lockstep_bundles::SetUpdate {
        chain_id: c.chain_id,
        version: newest.version,
        changes: vec![change],
    });
    let mut submitter = None;
    for j in (0..c.nodes.len()).filter(|j| *j != about) {
        let key = key_of(c, j)?;
        if newest.validators.iter().any(|v| v.address == key.address()) {
            let signing = ed25519_dalek::SigningKey::from_bytes(&key.secret);
            update.sign(&signing);
            submitter.get_or_insert(signing);
        }
    }
    let submitter = submitter.ok_or_else(|| eyre::eyre!("no member of the set to sign"))?;
    let top = rpc.block_number().await?;
    let bundle = lockstep_client::bundle::sign(
        &submitter,
        c.chain_id,
        // A fresh nonce: the wall clock in ms.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        top + 50,
        vec![(lockstep_bundles::SET_UPDATE_ROLLUP, update.encode())],
    );
    let (hash, outcome) =
        lockstep_client::tracker::send_and_wait(&rpc, &bundle, Duration::from_secs(60)).await?;
    let at = match outcome {
        lockstep_client::tracker::Outcome::Included { height, .. } => height,
        lockstep_client::tracker::Outcome::Dropped { reason } => {
            bail!("the validator set update {hash} was dropped: {reason}")
        }
    };
    c.wait_for_height(
        &[via],
        at + lockstep_bundles::SET_UPDATE_DELAY,
        Duration::from_secs(60),
    )
    .await?;
    Ok((at, newest.version))
}

/// Writes node `i`'s `[byzantine]` section (or removes it).
fn set_byzantine(c: &mut Cluster, i: usize, section: Option<toml::Table>) -> eyre::Result<()> {
    let node = &mut c.nodes[i];
    node.config.byzantine = section;
    node.config
        .save(&lockstep_node::home::Home::new(&node.home).config())
}

/// Turns node `i`'s free-space guard off (both limits 0) or back to the defaults.
fn set_guard(c: &mut Cluster, i: usize, on: bool) -> eyre::Result<()> {
    let node = &mut c.nodes[i];
    let defaults = lockstep_node::config::Config::new(&node.name).storage;
    node.config.storage.min_free_mb = if on { defaults.min_free_mb } else { 0 };
    node.config.storage.stop_free_mb = if on { defaults.stop_free_mb } else { 0 };
    node.config
        .save(&lockstep_node::home::Home::new(&node.home).config())
}

fn largest(groups: &[Vec<usize>]) -> Vec<usize> {
    groups
        .iter()
        .max_by_key(|g| g.len())
        .cloned()
        .unwrap_or_default()
}

fn lab(c: &Cluster) -> eyre::Result<&crate::net::Lab> {
    c.lab()
        .ok_or_else(|| eyre::eyre!("this fault needs the network lab (namespaces)"))
}

fn signal(c: &Cluster, i: usize, sig: nix::sys::signal::Signal) -> eyre::Result<()> {
    let Some(pid) = c.nodes[i].pid() else {
        bail!("node{i} is not running");
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)
        .wrap_err_with(|| format!("{sig} to node{i}"))
}

/// libfaketime's preload library (Debian's `faketime` package).
pub fn faketime_library() -> eyre::Result<PathBuf> {
    for dir in [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ] {
        let p = Path::new(dir).join("faketime/libfaketime.so.1");
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("libfaketime is missing: install Debian's faketime package (scripts/deps.sh does)")
}

fn filler(home: &Path) -> PathBuf {
    home.join("disk-filler")
}

/// Writes a filler file into `home` until the file system is full; returns its size.
fn fill(home: &Path) -> eyre::Result<u64> {
    use std::io::Write;
    let mut f = std::fs::File::create(filler(home))?;
    let chunk = vec![0u8; 4 << 20];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let _ = f.sync_all();
    Ok(written)
}

/// Puts `home` on a tmpfs of [`HOME_TMPFS_MB`] (its files copied over).
pub fn home_on_tmpfs(home: &Path) -> eyre::Result<()> {
    let aside = home.with_extension("disk");
    std::fs::rename(home, &aside)?;
    std::fs::create_dir_all(home)?;
    run(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={HOME_TMPFS_MB}m"),
            "tmpfs",
            &home.display().to_string(),
        ],
    )?;
    run(
        "cp",
        &[
            "-a",
            &format!("{}/.", aside.display()),
            &home.display().to_string(),
        ],
    )?;
    std::fs::remove_dir_all(&aside)?;
    Ok(())
}

/// Unmounts a home put on a tmpfs (lazily, so a process still holding it does not stop us).
pub fn unmount(home: &Path) {
    let _ = run("umount", &["-l", &home.display().to_string()]);
}

fn run(cmd: &str, args: &[&str]) -> eyre::Result<()> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .wrap_err_with(|| format!("cannot run {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_follows_the_largest_connected_group() {
        assert!(!Fault::Partition(vec![vec![0, 1], vec![2, 3]]).quorum_kept(4));
        assert!(Fault::Partition(vec![vec![0], vec![1, 2, 3]]).quorum_kept(4));
        assert_eq!(
            Fault::Partition(vec![vec![0, 1, 2], vec![2, 3]]).faulty(4),
            vec![3]
        );
        assert!(Fault::Pause(1).quorum_kept(4));
        assert!(!Fault::Partition(vec![vec![0, 1, 2, 3], vec![4, 5, 6]]).quorum_kept(7));
        assert!(Fault::Partition(vec![vec![0, 1, 2, 3, 4], vec![5, 6]]).quorum_kept(7));
    }
}

//! The fault runner: a real network of validators in Linux network namespaces, a workload
//! recording every acknowledgement, a nemesis applying faults and undoing them, and a checker
//! judging the recorded history (see `FAULTS.md`).
//!
//! A run: start the network (every home on its own tmpfs, every validator logging what it
//! signs), start the signers, the height poller and the rollup followers, apply each fault of
//! the schedule for its time and undo it, let the network settle with the signers still
//! sending, stop them, wait for every acknowledged bundle to be decided, then read every
//! node's chain, every acknowledgement's status and every signed-message log, and check.

pub mod behaviour;
pub mod checker;
pub mod history;
pub mod nemesis;
pub mod workload;

use crate::{Cluster, ClusterOptions};
use checker::Verdict;
use eyre::Context as _;
use history::{FaultWindow, History};
use nemesis::{Fault, Misbehaviour};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use workload::{since, Followers, Workload};

/// A named scenario: its faults, applied one after another.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub steps: Vec<Fault>,
    /// How many validators the network has.
    pub validators: usize,
}

/// The scenarios CI runs, each once.
pub const NAMES: [&str; 22] = [
    "partition-2-2",
    "minority-1-3",
    "bridge",
    "one-way",
    "pause",
    "kill-restart",
    "restart",
    "wiped-store",
    "clock-ahead",
    "clock-behind",
    "disk-full",
    "disk-full-unguarded",
    "slow-lossy-links",
    "set-change",
    "byz-equivocate-votes",
    "byz-equivocate-proposals",
    "byz-silent",
    "byz-withhold",
    "byz-censor",
    "byz-invalid",
    "byz-flood",
    "byz7-equivocate-votes",
];

/// Named scenarios run by hand (`--scenario all-byzantine` or by name), not in CI: the other
/// behaviours with two Byzantine validators of seven.
pub const BYZANTINE_7: [&str; 6] = [
    "byz7-equivocate-proposals",
    "byz7-silent",
    "byz7-withhold",
    "byz7-censor",
    "byz7-invalid",
    "byz7-flood",
];

/// The scenario called `name` (for 4 validators), or a randomized schedule for `random`.
pub fn scenario(
    name: &str,
    seed: u64,
    duration: Duration,
    hold: Duration,
) -> eyre::Result<Scenario> {
    let steps = match name {
        "partition-2-2" => vec![Fault::Partition(vec![vec![0, 1], vec![2, 3]])],
        "minority-1-3" => vec![Fault::Partition(vec![vec![0], vec![1, 2, 3]])],
        "bridge" => vec![Fault::Partition(vec![vec![0, 1, 2], vec![2, 3]])],
        "one-way" => vec![Fault::OneWay {
            from: 1,
            to: vec![0, 2, 3],
        }],
        "pause" => vec![Fault::Pause(2)],
        "kill-restart" => vec![Fault::Kill(1)],
        "restart" => vec![Fault::Restart(3)],
        "wiped-store" => vec![Fault::Wipe(2)],
        "clock-ahead" => vec![Fault::Skew { node: 1, secs: 20 }],
        "clock-behind" => vec![Fault::Skew { node: 3, secs: -20 }],
        "disk-full" => vec![Fault::DiskFull(0)],
        "disk-full-unguarded" => vec![Fault::DiskFullUnguarded(3)],
        "slow-lossy-links" => vec![Fault::Slow {
            delay_ms: 50,
            jitter_ms: 10,
            loss_pct: 2,
        }],
        "set-change" => vec![Fault::RemoveValidator(2)],
        "byz-equivocate-votes" => byzantine(&[1], Misbehaviour::EquivocateVotes),
        "byz-equivocate-proposals" => byzantine(&[2], Misbehaviour::EquivocateProposals),
        "byz-silent" => byzantine(&[3], Misbehaviour::Silent),
        "byz-withhold" => byzantine(&[0], Misbehaviour::Withhold),
        "byz-censor" => byzantine(&[1], censor(seed)),
        "byz-invalid" => byzantine(&[2], Misbehaviour::Invalid),
        "byz-flood" => byzantine(&[3], Misbehaviour::Flood),
        // Two of seven (f = 2) misbehave together.
        "byz7-equivocate-votes" => byzantine(&[1, 4], Misbehaviour::EquivocateVotes),
        "byz7-equivocate-proposals" => byzantine(&[2, 5], Misbehaviour::EquivocateProposals),
        "byz7-silent" => byzantine(&[3, 6], Misbehaviour::Silent),
        "byz7-withhold" => byzantine(&[0, 4], Misbehaviour::Withhold),
        "byz7-censor" => byzantine(&[1, 2], censor(seed)),
        "byz7-invalid" => byzantine(&[0, 3], Misbehaviour::Invalid),
        "byz7-flood" => byzantine(&[5, 6], Misbehaviour::Flood),
        "random" => random_schedule(seed, 4, duration, hold),
        other => eyre::bail!(
            "no scenario {other:?}; known: {}, {}, all, random",
            NAMES.join(", "),
            BYZANTINE_7.join(", ")
        ),
    };
    let validators = if name.starts_with("byz7-") { 7 } else { 4 };
    Ok(Scenario {
        name: name.to_string(),
        steps,
        validators,
    })
}

/// The workload signer a censoring validator leaves out.
pub const CENSORED_SIGNER: usize = 0;

/// One fault: `nodes` made Byzantine with `behaviour` for the hold.
fn byzantine(nodes: &[usize], behaviour: Misbehaviour) -> Vec<Fault> {
    vec![Fault::Byzantine {
        nodes: nodes.to_vec(),
        behaviour,
    }]
}

/// Censoring [`CENSORED_SIGNER`] of a run with `seed`.
fn censor(seed: u64) -> Misbehaviour {
    Misbehaviour::Censor {
        signer: CENSORED_SIGNER,
        key: hex::encode(
            workload::signer_key(seed, CENSORED_SIGNER)
                .verifying_key()
                .to_bytes(),
        ),
    }
}

/// Gap between a heal and the next fault in a randomized schedule: the liveness bound after
/// a heal, so each heal is judged on its own.
const GAP: Duration = Duration::from_secs(22);

/// A schedule drawn from `seed`: faults of every kind on random validators, each held for
/// `hold` ± half, separated by [`GAP`], until `duration` is used up. The same seed gives the
/// same schedule.
pub fn random_schedule(seed: u64, n: usize, duration: Duration, hold: Duration) -> Vec<Fault> {
    let mut rng = workload::rng(seed);
    let mut steps = Vec::new();
    let mut used = Duration::ZERO;
    while used + hold + GAP <= duration || steps.is_empty() {
        let node = rng.gen_range(0..n);
        let mut others: Vec<usize> = (0..n).filter(|i| *i != node).collect();
        others.shuffle(&mut rng);
        let f = match rng.gen_range(0..12) {
            0 => {
                let mut all: Vec<usize> = (0..n).collect();
                all.shuffle(&mut rng);
                let (a, b) = all.split_at(n / 2);
                Fault::Partition(vec![a.to_vec(), b.to_vec()])
            }
            1 => Fault::Partition(vec![vec![node], others]),
            2 => {
                let bridge = others[0];
                let mut left = vec![node, bridge];
                left.sort_unstable();
                let mut right: Vec<usize> = others.to_vec();
                right.sort_unstable();
                Fault::Partition(vec![left, right])
            }
            3 => Fault::OneWay {
                from: node,
                to: others,
            },
            4 => Fault::Pause(node),
            5 => Fault::Kill(node),
            6 => Fault::Restart(node),
            7 => Fault::Wipe(node),
            8 => Fault::Skew {
                node,
                secs: if rng.gen_bool(0.5) { 20 } else { -20 },
            },
            9 => Fault::DiskFull(node),
            10 => Fault::DiskFullUnguarded(node),
            _ => Fault::Slow {
                delay_ms: rng.gen_range(10..=100),
                jitter_ms: rng.gen_range(0..=20),
                loss_pct: rng.gen_range(0..=3),
            },
        };
        steps.push(f);
        used += hold + GAP;
    }
    steps
}

/// How a run is done.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub scenario: Scenario,
    pub seed: u64,
    pub validators: usize,
    /// How long each fault is held.
    pub hold: Duration,
    /// Network running before the first fault.
    pub warmup: Duration,
    /// After the last heal, with the signers still sending (at least the liveness bound).
    pub settle: Duration,
    /// Bundles per second, in all.
    pub rate: f64,
    pub signers: usize,
    /// Where `history.json` and `result.json` go (a folder per run is made inside).
    pub out: PathBuf,
    /// Where the network's homes go.
    pub work: PathBuf,
}

impl RunSpec {
    pub fn new(scenario: Scenario, seed: u64) -> RunSpec {
        RunSpec {
            validators: scenario.validators,
            scenario,
            seed,
            hold: Duration::from_secs(10),
            warmup: Duration::from_secs(3),
            settle: Duration::from_secs(24),
            rate: 60.0,
            signers: 4,
            out: PathBuf::from("target/fault-results"),
            work: std::env::temp_dir().join("lockstep-faults"),
        }
    }
}

/// What a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub scenario: String,
    pub seed: u64,
    pub verdicts: Vec<Verdict>,
    pub mechanisms: Vec<String>,
    pub acks: usize,
    pub final_height: u64,
    /// What a censoring validator cost the signer it censored, when one did.
    pub censorship: Option<behaviour::Censorship>,
    /// Where the history and result were written.
    pub dir: PathBuf,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|v| v.pass)
    }
}

/// Node configuration for fault runs: every validator logs what it signs.
fn fault_config(c: &mut lockstep_node::config::Config) {
    c.consensus.signed_log = true;
}

/// Runs one scenario and checks it. `progress` gets a line per step.
pub async fn run(spec: &RunSpec, progress: &mut dyn FnMut(&str)) -> eyre::Result<Outcome> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let run_name = format!("{}-{}-{stamp}", spec.scenario.name, spec.seed);
    let work = spec.work.join(&run_name);
    let relay = spec.scenario.steps.iter().any(Fault::needs_relay);
    let opts = ClusterOptions {
        validators: spec.validators,
        network: crate::Network::Lab { relay },
        tweak: Some(fault_config),
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::create(&work, &opts)?;
    let mut mechanisms = vec![match cluster.lab() {
        Some(l) => format!(
            "validators in network namespaces {} on bridge {}{}",
            l.namespaces().join(", "),
            l.bridge(),
            if relay {
                "; every peer link through the harness's delaying TCP relay"
            } else {
                ""
            }
        ),
        None => "loopback".into(),
    }];
    let homes: Vec<PathBuf> = cluster.nodes.iter().map(|n| n.home.clone()).collect();
    let result = async {
        for h in &homes {
            nemesis::home_on_tmpfs(h)?;
        }
        mechanisms.push(format!(
            "every home on its own {} MiB tmpfs",
            nemesis::HOME_TMPFS_MB
        ));
        cluster.start_all()?;
        cluster.wait_ready(Duration::from_secs(60)).await?;
        run_started(spec, &mut cluster, &mut mechanisms, progress).await
    }
    .await;
    cluster.stop_all().ok();
    let logs = spec.out.join(&run_name).join("logs");
    for (i, h) in homes.iter().enumerate() {
        if std::fs::create_dir_all(&logs).is_ok() {
            let _ = std::fs::copy(h.join("node.log"), logs.join(format!("node{i}.log")));
        }
        nemesis::unmount(h);
    }
    drop(cluster);
    let mut history = result?;
    history.mechanisms = mechanisms;
    let verdicts = checker::check(&history);
    let dir = spec.out.join(&run_name);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("history.json"),
        serde_json::to_vec_pretty(&history)?,
    )?;
    let outcome = Outcome {
        scenario: spec.scenario.name.clone(),
        seed: spec.seed,
        verdicts,
        mechanisms: history.mechanisms.clone(),
        acks: history.acks.len(),
        final_height: history.chains.iter().map(|c| c.tip).min().unwrap_or(0),
        censorship: behaviour::measure(&history),
        dir: dir.clone(),
    };
    std::fs::write(
        dir.join("result.json"),
        serde_json::to_vec_pretty(&outcome)?,
    )?;
    prune(&spec.out, KEEP_RUNS);
    if outcome.passed() {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(outcome)
}

async fn run_started(
    spec: &RunSpec,
    cluster: &mut Cluster,
    mechanisms: &mut Vec<String>,
    progress: &mut dyn FnMut(&str),
) -> eyre::Result<History> {
    let n = cluster.nodes.len();
    let rpc: Vec<String> = cluster.nodes.iter().map(|n| n.rpc_url()).collect();
    let ws: Vec<String> = cluster.nodes.iter().map(|n| n.ws_url()).collect();
    let t0 = Instant::now();
    let mut load = Workload::start(
        rpc.clone(),
        cluster.chain_id,
        t0,
        spec.signers,
        spec.rate,
        spec.seed,
    )?;
    let followers = Followers::start(&ws, &cluster.verifier()?);
    let mut windows = Vec::new();
    tokio::time::sleep(spec.warmup).await;
    for (k, fault) in spec.scenario.steps.iter().enumerate() {
        let start = since(t0);
        progress(&format!(
            "{:>6.1} s  {}",
            start as f64 / 1e3,
            fault.describe()
        ));
        let mechanism = fault
            .apply(cluster)
            .await
            .wrap_err_with(|| format!("applying {}", fault.describe()))?;
        // Every node's height read once the fault is in place: the baseline a cut without a
        // quorum is judged from (what was decided before the read counts as before the cut).
        workload::poll_now(&rpc, t0, &load.shared).await?;
        let applied = since(t0);
        if !mechanisms.contains(&mechanism) {
            mechanisms.push(mechanism.clone());
        }
        let mut w = FaultWindow {
            fault: fault.describe(),
            mechanism,
            start,
            applied,
            end: None,
            faulty: fault.faulty(n),
            quorum_kept: fault.quorum_kept(n),
            wiped: fault.wiped(),
            byzantine: fault.byzantine(),
            misbehaviour: fault.misbehaviour(),
            healing: None,
        };
        tokio::time::sleep(spec.hold).await;
        w.healing = Some(since(t0));
        fault
            .undo(cluster)
            .await
            .wrap_err_with(|| format!("undoing {}", fault.describe()))?;
        // Every node's height read once the fault is undone: what a Byzantine validator
        // signed before it was made honest again is below this (plus the height in flight).
        workload::poll_now(&rpc, t0, &load.shared).await?;
        let end = since(t0);
        progress(&format!("{:>6.1} s  healed", end as f64 / 1e3));
        w.end = Some(end);
        windows.push(w);
        if k + 1 < spec.scenario.steps.len() {
            tokio::time::sleep(GAP).await;
        }
    }
    let healed_at = since(t0);
    // Settle: the signers go on for half of it, then the network drains what was
    // acknowledged.
    tokio::time::sleep(spec.settle / 2).await;
    load.stop_signers().await;
    progress(&format!(
        "{:>6.1} s  signers stopped; waiting for every acknowledged bundle",
        since(t0) as f64 / 1e3
    ));
    let acks = load
        .shared
        .acks
        .lock()
        .map(|a| a.clone())
        .unwrap_or_default();
    let settle_end = Instant::now() + spec.settle / 2;
    let mut statuses = workload::statuses(&rpc, &acks).await?;
    while Instant::now() < settle_end
        || (statuses.iter().any(|s| s.status == "pending")
            && Instant::now() < settle_end + Duration::from_secs(20))
    {
        tokio::time::sleep(Duration::from_secs(1)).await;
        statuses = workload::statuses(&rpc, &acks).await?;
    }
    let mut tips = Vec::new();
    for i in 0..n {
        tips.push(cluster.height(i).await.unwrap_or(0));
    }
    let target = tips.iter().copied().min().unwrap_or(0);
    let followed = followers.finish(target, Duration::from_secs(30)).await;
    let ended_at = since(t0);
    let shared = load.shared.clone();
    load.stop().await;
    let chains = workload::chains(&rpc).await?;
    let evidence = workload::evidence(&rpc).await;
    let mut proposals = Vec::new();
    for node in &cluster.nodes {
        proposals.push(workload::proposal_verdicts(&node.metrics_url()).await);
    }
    let signed = cluster
        .nodes
        .iter()
        .map(|n| workload::signed_log(&n.home))
        .collect();
    let heights = shared.heights.lock().map(|h| h.clone()).unwrap_or_default();
    Ok(History {
        scenario: spec.scenario.name.clone(),
        seed: spec.seed,
        validators: n,
        addresses: cluster
            .nodes
            .iter()
            .map(|n| {
                lockstep_node::keys::NodeKey::load(&lockstep_node::home::Home::new(&n.home).key())
                    .map(|k| k.address().to_string())
                    .unwrap_or_default()
            })
            .collect(),
        mechanisms: Vec::new(),
        windows,
        healed_at,
        ended_at,
        acks,
        unanswered: shared.unanswered.load(std::sync::atomic::Ordering::Relaxed),
        busy_retries: shared
            .busy_retries
            .load(std::sync::atomic::Ordering::Relaxed),
        heights,
        chains,
        statuses,
        signed,
        followers: followed,
        follow_target: target,
        evidence,
        proposals,
    })
}

/// Run folders kept under the results folder (a history is a few MB; CI adds 13 per run).
pub const KEEP_RUNS: usize = 100;

/// Removes all but the newest `keep` run folders under `out`.
fn prune(out: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(out) else {
        return;
    };
    let mut runs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().join("result.json").is_file())
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    runs.sort();
    let excess = runs.len().saturating_sub(keep);
    for (_, p) in runs.into_iter().take(excess) {
        let _ = std::fs::remove_dir_all(p);
    }
}

/// The table of scenario × property.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut s = format!("{:<20}", "scenario");
    for p in checker::PROPERTIES {
        s.push_str(&format!(" {p:<16}"));
    }
    s.push_str(" acks   height\n");
    for o in outcomes {
        s.push_str(&format!("{:<20}", o.scenario));
        for p in checker::PROPERTIES {
            let mark = match o.verdicts.iter().find(|v| v.property == p) {
                Some(v) if v.pass => "pass",
                Some(_) => "FAIL",
                None => "-",
            };
            s.push_str(&format!(" {mark:<16}"));
        }
        s.push_str(&format!(" {:<6} {}\n", o.acks, o.final_height));
    }
    s
}

/// The failed verdicts of `outcomes`, one per line.
pub fn failures(outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    for o in outcomes {
        for v in o.verdicts.iter().filter(|v| !v.pass) {
            s.push_str(&format!(
                "{} / {}: {} (history: {})\n",
                o.scenario,
                v.property,
                v.detail,
                o.dir.display()
            ));
        }
    }
    s
}

/// Removes what killed runs left behind (namespaces, bridges, mounts) under `work`.
pub fn cleanup_stale(work: &Path) {
    let _ = crate::net::Lab::cleanup_stale();
    if let Ok(entries) = std::fs::read_dir(work) {
        for e in entries.flatten() {
            if let Ok(nodes) = std::fs::read_dir(e.path()) {
                for n in nodes.flatten() {
                    nemesis::unmount(&n.path());
                }
            }
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let d = Duration::from_secs(600);
        let h = Duration::from_secs(10);
        assert_eq!(random_schedule(7, 4, d, h), random_schedule(7, 4, d, h));
        assert_ne!(random_schedule(7, 4, d, h), random_schedule(8, 4, d, h));
        assert_eq!(random_schedule(7, 4, d, h).len(), 18);
    }

    #[test]
    fn only_the_newest_runs_are_kept() {
        let out = std::env::temp_dir().join(format!("lockstep-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        for i in 0..4 {
            let d = out.join(format!("run-{i}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("result.json"), "{}").unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::create_dir_all(out.join("not-a-run")).unwrap();
        prune(&out, 2);
        let mut left: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec!["not-a-run", "run-2", "run-3"]);
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn every_named_scenario_exists() {
        for n in NAMES.iter().chain(BYZANTINE_7.iter()) {
            let s = scenario(n, 1, Duration::from_secs(60), Duration::from_secs(5)).unwrap();
            assert!(!s.steps.is_empty());
            // f of 3f+1 at most misbehave.
            let byzantine: usize = s
                .steps
                .iter()
                .map(|f| f.byzantine().len())
                .max()
                .unwrap_or(0);
            assert!(3 * byzantine < s.validators, "{n}");
        }
        assert!(scenario("nope", 1, Duration::ZERO, Duration::ZERO).is_err());
    }
}

//! The checker: judges a run's [`History`] property by property, the way Jepsen's checkers
//! judge a history — after the fact, from what was recorded, never from what the harness
//! believes happened.
//!
//! | property | holds when |
//! |---|---|
//! | `agreement` | every height has one block hash on every node that has it; followers of a rollup received the same batches, and those of the chain |
//! | `no-equivocation` | no validator signed two different values for one (height, round, kind) |
//! | `acks-kept` | every acknowledged bundle is included exactly once, or its acknowledging node reports it `dropped` with a reason; no bundle is included twice. One exception, counted in the detail: a bundle acknowledged by a node whose store was wiped afterwards, never included, and `unknown` to that node — the acknowledgement is durable on its node's disk, and that disk was lost before the bundle left it |
//! | `heights-kept` | every node's chain is consecutive and linked; no node's height went down except after its store was wiped, and it got back what it had |
//! | `liveness` | with a quorum connected, a new height within 5 s of each fault and within 20 s of its heal, every node caught up within 20 s of the heal (a wiped node: plus one second per 500 blocks it had to fetch again), and every follower reached the end; without a quorum, at most one height during the fault (the one in flight) |

use super::history::{FaultWindow, History, Millis};
use super::nemesis::Misbehaviour;
use lockstep_bundles::Hash;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// A new height must follow a fault this soon when a quorum is still connected.
pub const PROGRESS_AFTER_FAULT_MS: Millis = 5_000;
/// A new height must follow a heal this soon, and every node must have caught up.
pub const PROGRESS_AFTER_HEAL_MS: Millis = 20_000;
/// A node whose store was wiped syncs the whole chain again: it is given this many blocks a
/// second on top of [`PROGRESS_AFTER_HEAL_MS`] (a wiped validator fetched about 1,450 blocks a
/// second on the 2-core development machine while the other three went on deciding).
pub const RESYNC_BLOCKS_PER_S: u64 = 500;

pub const PROPERTIES: [&str; 5] = [
    "agreement",
    "no-equivocation",
    "acks-kept",
    "heights-kept",
    "liveness",
];

/// The checker's judgement of one property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub property: String,
    pub pass: bool,
    /// What was checked (counts), and the first violations.
    pub detail: String,
}

/// Violations kept in a verdict's detail (the count is always given).
const SHOWN: usize = 5;

fn verdict(property: &str, checked: String, violations: Vec<String>) -> Verdict {
    let pass = violations.is_empty();
    let detail = if pass {
        checked
    } else {
        let more = violations.len().saturating_sub(SHOWN);
        let mut d = format!(
            "{} violation(s): {}",
            violations.len(),
            violations
                .iter()
                .take(SHOWN)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
        if more > 0 {
            d.push_str(&format!("; and {more} more"));
        }
        d
    };
    Verdict {
        property: property.to_string(),
        pass,
        detail,
    }
}

/// Judges every property.
pub fn check(h: &History) -> Vec<Verdict> {
    let mut v = vec![
        agreement(h),
        no_equivocation(h),
        acks_kept(h),
        heights_kept(h),
        liveness(h),
    ];
    // A run with a censoring validator: did it censor, and was the signer still served.
    v.extend(super::behaviour::verdict(h));
    v
}

/// The block hash at each height, from every node's chain (first seen wins; conflicts are
/// `agreement`'s business).
pub(crate) fn canonical(h: &History) -> BTreeMap<u64, (Hash, &[Hash])> {
    let mut m = BTreeMap::new();
    for c in &h.chains {
        for b in &c.blocks {
            m.entry(b.height).or_insert((b.hash, b.bundles.as_slice()));
        }
    }
    m
}

pub fn agreement(h: &History) -> Verdict {
    let mut v = Vec::new();
    let mut at: BTreeMap<u64, Vec<(usize, Hash)>> = BTreeMap::new();
    for c in &h.chains {
        for b in &c.blocks {
            at.entry(b.height).or_default().push((c.node, b.hash));
        }
    }
    for (height, hashes) in &at {
        if hashes.iter().any(|(_, x)| *x != hashes[0].1) {
            v.push(format!("height {height}: nodes disagree {hashes:?}"));
        }
    }
    let chain = canonical(h);
    let mut batches = 0usize;
    for f in &h.followers {
        for b in &f.batches {
            batches += 1;
            match chain.get(&b.height) {
                Some((hash, bundles)) => {
                    if *hash != b.block_hash {
                        v.push(format!(
                            "{} got block {} at height {}, the chain has {}",
                            f.name, b.block_hash, b.height, hash
                        ));
                    }
                    if let Some(x) = b.bundles.iter().find(|x| !bundles.contains(x)) {
                        v.push(format!(
                            "{} got bundle {x} at height {}, which the block does not hold",
                            f.name, b.height
                        ));
                    }
                }
                None => v.push(format!(
                    "{} got height {}, which no node holds",
                    f.name, b.height
                )),
            }
        }
    }
    for (i, a) in h.followers.iter().enumerate() {
        for b in h
            .followers
            .iter()
            .skip(i + 1)
            .filter(|b| b.rollup == a.rollup)
        {
            let theirs: HashMap<u64, &super::history::FollowedBatch> =
                b.batches.iter().map(|x| (x.height, x)).collect();
            for x in &a.batches {
                if let Some(y) = theirs.get(&x.height) {
                    if x != *y {
                        v.push(format!(
                            "{} and {} received different batches of rollup {} at height {}",
                            a.name, b.name, a.rollup, x.height
                        ));
                    }
                }
            }
        }
    }
    verdict(
        "agreement",
        format!(
            "{} heights on {} nodes; {} batches of {} followers",
            at.len(),
            h.chains.len(),
            batches,
            h.followers.len()
        ),
        v,
    )
}

pub fn no_equivocation(h: &History) -> Verdict {
    let mut v = Vec::new();
    let mut total = 0usize;
    // The heights at which a validator was Byzantine (its own conflicts are its behaviour,
    // counted apart): from the network's height when it was made Byzantine to two past the
    // height every node was polled at once it was honest again (the runner polls then).
    let byzantine: Vec<(usize, u64, u64, bool)> = h
        .windows
        .iter()
        .flat_map(|w| {
            let from = network_height(h, w.start);
            let ahead = w.misbehaviour.as_ref().map_or(0, Misbehaviour::signs_ahead);
            let to = network_height(h, w.end.unwrap_or(h.ended_at)) + 2 + ahead;
            w.byzantine
                .iter()
                .map(move |n| (*n, from, to, w.equivocates()))
        })
        .collect();
    let mut byzantine_conflicts = vec![0usize; byzantine.len()];
    for (node, log) in h.signed.iter().enumerate() {
        total += log.len();
        let mut seen: HashMap<(u64, i64, &str), &Option<String>> = HashMap::new();
        for s in log {
            match seen.get(&(s.height, s.round, s.kind.as_str())) {
                Some(prev) if **prev != s.value => {
                    let during = byzantine.iter().position(|(n, from, to, _)| {
                        *n == node && (*from..=*to).contains(&s.height)
                    });
                    match during {
                        Some(k) => byzantine_conflicts[k] += 1,
                        None => v.push(format!(
                            "node{node} signed {} at height {} round {} for {:?} and for {:?}",
                            s.kind, s.height, s.round, prev, s.value
                        )),
                    }
                }
                Some(_) => {}
                None => {
                    seen.insert((s.height, s.round, s.kind.as_str()), &s.value);
                }
            }
        }
    }
    if h.signed.iter().all(Vec::is_empty) {
        v.push("no validator's signed-message log was found".into());
    }
    for ((node, from, to, equivocates), n) in byzantine.iter().zip(&byzantine_conflicts) {
        if *equivocates && *n == 0 {
            v.push(format!(
                "node{node} was made to equivocate at heights {from}..={to}, but its log shows no \
                 conflicting signature: the run did not test what it says"
            ));
        }
    }
    let byzantine_detail: Vec<String> = byzantine
        .iter()
        .zip(&byzantine_conflicts)
        .map(|((node, ..), n)| format!("; Byzantine node{node}: {n} conflicting signatures"))
        .collect();
    verdict(
        "no-equivocation",
        format!(
            "{total} signed messages of {} validators, none conflicting from an honest one{}",
            h.signed.iter().filter(|l| !l.is_empty()).count(),
            byzantine_detail.concat()
        ),
        v,
    )
}

pub fn acks_kept(h: &History) -> Verdict {
    let mut v = Vec::new();
    let mut count: HashMap<Hash, usize> = HashMap::new();
    for (_, (_, bundles)) in canonical(h) {
        for b in bundles {
            *count.entry(*b).or_default() += 1;
        }
    }
    for (hash, n) in &count {
        if *n > 1 {
            v.push(format!("bundle {hash} is included {n} times"));
        }
    }
    let status: HashMap<(Hash, usize), &super::history::AckStatus> =
        h.statuses.iter().map(|s| ((s.hash, s.node), s)).collect();
    let (mut included, mut dropped) = (0usize, 0usize);
    // Acknowledgements whose only copy went with a wiped store: (count, longest time from the
    // acknowledgement to the wipe).
    let (mut lost_with_disk, mut longest_before_wipe) = (0usize, 0u64);
    for a in &h.acks {
        let Some(s) = status.get(&(a.hash, a.node)) else {
            v.push(format!(
                "bundle {} acknowledged by node{}: its status was never read",
                a.hash, a.node
            ));
            continue;
        };
        match s.status.as_str() {
            "included" => match count.get(&a.hash) {
                Some(1) => included += 1,
                _ => v.push(format!(
                    "bundle {} acknowledged by node{}: reported included at {:?} but the chain \
                     holds it {} times",
                    a.hash,
                    a.node,
                    s.height,
                    count.get(&a.hash).copied().unwrap_or(0)
                )),
            },
            "dropped" if s.reason.as_deref().is_some_and(|r| !r.is_empty()) => dropped += 1,
            "unknown" if !count.contains_key(&a.hash) => {
                match wiped_after(&h.windows, a.node, a.at) {
                    Some(wipe) => {
                        lost_with_disk += 1;
                        longest_before_wipe = longest_before_wipe.max(wipe - a.at);
                    }
                    None => v.push(format!(
                        "bundle {} acknowledged by node{} at {} ms: unknown",
                        a.hash, a.node, a.at
                    )),
                }
            }
            other => v.push(format!(
                "bundle {} acknowledged by node{} at {} ms: {other}{}",
                a.hash,
                a.node,
                a.at,
                s.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )),
        }
    }
    verdict(
        "acks-kept",
        format!(
            "{} acknowledgements: {included} included once, {dropped} dropped with a reason{}; \
             {} bundles in the chain",
            h.acks.len(),
            if lost_with_disk > 0 {
                format!(
                    ", {lost_with_disk} lost with their node's wiped store (acknowledged at \
                     most {longest_before_wipe} ms before the wipe)"
                )
            } else {
                String::new()
            },
            count.len()
        ),
        v,
    )
}

pub fn heights_kept(h: &History) -> Verdict {
    let mut v = Vec::new();
    for c in &h.chains {
        let mut prev: Option<&super::history::ChainBlock> = None;
        for b in &c.blocks {
            if let Some(p) = prev {
                if b.height != p.height + 1 {
                    v.push(format!(
                        "node{}: height {} follows {}",
                        c.node, b.height, p.height
                    ));
                } else if b.parent != p.hash {
                    v.push(format!(
                        "node{}: block {} does not link to block {}",
                        c.node, b.height, p.height
                    ));
                }
            }
            prev = Some(b);
        }
        if c.blocks.last().map_or(0, |b| b.height) != c.tip {
            v.push(format!(
                "node{}: reports tip {} but serves blocks up to {}",
                c.node,
                c.tip,
                c.blocks.last().map_or(0, |b| b.height)
            ));
        }
    }
    for node in 0..h.validators {
        let mut wipes: Vec<Millis> = h
            .windows
            .iter()
            .filter(|w| w.wiped.contains(&node))
            .map(|w| w.start)
            .collect();
        wipes.sort_unstable();
        let mut best = 0u64;
        let mut best_ever = 0u64;
        // The wipe whose restart last explained a drop: each wipe explains one (the node may
        // still answer with its old height between the fault's start and the kill).
        let mut explained = 0usize;
        for s in h.heights.iter().filter(|s| s.node == node) {
            let Some(height) = s.height else { continue };
            if height < best {
                let wipes_so_far = wipes.iter().filter(|w| **w <= s.at).count();
                if wipes_so_far > explained {
                    explained = wipes_so_far;
                    best = height;
                } else {
                    v.push(format!(
                        "node{node}: height went from {best} down to {height} at {} ms",
                        s.at
                    ));
                }
            }
            best = best.max(height);
            best_ever = best_ever.max(height);
        }
        if let Some(c) = h.chains.iter().find(|c| c.node == node) {
            if c.tip < best_ever {
                v.push(format!(
                    "node{node}: ends at height {} after having reached {best_ever}",
                    c.tip
                ));
            }
        }
    }
    verdict(
        "heights-kept",
        format!(
            "{} chains, {} height samples, {} wipes",
            h.chains.len(),
            h.heights.len(),
            h.windows.iter().map(|w| w.wiped.len()).sum::<usize>()
        ),
        v,
    )
}

/// The highest height any node had reported by `t`.
pub(crate) fn network_height(h: &History, t: Millis) -> u64 {
    h.heights
        .iter()
        .filter(|s| s.at <= t)
        .filter_map(|s| s.height)
        .max()
        .unwrap_or(0)
}

/// The highest height any node reported in `(from, to]`.
fn highest_between(h: &History, from: Millis, to: Millis) -> Option<u64> {
    h.heights
        .iter()
        .filter(|s| s.at > from && s.at <= to)
        .filter_map(|s| s.height)
        .max()
}

/// When `node`'s store was next wiped after an acknowledgement it gave at `at` (the wipe is
/// in place once its window's `applied`; an acknowledgement received before that may have been
/// written just before the kill).
fn wiped_after(windows: &[FaultWindow], node: usize, at: Millis) -> Option<Millis> {
    windows
        .iter()
        .filter(|w| w.wiped.contains(&node) && w.applied.max(w.start) >= at)
        .map(|w| w.applied.max(w.start))
        .min()
}

/// Whether `node` is touched by a fault at some time in `(from, to]`.
fn faulty_between(windows: &[FaultWindow], node: usize, from: Millis, to: Millis) -> bool {
    windows
        .iter()
        .any(|w| w.faulty.contains(&node) && w.start <= to && w.end.is_none_or(|e| e > from))
}

pub fn liveness(h: &History) -> Verdict {
    let mut v = Vec::new();
    for w in &h.windows {
        let at_start = network_height(h, w.start);
        if w.quorum_kept {
            let until = w.start + PROGRESS_AFTER_FAULT_MS;
            if w.end.is_some_and(|e| e < until) {
                // A fault shorter than the progress bound is judged at its heal only.
            } else if highest_between(h, w.start, until).unwrap_or(0) <= at_start {
                v.push(format!(
                    "{}: no new height within {} s of the fault (height {at_start})",
                    w.fault,
                    PROGRESS_AFTER_FAULT_MS / 1000
                ));
            }
        } else {
            // Judged from the moment the cut is in place; one height may still complete
            // with votes already in flight.
            let applied = w.applied.max(w.start);
            let at_applied = network_height(h, applied);
            let end = w.end.unwrap_or(h.ended_at);
            let during = highest_between(h, applied, end).unwrap_or(0);
            if during > at_applied + 1 {
                v.push(format!(
                    "{}: heights {at_applied} → {during} decided without a quorum connected",
                    w.fault
                ));
            }
        }
        let Some(end) = w.end else {
            v.push(format!("{}: never healed", w.fault));
            continue;
        };
        let at_heal = network_height(h, end);
        let until = end + PROGRESS_AFTER_HEAL_MS;
        if until > h.ended_at {
            v.push(format!(
                "{}: the run ended {} ms after the heal, before the {} s bound",
                w.fault,
                h.ended_at.saturating_sub(end),
                PROGRESS_AFTER_HEAL_MS / 1000
            ));
            continue;
        }
        if highest_between(h, end, until).unwrap_or(0) <= at_heal {
            v.push(format!(
                "{}: no new height within {} s of the heal (height {at_heal})",
                w.fault,
                PROGRESS_AFTER_HEAL_MS / 1000
            ));
        }
        for node in 0..h.validators {
            // A wiped node fetches the whole chain again.
            let resync = if w.wiped.contains(&node) {
                at_heal * 1000 / RESYNC_BLOCKS_PER_S
            } else {
                0
            };
            let bound = PROGRESS_AFTER_HEAL_MS + resync;
            let node_until = end + bound;
            if faulty_between(&h.windows, node, end, node_until) {
                continue;
            }
            let caught_up = h.heights.iter().any(|s| {
                s.node == node && s.at > end && s.at <= node_until && s.height >= Some(at_heal)
            });
            if caught_up {
                continue;
            }
            if node_until > h.ended_at {
                v.push(format!(
                    "{}: node{node} had not reached height {at_heal} when the run ended, {} ms \
                     after the heal ({} s allowed)",
                    w.fault,
                    h.ended_at.saturating_sub(end),
                    bound / 1000
                ));
            } else {
                v.push(format!(
                    "{}: node{node} did not reach height {at_heal} within {} s of the heal",
                    w.fault,
                    bound / 1000
                ));
            }
        }
    }
    let final_tip = h.chains.iter().map(|c| c.tip).min().unwrap_or(0);
    if h.follow_target > final_tip {
        v.push(format!(
            "the followers were asked for height {}, above the final height {final_tip}",
            h.follow_target
        ));
    }
    for f in &h.followers {
        let last = f.batches.last().map_or(0, |b| b.height);
        if last < h.follow_target {
            v.push(format!(
                "{} (rollup {}) stopped at height {last}, short of {}{}",
                f.name,
                f.rollup,
                h.follow_target,
                f.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
    }
    verdict(
        "liveness",
        format!(
            "{} faults; final height {final_tip}; {} followers",
            h.windows.len(),
            h.followers.len()
        ),
        v,
    )
}

#[cfg(test)]
mod tests {
    use super::super::history::*;
    use super::*;

    fn hash(n: u64) -> Hash {
        Hash::tagged(b"test", &[&n.to_le_bytes()])
    }

    /// A clean history: 3 nodes with the same 10-block chain, one acknowledged bundle included
    /// once, heights rising every 100 ms, a 1|2 fault with a heal, one follower.
    fn clean() -> History {
        let blocks: Vec<ChainBlock> = (1..=10)
            .map(|h| ChainBlock {
                height: h,
                hash: hash(h),
                parent: hash(h - 1),
                bundles: if h == 3 { vec![hash(1000)] } else { vec![] },
                proposer: String::new(),
            })
            .collect();
        let chains = (0..3)
            .map(|node| NodeChain {
                node,
                tip: 10,
                blocks: blocks.clone(),
            })
            .collect();
        let mut heights = Vec::new();
        for t in 0..400u64 {
            for node in 0..3 {
                heights.push(HeightSample {
                    at: t * 100,
                    node,
                    height: Some((t / 40 + 1).min(10)),
                });
            }
        }
        History {
            scenario: "test".into(),
            validators: 3,
            windows: vec![FaultWindow {
                fault: "pause node2".into(),
                mechanism: "SIGSTOP".into(),
                start: 1_000,
                applied: 1_000,
                end: Some(9_000),
                faulty: vec![2],
                quorum_kept: true,
                wiped: vec![],
                byzantine: vec![],
                misbehaviour: None,
                healing: None,
            }],
            healed_at: 9_000,
            ended_at: 39_900,
            acks: vec![Ack {
                hash: hash(1000),
                node: 1,
                at: 500,
                signer: 0,
            }],
            heights,
            chains,
            statuses: vec![AckStatus {
                hash: hash(1000),
                node: 1,
                status: "included".into(),
                height: Some(3),
                reason: None,
            }],
            signed: vec![vec![Signed {
                height: 1,
                round: 0,
                kind: "prevote".into(),
                value: Some("ab".into()),
            }]],
            followers: vec![FollowerRecord {
                name: "f".into(),
                rollup: 1,
                batches: (1..=10)
                    .map(|h| FollowedBatch {
                        height: h,
                        block_hash: hash(h),
                        bundles: vec![],
                    })
                    .collect(),
                error: None,
            }],
            follow_target: 10,
            ..History::default()
        }
    }

    fn failed(h: &History) -> Vec<String> {
        check(h)
            .into_iter()
            .filter(|v| !v.pass)
            .map(|v| v.property)
            .collect()
    }

    #[test]
    fn a_clean_history_passes_every_property() {
        let h = clean();
        assert!(failed(&h).is_empty(), "{:#?}", check(&h));
    }

    #[test]
    fn two_blocks_at_one_height_fail_agreement() {
        let mut h = clean();
        h.chains[2].blocks[4].hash = hash(77);
        h.chains[2].blocks[5].parent = hash(77);
        assert_eq!(failed(&h), vec!["agreement"]);
    }

    #[test]
    fn a_follower_given_another_block_fails_agreement() {
        let mut h = clean();
        h.followers[0].batches[2].block_hash = hash(99);
        assert_eq!(failed(&h), vec!["agreement"]);
    }

    #[test]
    fn two_values_for_one_vote_fail_no_equivocation() {
        let mut h = clean();
        h.signed[0].push(Signed {
            height: 1,
            round: 0,
            kind: "prevote".into(),
            value: None,
        });
        assert_eq!(failed(&h), vec!["no-equivocation"]);
        // The same vote signed again (a replay) is not equivocation.
        let mut h = clean();
        let again = h.signed[0][0].clone();
        h.signed[0].push(again);
        assert!(failed(&h).is_empty());
    }

    #[test]
    fn a_byzantine_validators_own_conflicts_are_counted_and_must_be_there() {
        let mut h = clean();
        let conflict = Signed {
            height: 1,
            round: 0,
            kind: "prevote".into(),
            value: None,
        };
        h.signed
            .push(vec![h.signed[0][0].clone(), conflict.clone()]);
        // Node 1 conflicting while honest: a violation.
        assert_eq!(failed(&h), vec!["no-equivocation"]);
        // While it was Byzantine: its behaviour, counted.
        h.windows[0].faulty = vec![1];
        h.windows[0].byzantine = vec![1];
        h.windows[0].misbehaviour = Some(crate::faults::nemesis::Misbehaviour::EquivocateVotes);
        let verdicts = check(&h);
        assert!(failed(&h).is_empty(), "{verdicts:#?}");
        let ne = verdicts
            .iter()
            .find(|v| v.property == "no-equivocation")
            .unwrap();
        assert!(
            ne.detail.contains("Byzantine node1: 1 conflicting"),
            "{ne:?}"
        );
        // Made to equivocate but never did: the run tested nothing.
        h.signed[1].pop();
        assert_eq!(failed(&h), vec!["no-equivocation"]);
        // Another node's conflicts are not excused by node 1 being Byzantine.
        let mut h = clean();
        h.signed[0].push(conflict);
        h.windows[0].byzantine = vec![1];
        assert_eq!(failed(&h), vec!["no-equivocation"]);
    }

    #[test]
    fn an_acknowledged_bundle_unknown_at_the_end_fails_acks_kept() {
        let mut h = clean();
        h.statuses[0].status = "unknown".into();
        assert_eq!(failed(&h), vec!["acks-kept"]);
        // Dropped needs a reason.
        h.statuses[0].status = "dropped".into();
        assert_eq!(failed(&h), vec!["acks-kept"]);
        h.statuses[0].reason = Some("expired".into());
        assert!(failed(&h).is_empty());
    }

    #[test]
    fn an_acknowledgement_lost_only_with_a_wiped_store_is_counted_not_failed() {
        let mut h = clean();
        for c in &mut h.chains {
            c.blocks[2].bundles.clear();
        }
        h.statuses[0].status = "unknown".into();
        h.statuses[0].height = None;
        // Node 1 acknowledged at 500 ms and was killed and wiped at 1,000 ms.
        h.windows[0].faulty = vec![1];
        h.windows[0].wiped = vec![1];
        let verdicts = check(&h);
        assert!(failed(&h).is_empty(), "{verdicts:#?}");
        let acks = verdicts.iter().find(|v| v.property == "acks-kept").unwrap();
        assert!(
            acks.detail.contains("1 lost with their node's wiped store"),
            "{acks:?}"
        );
        // Acknowledged after the wipe: that copy was on the new store and is lost.
        h.acks[0].at = 1_500;
        assert_eq!(failed(&h), vec!["acks-kept"]);
        // Another node's wipe does not excuse node 1.
        h.acks[0].at = 500;
        h.windows[0].faulty = vec![2];
        h.windows[0].wiped = vec![2];
        assert_eq!(failed(&h), vec!["acks-kept"]);
        // Nor does a wipe excuse a bundle the chain holds but the node calls unknown.
        let mut h = clean();
        h.statuses[0].status = "unknown".into();
        h.windows[0].faulty = vec![1];
        h.windows[0].wiped = vec![1];
        assert_eq!(failed(&h), vec!["acks-kept"]);
    }

    #[test]
    fn a_wiped_node_is_given_time_to_fetch_the_chain_again() {
        // Node 2 wiped at 1 s, healed at 9 s at height 10,000 (so 20 s to fetch it again on
        // top of the 20 s bound); it reaches the height 35 s after the heal.
        let mut h = clean();
        h.windows[0].wiped = vec![2];
        h.ended_at = 80_000;
        h.heights.clear();
        for t in 0..800u64 {
            for node in 0..3 {
                let height = if node == 2 && t * 100 > 1_000 {
                    (t * 100).saturating_sub(9_000) * 10_000 / 35_000
                } else {
                    10_000 + t
                };
                h.heights.push(HeightSample {
                    at: t * 100,
                    node,
                    height: Some(height.min(10_000 + t)),
                });
            }
        }
        let f = check(&h);
        let live = f.iter().find(|v| v.property == "liveness").unwrap();
        assert!(live.pass, "{live:?}");
        // Not wiped, the same slow catch-up is a violation.
        h.windows[0].wiped = vec![];
        let f = check(&h);
        let live = f.iter().find(|v| v.property == "liveness").unwrap();
        assert!(!live.pass, "{live:?}");
        assert!(live.detail.contains("node2 did not reach"), "{live:?}");
    }

    #[test]
    fn a_bundle_included_twice_fails_acks_kept() {
        let mut h = clean();
        for c in &mut h.chains {
            c.blocks[6].bundles.push(hash(1000));
        }
        assert_eq!(failed(&h), vec!["acks-kept"]);
    }

    #[test]
    fn a_height_lost_across_a_restart_fails_heights_kept() {
        let mut h = clean();
        let i = h.heights.len() - 1;
        h.heights[i].height = Some(2);
        assert_eq!(failed(&h), vec!["heights-kept"]);
        // After its store was wiped a node may start again from 0.
        let mut h = clean();
        h.windows[0].wiped = vec![2];
        for s in h.heights.iter_mut().filter(|s| s.node == 2 && s.at > 1_000) {
            if s.at < 3_000 {
                s.height = Some(0);
            }
        }
        assert!(failed(&h).is_empty(), "{:#?}", check(&h));
    }

    #[test]
    fn a_gap_in_a_chain_fails_heights_kept() {
        let mut h = clean();
        h.chains[1].blocks.remove(4);
        assert_eq!(failed(&h), vec!["heights-kept"]);
    }

    #[test]
    fn no_new_height_after_a_heal_fails_liveness() {
        let mut h = clean();
        for s in h.heights.iter_mut().filter(|s| s.at >= 9_000) {
            s.height = Some(3);
        }
        h.heights.retain(|s| s.at < 9_000 || s.height == Some(3));
        for c in &mut h.chains {
            c.tip = 10;
        }
        let f = failed(&h);
        assert!(f.contains(&"liveness".to_string()), "{f:?}");
    }

    #[test]
    fn progress_without_a_quorum_fails_liveness_and_none_passes() {
        let mut h = clean();
        h.windows[0].quorum_kept = false;
        assert_eq!(failed(&h), vec!["liveness"], "heights rose during the cut");
        // Flat during the cut, rising after: what a partition without a quorum must look like.
        for s in h.heights.iter_mut() {
            if s.at > 1_000 && s.at <= 9_000 {
                s.height = Some(1);
            }
        }
        assert!(failed(&h).is_empty(), "{:#?}", check(&h));
    }

    #[test]
    fn a_follower_that_stopped_early_fails_liveness() {
        let mut h = clean();
        h.followers[0].batches.truncate(5);
        h.followers[0].error = Some("exhausted".into());
        assert_eq!(failed(&h), vec!["liveness"]);
    }
}

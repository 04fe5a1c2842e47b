//! What the Byzantine validators of a run did, judged from the history: the `byzantine`
//! verdict says each behaviour was seen (a run whose Byzantine validator did nothing tests
//! nothing) and its damage stayed where it should; for a censoring proposer, what it cost the
//! signer it censored — the delay from acknowledgement to inclusion of that signer's bundles,
//! beside everyone else's (a figure: `acks-kept` already requires every acknowledged bundle
//! to be included). Equivocation is judged by `no-equivocation`, which counts the Byzantine
//! validators' own conflicts apart and requires them.

use super::checker::{canonical, network_height};
use super::history::{History, Millis};
use super::nemesis::Misbehaviour;
use lockstep_bundles::Hash;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Inclusion delays of one group of bundles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delays {
    /// Bundles acknowledged during a censoring window and included.
    pub count: usize,
    /// Heights from the network's height at the acknowledgement to the including block:
    /// p50, p90, max.
    pub heights: [u64; 3],
    /// Milliseconds from the acknowledgement to the first poll that saw a node at the
    /// including height: p50, p90, max (the poller reads every 250 ms).
    pub ms: [u64; 3],
}

/// The censored signer's delays and everyone else's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Censorship {
    pub signer: usize,
    /// Blocks the censoring validator proposed while it censored, and how many of them hold
    /// a bundle of the censored signer (0 if it censored).
    pub proposed: usize,
    pub proposed_with_censored: usize,
    pub censored: Delays,
    pub others: Delays,
}

impl Censorship {
    pub fn describe(&self) -> String {
        let d = |d: &Delays| {
            format!(
                "{} bundles, heights p50 {} p90 {} max {}, ms p50 {} p90 {} max {}",
                d.count, d.heights[0], d.heights[1], d.heights[2], d.ms[0], d.ms[1], d.ms[2]
            )
        };
        format!(
            "{} blocks by the censoring validator, {} with the censored signer's bundles; \
             censored signer {}: {}; other signers: {}",
            self.proposed,
            self.proposed_with_censored,
            self.signer,
            d(&self.censored),
            d(&self.others)
        )
    }
}

/// The figures, when some window censored a signer.
pub fn measure(h: &History) -> Option<Censorship> {
    let windows: Vec<(Millis, Millis, usize, &[usize])> = h
        .windows
        .iter()
        .filter_map(|w| {
            Some((
                w.applied.max(w.start),
                w.healing.or(w.end)?,
                w.censors()?,
                w.byzantine.as_slice(),
            ))
        })
        .collect();
    let signer = windows.first()?.2;
    let theirs: std::collections::HashSet<Hash> = h
        .acks
        .iter()
        .filter(|a| a.signer == signer)
        .map(|a| a.hash)
        .collect();
    let (mut proposed, mut proposed_with_censored) = (0usize, 0usize);
    for (from, to, _, nodes) in &windows {
        let addresses: Vec<&String> = nodes.iter().filter_map(|n| h.addresses.get(*n)).collect();
        let heights = network_height(h, *from) + 1..=network_height(h, *to);
        for (height, block) in canonical_blocks(h) {
            if heights.contains(&height) && addresses.contains(&&block.proposer) {
                proposed += 1;
                if block.bundles.iter().any(|b| theirs.contains(b)) {
                    proposed_with_censored += 1;
                }
            }
        }
    }
    let included: HashMap<Hash, u64> = canonical(h)
        .into_iter()
        .flat_map(|(height, (_, bundles))| bundles.iter().map(move |b| (*b, height)))
        .collect();
    // The first time a poll saw some node at each height or above.
    let mut first_seen: Vec<(u64, Millis)> = Vec::new();
    let mut best = 0u64;
    let mut samples: Vec<_> = h.heights.iter().collect();
    samples.sort_by_key(|s| s.at);
    for s in samples {
        if let Some(height) = s.height.filter(|x| *x > best) {
            best = height;
            first_seen.push((height, s.at));
        }
    }
    let seen_at = |height: u64| -> Option<Millis> {
        let i = first_seen.partition_point(|(x, _)| *x < height);
        first_seen.get(i).map(|(_, at)| *at)
    };
    let (mut censored, mut others) = (Vec::new(), Vec::new());
    for a in &h.acks {
        if !windows
            .iter()
            .any(|(from, to, ..)| (*from..=*to).contains(&a.at))
        {
            continue;
        }
        let Some(&height) = included.get(&a.hash) else {
            continue;
        };
        let Some(seen) = seen_at(height) else {
            continue;
        };
        let d = (
            height.saturating_sub(network_height(h, a.at)),
            seen.saturating_sub(a.at),
        );
        if a.signer == signer {
            censored.push(d);
        } else {
            others.push(d);
        }
    }
    Some(Censorship {
        signer,
        proposed,
        proposed_with_censored,
        censored: delays(censored),
        others: delays(others),
    })
}

/// The chain's blocks by height (one per height: agreement is checked elsewhere).
fn canonical_blocks(h: &History) -> std::collections::BTreeMap<u64, &super::history::ChainBlock> {
    let mut m = std::collections::BTreeMap::new();
    for c in &h.chains {
        for b in &c.blocks {
            m.entry(b.height).or_insert(b);
        }
    }
    m
}

/// The `byzantine` verdict, for a run with Byzantine validators (`None` without):
/// - censoring: the censoring validators proposed blocks while they censored, none held the
///   censored signer's bundles, and that signer's bundles were still included;
/// - silent: no block decided while they were silent was theirs;
/// - withholding: of the bundles only they acknowledged while they withheld, none was
///   included before they were made honest again (nobody else could get them), and there
///   were some (else nothing was withheld).
pub fn verdict(h: &History) -> Option<super::checker::Verdict> {
    let windows: Vec<_> = h
        .windows
        .iter()
        .filter(|w| w.misbehaviour.is_some())
        .collect();
    if windows.is_empty() {
        return None;
    }
    let mut v = Vec::new();
    let mut seen = Vec::new();
    if let Some(c) = measure(h) {
        if c.proposed == 0 {
            v.push("the censoring validators proposed no block while they censored".to_string());
        }
        if c.proposed_with_censored > 0 {
            v.push(format!(
                "{} blocks of the censoring validators hold the censored signer's bundles",
                c.proposed_with_censored
            ));
        }
        if c.censored.count == 0 {
            v.push("none of the censored signer's bundles was included".to_string());
        }
        seen.push(c.describe());
    }
    let blocks = canonical_blocks(h);
    for w in &windows {
        let from = w.applied.max(w.start);
        let until = w.healing.unwrap_or(h.ended_at);
        let heights = network_height(h, from) + 1..=network_height(h, until);
        let theirs: Vec<&String> = w
            .byzantine
            .iter()
            .filter_map(|n| h.addresses.get(*n))
            .collect();
        match &w.misbehaviour {
            Some(m) if m.equivocates() => {
                // Every equivocating validator is named in some honest node's evidence.
                for n in &w.byzantine {
                    let Some(address) = h.addresses.get(*n) else {
                        continue;
                    };
                    let entries: usize = h
                        .evidence
                        .iter()
                        .enumerate()
                        .filter(|(node, _)| !w.byzantine.contains(node))
                        .map(|(_, seen)| seen.iter().filter(|e| e.validator == *address).count())
                        .sum();
                    if entries == 0 {
                        v.push(format!(
                            "node{n} equivocated, but no honest node's seq_getEvidence names it"
                        ));
                    }
                    seen.push(format!(
                        "node{n}'s equivocations in honest nodes' evidence: {entries} entries"
                    ));
                }
                if matches!(m, Misbehaviour::Flood) {
                    // Junk for rounds not theirs: dropped after one signature check.
                    let unsigned = honest_verdicts(h, &w.byzantine, "unsigned");
                    if unsigned == 0 {
                        v.push(
                            "no honest node dropped a proposal as not its round's proposer's: \
                             the flood did not arrive"
                                .to_string(),
                        );
                    }
                    seen.push(format!(
                        "honest nodes dropped {unsigned} junk proposals as not the proposer's"
                    ));
                }
            }
            Some(m @ (Misbehaviour::Silent | Misbehaviour::Invalid)) => {
                let doing = match m {
                    Misbehaviour::Silent => "were silent",
                    _ => "proposed only invalid blocks",
                };
                let proposed = blocks
                    .iter()
                    .filter(|(height, b)| heights.contains(height) && theirs.contains(&&b.proposer))
                    .count();
                if proposed > 0 {
                    v.push(format!(
                        "{proposed} blocks decided while {} {doing} are theirs",
                        set(&w.byzantine)
                    ));
                }
                seen.push(format!(
                    "while {} {doing}: heights {}..={} decided without a block of theirs",
                    set(&w.byzantine),
                    heights.start(),
                    heights.end()
                ));
                if matches!(m, Misbehaviour::Invalid) {
                    // Each kind is judged invalid, or (a bad bundle signature, a forged part
                    // signature) gets no verdict: both must have been seen.
                    let invalid = honest_verdicts(h, &w.byzantine, "invalid");
                    let unsigned = honest_verdicts(h, &w.byzantine, "unsigned");
                    if invalid == 0 || unsigned == 0 {
                        v.push(format!(
                            "honest nodes judged {invalid} proposals invalid and dropped \
                             {unsigned} with a forged signature: the invalid blocks were not \
                             all seen"
                        ));
                    }
                    seen.push(format!(
                        "honest nodes judged {invalid} of their proposals invalid and dropped \
                         {unsigned} forged ones"
                    ));
                }
            }
            Some(Misbehaviour::Withhold) => {
                let mut acked_by: HashMap<Hash, Vec<usize>> = HashMap::new();
                for a in &h.acks {
                    acked_by.entry(a.hash).or_default().push(a.node);
                }
                let included: HashMap<Hash, u64> = canonical(h)
                    .into_iter()
                    .flat_map(|(height, (_, bundles))| bundles.iter().map(move |b| (*b, height)))
                    .collect();
                let withheld: Vec<&Hash> = h
                    .acks
                    .iter()
                    .filter(|a| (from..=until).contains(&a.at))
                    .filter(|a| acked_by[&a.hash].iter().all(|n| w.byzantine.contains(n)))
                    .map(|a| &a.hash)
                    .collect();
                let early = withheld
                    .iter()
                    .filter(|x| included.get(**x).is_some_and(|at| heights.contains(at)))
                    .count();
                if withheld.is_empty() {
                    v.push(format!(
                        "no bundle was acknowledged only by {} while they withheld",
                        set(&w.byzantine)
                    ));
                }
                if early > 0 {
                    v.push(format!(
                        "{early} of {} bundles only {} held were included while they withheld",
                        withheld.len(),
                        set(&w.byzantine)
                    ));
                }
                seen.push(format!(
                    "withholding {}: {} bundles only they held, none included before they \
                     were honest again",
                    set(&w.byzantine),
                    withheld.len()
                ));
            }
            _ => {}
        }
    }
    Some(super::checker::Verdict {
        property: "byzantine".into(),
        pass: v.is_empty(),
        detail: if v.is_empty() {
            seen.join("; ")
        } else {
            format!("{}; {}", v.join("; "), seen.join("; "))
        },
    })
}

/// How many proposals the nodes not in `byzantine` judged with `verdict` (from their
/// metrics at the end).
fn honest_verdicts(h: &History, byzantine: &[usize], verdict: &str) -> u64 {
    h.proposals
        .iter()
        .enumerate()
        .filter(|(node, _)| !byzantine.contains(node))
        .filter_map(|(_, v)| v.get(verdict))
        .sum()
}

fn set(nodes: &[usize]) -> String {
    let names: Vec<String> = nodes.iter().map(|n| format!("node{n}")).collect();
    names.join(", ")
}

fn delays(mut d: Vec<(u64, u64)>) -> Delays {
    if d.is_empty() {
        return Delays::default();
    }
    let pick = |v: &[u64]| [pct(v, 50), pct(v, 90), v[v.len() - 1]];
    let mut heights: Vec<u64> = d.iter().map(|x| x.0).collect();
    heights.sort_unstable();
    d.sort_unstable_by_key(|x| x.1);
    let ms: Vec<u64> = d.iter().map(|x| x.1).collect();
    Delays {
        count: d.len(),
        heights: pick(&heights),
        ms: pick(&ms),
    }
}

fn pct(sorted: &[u64], p: usize) -> u64 {
    sorted[(sorted.len() - 1) * p / 100]
}

#[cfg(test)]
mod tests {
    use super::super::history::*;
    use super::*;

    #[test]
    fn the_censored_signers_delay_is_measured_apart() {
        let block = |height: u64, bundles: Vec<Hash>| ChainBlock {
            height,
            hash: Hash::tagged(b"b", &[&height.to_le_bytes()]),
            parent: Hash::tagged(b"b", &[&(height - 1).to_le_bytes()]),
            bundles,
            proposer: if height.is_multiple_of(2) {
                "b".into()
            } else {
                "a".into()
            },
        };
        let x = Hash::tagged(b"x", &[]);
        let y = Hash::tagged(b"y", &[]);
        let h = History {
            windows: vec![FaultWindow {
                fault: "censor".into(),
                mechanism: String::new(),
                start: 0,
                applied: 0,
                end: Some(1_000),
                faulty: vec![1],
                quorum_kept: true,
                wiped: vec![],
                byzantine: vec![1],
                misbehaviour: Some(Misbehaviour::Censor {
                    signer: 0,
                    key: String::new(),
                }),
                healing: Some(1_000),
            }],
            // Height h first seen at 100 h ms.
            heights: (1..=10)
                .map(|height| HeightSample {
                    at: height * 100,
                    node: 0,
                    height: Some(height),
                })
                .collect(),
            chains: vec![NodeChain {
                node: 0,
                tip: 10,
                blocks: (1..=10)
                    .map(|n| match n {
                        3 => block(n, vec![y]),
                        6 => block(n, vec![x]),
                        _ => block(n, vec![]),
                    })
                    .collect(),
            }],
            // Both acknowledged at 250 ms (network height 2): signer 0's bundle in block 6,
            // signer 1's in block 3.
            acks: vec![
                Ack {
                    hash: x,
                    node: 0,
                    at: 250,
                    signer: 0,
                },
                Ack {
                    hash: y,
                    node: 0,
                    at: 250,
                    signer: 1,
                },
            ],
            addresses: vec!["a".into(), "b".into()],
            ..History::default()
        };
        let c = measure(&h).unwrap();
        // Node 1 ("b") proposed the even heights; while it censored (0..1,000 ms: heights 1
        // to 10), one of them (6) held signer 0's bundle.
        assert_eq!((c.proposed, c.proposed_with_censored), (5, 1));
        assert!(!verdict(&h).unwrap().pass);
        let mut odd = h.clone();
        odd.chains[0].blocks[5].proposer = "a".into();
        assert!(verdict(&odd).unwrap().pass, "{:?}", verdict(&odd));
        // The same validator silent: its blocks in the window fail the verdict, none passes.
        let mut silent = odd.clone();
        silent.windows[0].misbehaviour = Some(Misbehaviour::Silent);
        assert!(!verdict(&silent).unwrap().pass);
        for b in &mut silent.chains[0].blocks {
            b.proposer = "a".into();
        }
        assert!(verdict(&silent).unwrap().pass, "{:?}", verdict(&silent));
        // Withholding: a bundle only node 1 acknowledged (at 250 ms), included in block 6
        // (seen at 600 ms): after node 1 was made honest at 450 ms passes, while it still
        // withheld (until 700 ms) fails.
        let mut withhold = odd.clone();
        withhold.windows[0].misbehaviour = Some(Misbehaviour::Withhold);
        withhold.windows[0].healing = Some(450);
        withhold.acks[0].node = 1;
        assert!(verdict(&withhold).unwrap().pass, "{:?}", verdict(&withhold));
        withhold.windows[0].healing = Some(700);
        assert!(
            !verdict(&withhold).unwrap().pass,
            "{:?}",
            verdict(&withhold)
        );
        withhold.chains[0].blocks[5].bundles.clear();
        withhold.chains[0].blocks[8].bundles.push(x);
        assert!(verdict(&withhold).unwrap().pass, "{:?}", verdict(&withhold));
        // Equivocating: node 1 ("b") must be named in an honest node's evidence; its own
        // report does not count.
        let mut equivocate = odd.clone();
        equivocate.windows[0].misbehaviour = Some(Misbehaviour::EquivocateVotes);
        let seen = |validator: &str| EvidenceSeen {
            validator: validator.into(),
            height: 3,
            round: 0,
            kind: "prevote".into(),
        };
        equivocate.evidence = vec![vec![], vec![seen("b")]];
        assert!(
            !verdict(&equivocate).unwrap().pass,
            "only the liar reported itself"
        );
        equivocate.evidence = vec![vec![seen("a")], vec![]];
        assert!(
            !verdict(&equivocate).unwrap().pass,
            "evidence against another validator"
        );
        equivocate.evidence = vec![vec![seen("b")], vec![]];
        assert!(
            verdict(&equivocate).unwrap().pass,
            "{:?}",
            verdict(&equivocate)
        );
        // Proposing invalid blocks: none of its blocks decided, and honest nodes judged some
        // invalid and dropped some forged ones (its own counts do not count).
        let verdicts = |invalid: u64, unsigned: u64| {
            std::collections::BTreeMap::from([
                ("invalid".to_string(), invalid),
                ("unsigned".to_string(), unsigned),
            ])
        };
        let mut invalid = silent.clone();
        invalid.windows[0].misbehaviour = Some(Misbehaviour::Invalid);
        invalid.proposals = vec![verdicts(5, 2), verdicts(0, 0)];
        assert!(verdict(&invalid).unwrap().pass, "{:?}", verdict(&invalid));
        invalid.proposals = vec![verdicts(0, 2), verdicts(9, 9)];
        assert!(
            !verdict(&invalid).unwrap().pass,
            "no honest invalid verdict"
        );
        invalid.proposals = vec![verdicts(5, 0), verdicts(0, 0)];
        assert!(
            !verdict(&invalid).unwrap().pass,
            "no forged part signature seen"
        );
        invalid.proposals = vec![verdicts(5, 2), verdicts(0, 0)];
        invalid.chains[0].blocks[3].proposer = "b".into();
        assert!(
            !verdict(&invalid).unwrap().pass,
            "a block of theirs decided"
        );
        // Flooding: named in honest evidence, and junk dropped by honest nodes.
        let mut flood = equivocate.clone();
        flood.windows[0].misbehaviour = Some(Misbehaviour::Flood);
        flood.proposals = vec![verdicts(1, 0), verdicts(0, 40)];
        assert!(
            !verdict(&flood).unwrap().pass,
            "no honest node saw the junk"
        );
        flood.proposals = vec![verdicts(1, 40), verdicts(0, 0)];
        assert!(verdict(&flood).unwrap().pass, "{:?}", verdict(&flood));
        assert_eq!(c.censored.count, 1);
        assert_eq!(c.censored.heights, [4, 4, 4]);
        assert_eq!(c.censored.ms, [350, 350, 350]);
        assert_eq!(c.others.heights, [1, 1, 1]);
        assert_eq!(c.others.ms, [50, 50, 50]);
        // No censoring window: no figures.
        let mut quiet = h.clone();
        quiet.windows[0].misbehaviour = None;
        assert!(measure(&quiet).is_none());
    }
}

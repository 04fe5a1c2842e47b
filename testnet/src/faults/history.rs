//! What a fault run records: the nemesis's actions, every acknowledgement, every node's height
//! over time, and at the end every node's chain, the acknowledging nodes' answers, what each
//! validator signed and what each rollup follower received. The checker judges this record
//! alone, so a run's `history.json` can be checked again later.

use super::nemesis::Misbehaviour;
use lockstep_bundles::Hash;
use serde::{Deserialize, Serialize};

/// Milliseconds since the run started.
pub type Millis = u64;

/// One action of the nemesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultWindow {
    /// What was done, e.g. `partition {0,1}|{2,3}`.
    pub fault: String,
    /// How it was done, e.g. `nftables drop rules in each namespace`.
    pub mechanism: String,
    pub start: Millis,
    /// When the fault was in place (its mechanism done); every node's height was read then.
    #[serde(default)]
    pub applied: Millis,
    /// When it was undone (healed, resumed, restarted); `None` while it lasts to the end.
    pub end: Option<Millis>,
    /// Validators the fault touches (cut off, paused, down, skewed, slow).
    pub faulty: Vec<usize>,
    /// Whether the validators that can still reach each other hold a quorum (more than 2/3 of
    /// the power): when not, the checker expects no new height during the window, not progress.
    pub quorum_kept: bool,
    /// Validators whose store was wiped in this window (their height starts again from 0).
    #[serde(default)]
    pub wiped: Vec<usize>,
    /// Validators that misbehaved in this window (their own signatures may conflict).
    #[serde(default)]
    pub byzantine: Vec<usize>,
    /// What the Byzantine validators were made to do.
    #[serde(default)]
    pub misbehaviour: Option<Misbehaviour>,
    /// When the undoing began (`end` is when it was done): what a Byzantine validator did
    /// before this it did as a Byzantine one.
    #[serde(default)]
    pub healing: Option<Millis>,
}

impl FaultWindow {
    /// Whether the Byzantine validators were made to equivocate (their logs must show it).
    pub fn equivocates(&self) -> bool {
        self.misbehaviour
            .as_ref()
            .is_some_and(Misbehaviour::equivocates)
    }

    /// The workload signer a censoring validator left out.
    pub fn censors(&self) -> Option<usize> {
        match &self.misbehaviour {
            Some(Misbehaviour::Censor { signer, .. }) => Some(*signer),
            _ => None,
        }
    }
}

/// One entry of a node's `seq_getEvidence` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceSeen {
    /// The validator's address.
    pub validator: String,
    pub height: u64,
    pub round: u32,
    pub kind: String,
}

/// A bundle a node acknowledged (returned its hash for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub hash: Hash,
    pub node: usize,
    pub at: Millis,
    /// The workload signer that sent it.
    #[serde(default)]
    pub signer: usize,
}

/// One poll of one node's latest height; `None` when it did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeightSample {
    pub at: Millis,
    pub node: usize,
    pub height: Option<u64>,
}

/// One block as a node serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBlock {
    pub height: u64,
    pub hash: Hash,
    pub parent: Hash,
    pub bundles: Vec<Hash>,
    /// The proposer's address.
    #[serde(default)]
    pub proposer: String,
}

/// A node's chain at the end of the run, read block by block over its RPC.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeChain {
    pub node: usize,
    /// The height the node reports as its latest.
    pub tip: u64,
    pub blocks: Vec<ChainBlock>,
}

/// What the acknowledging node says about an acknowledged bundle at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckStatus {
    pub hash: Hash,
    pub node: usize,
    /// `included`, `pending`, `dropped`, `unknown`, or `error: …` when the node did not answer.
    pub status: String,
    pub height: Option<u64>,
    pub reason: Option<String>,
}

/// One message a validator signed (its `signed.jsonl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    pub height: u64,
    pub round: i64,
    pub kind: String,
    pub value: Option<String>,
}

/// One batch a rollup follower received and verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowedBatch {
    pub height: u64,
    pub block_hash: Hash,
    pub bundles: Vec<Hash>,
}

/// A rollup follower's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowerRecord {
    pub name: String,
    pub rollup: u64,
    pub batches: Vec<FollowedBatch>,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// Everything one run recorded.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    pub scenario: String,
    pub seed: u64,
    pub validators: usize,
    /// Each node's validator address, by node index.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// How the network and its faults were made (namespaces, nftables, relay, faketime, …).
    pub mechanisms: Vec<String>,
    pub windows: Vec<FaultWindow>,
    /// When the last fault was healed and the settle time began.
    pub healed_at: Millis,
    pub ended_at: Millis,
    pub acks: Vec<Ack>,
    /// Submissions that got no answer (timeouts, refused connections): neither acknowledged
    /// nor refused, so nothing is owed for them.
    pub unanswered: u64,
    /// Submissions refused with 4006 and retried.
    pub busy_retries: u64,
    pub heights: Vec<HeightSample>,
    pub chains: Vec<NodeChain>,
    pub statuses: Vec<AckStatus>,
    /// Per validator, what it signed (empty when its log is missing).
    pub signed: Vec<Vec<Signed>>,
    pub followers: Vec<FollowerRecord>,
    /// The height every follower was asked to reach: the lowest node tip once the acknowledged
    /// bundles had settled (the chain goes on growing after it, with empty blocks).
    #[serde(default)]
    pub follow_target: u64,
    /// Per node, the equivocations it reported at the end (`seq_getEvidence`).
    #[serde(default)]
    pub evidence: Vec<Vec<EvidenceSeen>>,
    /// Per node, how many proposals it judged each way by the end (its
    /// `lockstep_consensus_proposals_total` by `verdict`: valid, invalid, unavailable,
    /// unsigned, …); empty for a node that did not answer.
    #[serde(default)]
    pub proposals: Vec<std::collections::BTreeMap<String, u64>>,
}

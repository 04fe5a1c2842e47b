//! Evidence of misbehaviour: two different messages a validator signed where it may sign only
//! one. The host records what it sees (a second, different proposal from a round's proposer,
//! and the double votes and proposal messages Malachite reports); the record is bounded, kept
//! by the node's store when it is given one ([`EvidenceLog::keep_in`]), for operators to read
//! (and, later, to act on).
//!
//! An entry holds both signed messages, so anyone with the validator set can check it without
//! trusting the node that recorded it: for a proposal, the signature is over
//! `proposal_sign_bytes(chain_id, height, round, -1, header.hash(), proposer)` (protocol §5.2).

use borsh::{BorshDeserialize, BorshSerialize};
use lockstep_bundles::{Address, BlockHeader, Hash};
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Most entries kept per validator; the oldest of that validator's goes first. Only a
/// validator's own signatures can make an entry about it, so one validator that equivocates
/// in every round it leads cannot push out what was recorded about another, and the record
/// holds at most this many entries times the size of the validator set.
pub const MAX_EVIDENCE_PER_VALIDATOR: usize = 32;

/// A block proposal as its proposer signed it.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedProposal {
    pub height: u64,
    pub round: u32,
    /// Who signed it: the round's proposer (part of the signed bytes).
    pub proposer: Address,
    /// The proof-of-lock round the stream carried (not signed: −1 in the signed bytes).
    pub pol_round: i64,
    /// The proposed block's header; the signed value is its hash.
    pub header: BlockHeader,
    /// The proposer's ed25519 signature (protocol §5.2).
    pub signature: [u8; 64],
}

impl SignedProposal {
    /// The block hash the proposer signed.
    pub fn block_hash(&self) -> Hash {
        self.header.hash()
    }
}

/// A consensus message (a vote, or a proposal message naming a block id) as its validator
/// signed it; Malachite's consensus engine saw both of a pair and reported them.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedValue {
    /// The block id voted for or proposed; `None` for a nil vote.
    pub value: Option<Hash>,
    /// The validator's ed25519 signature over the message (protocol §5.2).
    pub signature: [u8; 64],
}

/// Which of a validator's votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum VoteKind {
    Prevote,
    Precommit,
}

/// What a validator did.
// The proposal variant carries two block headers; entries are few (at most
// MAX_EVIDENCE_PER_VALIDATOR per validator) and rarely made, so they are not boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Misbehaviour {
    /// Two different proposals for one height and round, both signed by its proposer: the
    /// one this node took first and the other one.
    Proposal {
        first: SignedProposal,
        second: SignedProposal,
    },
    /// Two different proposal messages (block ids) for one height and round, both signed by
    /// its proposer, as Malachite's proposal keeper saw them.
    ProposalMessage {
        first: SignedValue,
        second: SignedValue,
    },
    /// Two different votes of one kind for one height and round, both signed by the
    /// validator, as Malachite's vote keeper saw them.
    Vote {
        kind: VoteKind,
        first: SignedValue,
        second: SignedValue,
    },
}

impl Misbehaviour {
    /// A short, stable label (metrics, logs, the JSON-RPC answer).
    pub fn label(&self) -> &'static str {
        match self {
            Misbehaviour::Proposal { .. } => "proposal",
            Misbehaviour::ProposalMessage { .. } => "proposal-message",
            Misbehaviour::Vote {
                kind: VoteKind::Prevote,
                ..
            } => "prevote",
            Misbehaviour::Vote {
                kind: VoteKind::Precommit,
                ..
            } => "precommit",
        }
    }
}

/// One piece of evidence against one validator.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Evidence {
    /// The validator who signed both messages.
    pub validator: Address,
    pub height: u64,
    pub round: u32,
    pub misbehaviour: Misbehaviour,
}

/// Where the record is kept beyond memory (the node's store): each entry as it is recorded,
/// and forgotten when a newer one against the same validator pushes it out.
pub trait EvidenceStore: Send + Sync {
    fn keep(&self, e: &Evidence) -> Result<(), String>;
    fn forget(&self, e: &Evidence) -> Result<(), String>;
}

#[derive(Default)]
struct Inner {
    /// Per validator, oldest first, each with the order it was recorded in.
    by_validator: BTreeMap<Address, VecDeque<(u64, Evidence)>>,
    recorded: u64,
    store: Option<Arc<dyn EvidenceStore>>,
}

/// The evidence this node has seen, bounded ([`MAX_EVIDENCE_PER_VALIDATOR`]). A cloneable
/// handle: the host records, other parts of the node read.
#[derive(Clone, Default)]
pub struct EvidenceLog {
    inner: Arc<Mutex<Inner>>,
}

impl EvidenceLog {
    pub fn new() -> EvidenceLog {
        EvidenceLog::default()
    }

    /// Records `e`; returns whether it is new. Evidence of the same kind against the same
    /// validator at the same height and round is recorded once (two messages prove it; a
    /// third adds nothing).
    pub fn record(&self, e: Evidence) -> bool {
        let mut inner = self.inner.lock();
        let seq = inner.recorded;
        let known = inner.by_validator.get(&e.validator).is_some_and(|list| {
            list.iter().any(|(_, old)| {
                old.height == e.height
                    && old.round == e.round
                    && old.misbehaviour.label() == e.misbehaviour.label()
            })
        });
        if known {
            return false;
        }
        let store = inner.store.clone();
        if let Some(store) = &store {
            // A store that refuses the write loses nothing held in memory: logged, and the
            // entry is still answered until the node stops.
            if let Err(why) = store.keep(&e) {
                tracing::error!(validator = %e.validator, height = e.height, "cannot store evidence: {why}");
            }
        }
        let list = inner.by_validator.entry(e.validator).or_default();
        list.push_back((seq, e));
        while list.len() > MAX_EVIDENCE_PER_VALIDATOR {
            if let (Some((_, old)), Some(store)) = (list.pop_front(), &store) {
                if let Err(why) = store.forget(&old) {
                    tracing::error!("cannot forget stored evidence: {why}");
                }
            }
        }
        inner.recorded += 1;
        true
    }

    /// Keeps every entry recorded from now on in `store`, after taking back `kept` (what it
    /// held from earlier runs, oldest first; not written again).
    pub fn keep_in(&self, store: Arc<dyn EvidenceStore>, kept: Vec<Evidence>) {
        for e in kept {
            self.record(e);
        }
        self.inner.lock().store = Some(store);
    }

    /// Every entry kept, in the order recorded.
    pub fn list(&self) -> Vec<Evidence> {
        let inner = self.inner.lock();
        let mut all: Vec<&(u64, Evidence)> = inner.by_validator.values().flatten().collect();
        all.sort_by_key(|(seq, _)| *seq);
        all.into_iter().map(|(_, e)| e.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in memory: what is kept, by key.
    #[derive(Default)]
    struct Kept(Mutex<Vec<Evidence>>);

    impl EvidenceStore for Kept {
        fn keep(&self, e: &Evidence) -> Result<(), String> {
            self.0.lock().push(e.clone());
            Ok(())
        }
        fn forget(&self, e: &Evidence) -> Result<(), String> {
            self.0.lock().retain(|k| k != e);
            Ok(())
        }
    }

    #[test]
    fn a_kept_record_survives_a_new_log_and_the_store_follows_evictions() {
        let store = Arc::new(Kept::default());
        let log = EvidenceLog::new();
        log.record(equivocation(9, 1, 0));
        log.keep_in(store.clone(), Vec::new());
        assert!(
            store.0.lock().is_empty(),
            "only entries recorded from then on are kept"
        );
        for h in 2..2 + MAX_EVIDENCE_PER_VALIDATOR as u64 + 3 {
            assert!(log.record(equivocation(1, h, 0)));
        }
        assert!(
            !log.record(equivocation(1, 36, 0)),
            "a duplicate is not kept twice"
        );
        let kept = store.0.lock().clone();
        assert_eq!(
            kept.len(),
            MAX_EVIDENCE_PER_VALIDATOR,
            "evicted entries are forgotten"
        );
        assert_eq!(kept.first().map(|e| e.height), Some(5));
        // A restarted node takes back what its store kept, and answers it again.
        let again = EvidenceLog::new();
        let store2 = Arc::new(Kept::default());
        again.keep_in(store2.clone(), kept.clone());
        assert_eq!(again.list(), kept);
        assert!(store2.0.lock().is_empty(), "taken back, not written again");
        // Entries round-trip through their stored encoding.
        let bytes = borsh::to_vec(&kept[0]).unwrap();
        assert_eq!(Evidence::try_from_slice(&bytes).unwrap(), kept[0]);
    }

    fn proposal(height: u64, round: u32, timestamp: u64) -> SignedProposal {
        SignedProposal {
            height,
            round,
            proposer: Address::default(),
            pol_round: -1,
            header: BlockHeader {
                chain_id: 1,
                height,
                timestamp,
                proposer: Address::default(),
                parent_hash: Hash::ZERO,
                bundle_count: 0,
                bundles_root: Hash::ZERO,
                rollups_root: Hash::ZERO,
                validators_hash: Hash::ZERO,
            },
            signature: [7; 64],
        }
    }

    fn equivocation(validator: u8, height: u64, round: u32) -> Evidence {
        Evidence {
            validator: Address([validator; 20]),
            height,
            round,
            misbehaviour: Misbehaviour::Proposal {
                first: proposal(height, round, 1),
                second: proposal(height, round, 2),
            },
        }
    }

    #[test]
    fn evidence_is_listed_in_the_order_recorded_with_both_signed_messages() {
        let log = EvidenceLog::new();
        assert!(log.list().is_empty());
        let (a, b) = (equivocation(2, 5, 0), equivocation(1, 6, 3));
        assert!(log.record(a.clone()));
        assert!(log.record(b.clone()));
        assert_eq!(log.list(), vec![a.clone(), b]);
        let Misbehaviour::Proposal { first, second } = &a.misbehaviour else {
            panic!("a proposal: {a:?}");
        };
        assert_ne!(first.block_hash(), second.block_hash());
        // A handle's clone reads the same record.
        assert_eq!(log.clone().list().len(), 2);
    }

    #[test]
    fn one_height_and_round_of_one_validator_is_recorded_once() {
        let log = EvidenceLog::new();
        assert!(log.record(equivocation(1, 5, 0)));
        // A third proposal for the same round adds nothing.
        let mut third = equivocation(1, 5, 0);
        let Misbehaviour::Proposal { second, .. } = &mut third.misbehaviour else {
            panic!("a proposal");
        };
        second.header.timestamp = 3;
        assert!(!log.record(third));
        // Another round, or another validator, is new evidence.
        assert!(log.record(equivocation(1, 5, 4)));
        assert!(log.record(equivocation(2, 5, 0)));
        assert_eq!(log.list().len(), 3);
    }

    #[test]
    fn each_validator_keeps_its_latest_evidence_up_to_the_limit() {
        let log = EvidenceLog::new();
        let other = equivocation(9, 1, 0);
        log.record(other.clone());
        for round in 0..MAX_EVIDENCE_PER_VALIDATOR as u32 {
            assert!(log.record(equivocation(1, 2, round)));
        }
        assert_eq!(
            log.list().len(),
            MAX_EVIDENCE_PER_VALIDATOR + 1,
            "at the limit"
        );
        // One more: validator 1's oldest goes, nobody else's.
        assert!(log.record(equivocation(1, 3, 0)));
        let kept = log.list();
        assert_eq!(kept.len(), MAX_EVIDENCE_PER_VALIDATOR + 1);
        assert_eq!(kept[0], other);
        assert!(!kept.contains(&equivocation(1, 2, 0)));
        assert_eq!(kept.last(), Some(&equivocation(1, 3, 0)));
    }
}

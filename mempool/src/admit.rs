//! The admission rules: what becomes of a decoded bundle before it enters the pool, and what
//! its outcome says about whoever sent it. Pure and synchronous; the node runs them around its
//! signature verifier and the pool's lock (`node/src/admission/`).
//!
//! For each bundle, in this order ([`Rules::screen`]):
//! 1. **Dedupe, by hash and signature.** A bundle's hash covers its body, not its signature,
//!    so a copy is known only if its signature is the one verified here (ADR-023). The very
//!    copy pending here: admission is idempotent, the answer is its hash and nothing is
//!    checked again. Pending with another signature: this copy's signature is verified, and
//!    the copy is refused either way (4001; [`Rules::recheck`]). Included: from a peer, taken
//!    as known but not relayed (nothing to check: the chain has it); from a user, its
//!    signature is verified, then the answer is its hash. Verified earlier here with this
//!    signature (in a proposal): checked, but its signature is not verified again.
//! 2. **Disk.** A node low on disk refuses bundles submitted to it ([`Source::Rpc`], 4006),
//!    but still takes bundles from peers: the others include them whatever this node does.
//! 3. **Limits.** Size, leg count, chain id and the `valid_until` window
//!    ([`SignedBundle::check_static`]).
//! 4. **Signature.** Verified by the node, in batches, unless it was verified here before.
//!
//! Then the pool's own bounds apply ([`crate::pool`]). An [`AdmitError`] carries the protocol
//! error code a user sees and the [`Fault`] that decides a gossip peer's [`GossipVerdict`].

use crate::pool::{Origin, PoolError};
use crate::Known;
use lockstep_bundles::bundle::Window;
use lockstep_bundles::sig::Item;
use lockstep_bundles::{BundleError, Hash, Limits, SignedBundle};

/// The protocol error code of every refusal that is this node's doing: "node busy, retry
/// later" (protocol §3).
pub(crate) const BUSY_CODE: i32 = 4006;
/// The protocol error code of a copy refused for its signature (protocol §3.5): one that does
/// not verify, or another signature of a bundle pending here.
pub(crate) const OTHER_SIGNATURE_CODE: i32 = 4001;
/// A validator set update the chain cannot include now.
pub(crate) const SET_UPDATE_CODE: i32 = 4008;

/// A bundle admission did not refuse: its hash, and whether a gossip message carrying this
/// copy may be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub hash: Hash,
    /// False for a copy of a bundle already included: the chain has it, so relaying it helps
    /// no one, and since a gossip message id covers the signature, relaying every valid copy
    /// would let a signer make the network carry as many re-signed copies as it likes.
    pub relay: bool,
}

/// The outcome of admitting one bundle.
pub type AdmitResult<T> = Result<T, AdmitError>;

/// Where a bundle came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Submitted to this node over JSON-RPC.
    Rpc,
    /// Gossiped by a peer.
    Gossip,
}

impl Source {
    /// A short, stable label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Source::Rpc => "rpc",
            Source::Gossip => "gossip",
        }
    }

    /// Which of the pool's bounds its bundles are held to (see [`crate::pool`]).
    pub fn origin(self) -> Origin {
        match self {
            Source::Rpc => Origin::Local,
            Source::Gossip => Origin::Peer,
        }
    }
}

/// Whose doing a refusal is: whether a gossip peer is penalised, and whether a user may retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The sender's: the bundle is invalid on every node at every height (bad signature,
    /// wrong chain, over a protocol limit, undecodable). A peer that relays it is penalised
    /// (an honest peer relays only what it verified); a user must change it.
    Sender,
    /// This node's: it is busy, its pool is full, or its disk is low. Nobody is penalised;
    /// the same bundle may be sent again later, or to another node.
    Us,
    /// Neither's: the bundle is outside the `valid_until` window at this node's height, which
    /// a peer may see differently, or it expired while relayed. Nobody is penalised, but
    /// sending the same bundle again does not help.
    Neither,
}

/// Why a bundle was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// It breaks a protocol rule (4001–4005).
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The pool has no room for it (4006).
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The node cannot take it now: a queue is full or admission has stopped (4006).
    #[error("{0}")]
    Busy(String),
    /// The node's disk is nearly full, so it takes no submissions (4006).
    #[error("{0}")]
    DiskLow(String),
    /// A copy of a bundle pending here that carries another signature, which verifies (4001):
    /// only the signer can make one. The pool keeps its copy; this one is not taken or
    /// relayed, and nobody is penalised.
    #[error(
        "bundle {hash} is already pending here with another signature; this copy is not taken"
    )]
    OtherSignature { hash: String },
    /// A validator set update the chain could not include now (4008): not for the set in
    /// force, not signed by more than two thirds of it, changes that do not fit it, or
    /// another update not yet in force. It depends on the chain's state, which an honest
    /// peer a height behind may see otherwise, so nobody is penalised.
    #[error("validator set update refused: {0}")]
    SetUpdate(lockstep_bundles::SetUpdateError),
}

impl AdmitError {
    /// A bundle whose signature does not verify for `signer`.
    pub fn bad_signature(signer: &[u8; 32]) -> AdmitError {
        AdmitError::Bundle(BundleError::BadSignature {
            signer: lockstep_bundles::hash::encode_hex(signer),
        })
    }

    /// The protocol error code (4001–4006) a user is answered with.
    pub fn code(&self) -> i32 {
        match self {
            AdmitError::Bundle(b) => b.code(),
            AdmitError::OtherSignature { .. } => OTHER_SIGNATURE_CODE,
            AdmitError::SetUpdate(_) => SET_UPDATE_CODE,
            AdmitError::Pool(_) | AdmitError::Busy(_) | AdmitError::DiskLow(_) => BUSY_CODE,
        }
    }

    /// A short, stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            AdmitError::Bundle(b) => b.label(),
            AdmitError::OtherSignature { .. } => "other_signature",
            AdmitError::SetUpdate(_) => "set_update_refused",
            AdmitError::Pool(_) | AdmitError::Busy(_) => "busy",
            AdmitError::DiskLow(_) => "disk_low",
        }
    }

    /// Whose doing the refusal is.
    pub fn fault(&self) -> Fault {
        match self {
            AdmitError::Bundle(BundleError::Expired { .. } | BundleError::TooFarAhead { .. }) => {
                Fault::Neither
            }
            AdmitError::Bundle(_) => Fault::Sender,
            // Only the signer can make another valid signature; a peer may hold that copy
            // honestly (the signer gave it to another node), so it is not penalised.
            AdmitError::OtherSignature { .. } => Fault::Neither,
            AdmitError::SetUpdate(_) => Fault::Neither,
            AdmitError::Pool(_) | AdmitError::Busy(_) | AdmitError::DiskLow(_) => Fault::Us,
        }
    }

    /// Whether the peer that sent the bundle should be penalised.
    pub fn is_bad_peer(&self) -> bool {
        self.fault() == Fault::Sender
    }
}

/// What gossip is told about a message: forward it, drop it quietly, or drop it and
/// penalise its sender. (The node maps it onto gossipsub's acceptance.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GossipVerdict {
    /// Valid: forward it.
    Accept,
    /// Not forwarded, no penalty (already known, node busy, expired in flight).
    Ignore,
    /// Invalid: not forwarded, the sender is penalised.
    Reject,
}

impl GossipVerdict {
    /// The verdict on one bundle's admission outcome.
    pub fn of_bundle(outcome: &AdmitResult<Taken>) -> GossipVerdict {
        match outcome {
            Ok(t) if t.relay => GossipVerdict::Accept,
            Ok(_) => GossipVerdict::Ignore,
            Err(e) if e.is_bad_peer() => GossipVerdict::Reject,
            Err(_) => GossipVerdict::Ignore,
        }
    }

    /// The verdict on a message from the outcomes of its bundles, in order: one invalid
    /// bundle rejects it (an honest peer only relays what it verified; the outcomes after it
    /// are not looked at); otherwise it is forwarded if any bundle was admitted (or is the
    /// very copy pending here), and ignored (no penalty) if none was.
    pub fn of_message(outcomes: impl IntoIterator<Item = AdmitResult<Taken>>) -> GossipVerdict {
        let mut v = GossipVerdict::Ignore;
        for r in outcomes {
            match GossipVerdict::of_bundle(&r) {
                GossipVerdict::Reject => return GossipVerdict::Reject,
                GossipVerdict::Accept => v = GossipVerdict::Accept,
                GossipVerdict::Ignore => {}
            }
        }
        v
    }
}

/// What the rules make of a bundle before its signature is checked.
#[derive(Debug, Clone, Copy)]
pub enum Screened {
    /// This very copy (hash and signature) is pending: nothing to do, its hash is the answer.
    Known,
    /// Already included, from a peer: taken as known without a check and not relayed.
    Included,
    /// Another copy of a bundle known here (pending with another signature; or included,
    /// from a user): this item must verify, and [`Rules::recheck`] then says what becomes of
    /// it. Never inserted.
    Recheck(Item),
    /// Passes every rule but the signature, which must be verified: this item.
    Verify(Item),
    /// Passes every rule; its signature was verified here before (in a proposal).
    Verified,
}

/// The admission rules as they stand for one group of bundles: the chain and its limits,
/// the latest decided height and the node's disk. Built once per group.
#[derive(Debug, Clone)]
pub struct Rules {
    chain_id: u64,
    limits: Limits,
    window: Window,
    disk_low: Option<String>,
}

impl Rules {
    /// The rules at latest decided height `latest`; `disk_low` says why submissions are
    /// refused, if the node is low on disk.
    pub fn new(chain_id: u64, limits: Limits, latest: u64, disk_low: Option<String>) -> Rules {
        Rules {
            chain_id,
            limits,
            window: Window::after(latest, &limits),
            disk_low,
        }
    }

    /// The height a bundle admitted now could be included at, at the earliest.
    pub fn next_height(&self) -> u64 {
        self.window.next_height
    }

    /// Judges a decoded bundle from `source`, whose canonical encoding is `encoded_len`
    /// bytes long and hashes to `hash`, and of which the node knows `known` (see the module
    /// doc for the order of the rules).
    pub fn screen(
        &self,
        bundle: &SignedBundle,
        hash: Hash,
        encoded_len: usize,
        known: Known,
        source: Source,
    ) -> AdmitResult<Screened> {
        let item = || Item {
            pk: bundle.body.signer,
            msg: hash.0,
            sig: bundle.signature,
        };
        match (known, source) {
            (Known::Pending, _) => return Ok(Screened::Known),
            (Known::Included { .. }, Source::Gossip) => return Ok(Screened::Included),
            (Known::Included { .. } | Known::PendingOtherSignature, _) => {
                return Ok(Screened::Recheck(item()))
            }
            (Known::Verified | Known::New, _) => {}
        }
        if let (Some(why), Source::Rpc) = (&self.disk_low, source) {
            return Err(AdmitError::DiskLow(why.clone()));
        }
        bundle.check_static(encoded_len, self.chain_id, &self.window, &self.limits)?;
        Ok(match known {
            Known::Verified => Screened::Verified,
            _ => Screened::Verify(item()),
        })
    }

    /// What becomes of a copy screened [`Screened::Recheck`] (what was `known` of it) once
    /// its signature was checked (`verified`). A signature that does not verify is 4001, and
    /// the sender's fault: an honest node relays only copies it verified. One that verifies
    /// is another signature by the bundle's own signer: for a pending bundle the copy is
    /// refused (4001, nobody's fault: the pool keeps its copy); for an included one the
    /// answer is its hash, not relayed.
    pub fn recheck(
        hash: Hash,
        signer: &[u8; 32],
        known: Known,
        verified: bool,
    ) -> AdmitResult<Taken> {
        if !verified {
            return Err(AdmitError::bad_signature(signer));
        }
        match known {
            Known::Included { .. } => Ok(Taken { hash, relay: false }),
            _ => Err(AdmitError::OtherSignature {
                hash: hash.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_bundles::{BundleBody, Leg};

    const CHAIN: u64 = 7;
    const LATEST: u64 = 100;

    fn bundle(legs: usize, valid_until: u64) -> SignedBundle {
        SignedBundle {
            body: BundleBody {
                chain_id: CHAIN,
                signer: [3; 32],
                nonce: 1,
                valid_until,
                legs: (0..legs)
                    .map(|i| Leg {
                        rollup_id: i as u64 + 1,
                        data: vec![1; 4].into(),
                    })
                    .collect(),
            },
            signature: [9; 64],
        }
    }

    fn rules() -> Rules {
        Rules::new(CHAIN, Limits::default(), LATEST, None)
    }

    fn low_disk() -> Rules {
        Rules::new(
            CHAIN,
            Limits::default(),
            LATEST,
            Some("disk nearly full".into()),
        )
    }

    /// Screens `b` at its true encoded length.
    fn screen(r: &Rules, b: &SignedBundle, known: Known, source: Source) -> AdmitResult<Screened> {
        r.screen(b, b.hash(), b.encode().len(), known, source)
    }

    fn code(r: AdmitResult<Screened>) -> Option<i32> {
        r.err().map(|e| e.code())
    }

    #[test]
    fn a_new_bundle_needs_its_signature_verified_over_its_hash() {
        let b = bundle(1, LATEST + 1);
        let Ok(Screened::Verify(item)) = screen(&rules(), &b, Known::New, Source::Gossip) else {
            panic!("a new valid bundle must be verified");
        };
        assert_eq!(item.pk, b.body.signer);
        assert_eq!(item.msg, b.hash().0);
        assert_eq!(item.sig, b.signature);
    }

    #[test]
    fn the_very_copy_pending_here_is_known_without_any_check() {
        // Expired, and sent to a node low on disk: still answered with its hash.
        let b = bundle(1, 1);
        for source in [Source::Rpc, Source::Gossip] {
            assert!(matches!(
                screen(&low_disk(), &b, Known::Pending, source),
                Ok(Screened::Known)
            ));
        }
    }

    #[test]
    fn another_copy_of_a_pending_bundle_is_verified_and_never_taken() {
        // Expired, and sent to a node low on disk: the copy's signature is what decides.
        let b = bundle(1, 1);
        for source in [Source::Rpc, Source::Gossip] {
            let Ok(Screened::Recheck(item)) =
                screen(&low_disk(), &b, Known::PendingOtherSignature, source)
            else {
                panic!("another copy of a pending bundle must have its signature verified");
            };
            assert_eq!((item.msg, item.sig), (b.hash().0, b.signature));
        }
        let known = Known::PendingOtherSignature;
        // A signature that does not verify: 4001, and a peer that relays it is penalised.
        let forged = Rules::recheck(b.hash(), &b.body.signer, known, false).unwrap_err();
        assert_eq!(forged, AdmitError::bad_signature(&b.body.signer));
        assert_eq!(
            GossipVerdict::of_bundle(&Err(forged)),
            GossipVerdict::Reject
        );
        // Another valid signature (only the signer can make one): 4001, not taken, not
        // relayed, nobody penalised.
        let other = Rules::recheck(b.hash(), &b.body.signer, known, true).unwrap_err();
        assert_eq!(other.code(), 4001);
        assert_eq!(other.fault(), Fault::Neither);
        assert!(other.to_string().contains("another signature"), "{other}");
        assert_eq!(GossipVerdict::of_bundle(&Err(other)), GossipVerdict::Ignore);
    }

    #[test]
    fn a_copy_of_an_included_bundle_is_never_relayed_and_a_user_s_is_verified() {
        let b = bundle(1, 1);
        let included = Known::Included { height: 3 };
        // From a peer: known, without a check, and not relayed.
        assert!(matches!(
            screen(&low_disk(), &b, included, Source::Gossip),
            Ok(Screened::Included)
        ));
        // From a user: its signature decides between its hash and 4001.
        assert!(matches!(
            screen(&low_disk(), &b, included, Source::Rpc),
            Ok(Screened::Recheck(_))
        ));
        let ok = Rules::recheck(b.hash(), &b.body.signer, included, true);
        assert_eq!(
            ok,
            Ok(Taken {
                hash: b.hash(),
                relay: false
            })
        );
        assert_eq!(GossipVerdict::of_bundle(&ok), GossipVerdict::Ignore);
        let forged = Rules::recheck(b.hash(), &b.body.signer, included, false);
        assert_eq!(forged.unwrap_err().code(), 4001);
    }

    #[test]
    fn a_bundle_verified_in_a_proposal_is_checked_but_not_verified_again() {
        let b = bundle(1, LATEST + 1);
        assert!(matches!(
            screen(&rules(), &b, Known::Verified, Source::Gossip),
            Ok(Screened::Verified)
        ));
        // The rules other than the signature still apply to it.
        let late = bundle(1, LATEST);
        assert_eq!(
            code(screen(&rules(), &late, Known::Verified, Source::Gossip)),
            Some(4003)
        );
    }

    #[test]
    fn a_node_low_on_disk_refuses_submissions_but_takes_gossip() {
        let b = bundle(1, LATEST + 1);
        let refused = screen(&low_disk(), &b, Known::New, Source::Rpc).unwrap_err();
        assert_eq!(refused, AdmitError::DiskLow("disk nearly full".into()));
        assert_eq!(refused.code(), 4006);
        assert_eq!(refused.to_string(), "disk nearly full");
        assert!(matches!(
            screen(&low_disk(), &b, Known::New, Source::Gossip),
            Ok(Screened::Verify(_))
        ));
        assert!(matches!(
            screen(&low_disk(), &b, Known::Verified, Source::Gossip),
            Ok(Screened::Verified)
        ));
        // Refused before any other rule: the user is told to go elsewhere.
        let wrong = SignedBundle {
            body: BundleBody {
                chain_id: CHAIN + 1,
                ..b.body.clone()
            },
            ..b
        };
        assert_eq!(
            code(screen(&low_disk(), &wrong, Known::New, Source::Rpc)),
            Some(4006)
        );
    }

    #[test]
    fn the_bundle_size_limit_holds_at_the_limit() {
        let r = rules();
        let b = bundle(1, LATEST + 1);
        let max = Limits::default().max_bundle_bytes as usize;
        let at = r.screen(&b, b.hash(), max, Known::New, Source::Rpc);
        assert!(matches!(at, Ok(Screened::Verify(_))));
        let over = r.screen(&b, b.hash(), max + 1, Known::New, Source::Rpc);
        assert_eq!(
            over.unwrap_err(),
            AdmitError::Bundle(BundleError::TooLarge {
                size: max + 1,
                max: max as u32
            })
        );
    }

    #[test]
    fn the_leg_limit_holds_at_the_limit_and_a_bundle_needs_a_leg() {
        let max = Limits::default().max_legs as usize;
        let ok = bundle(max, LATEST + 1);
        assert!(screen(&rules(), &ok, Known::New, Source::Rpc).is_ok());
        let over = bundle(max + 1, LATEST + 1);
        assert_eq!(
            screen(&rules(), &over, Known::New, Source::Rpc).unwrap_err(),
            AdmitError::Bundle(BundleError::TooManyLegs {
                legs: max + 1,
                max: max as u32
            })
        );
        let none = bundle(0, LATEST + 1);
        assert_eq!(
            screen(&rules(), &none, Known::New, Source::Rpc).unwrap_err(),
            AdmitError::Bundle(BundleError::NoLegs)
        );
    }

    #[test]
    fn the_valid_until_window_holds_at_both_ends() {
        let r = rules();
        let ttl = Limits::default().max_ttl;
        let at = |valid_until| code(screen(&r, &bundle(1, valid_until), Known::New, Source::Rpc));
        assert_eq!(r.next_height(), LATEST + 1);
        assert_eq!(at(LATEST + 1), None, "includable at the next height");
        assert_eq!(at(LATEST), Some(4003), "expired");
        assert_eq!(at(LATEST + ttl), None, "at most max_ttl ahead");
        assert_eq!(at(LATEST + ttl + 1), Some(4003), "too far ahead");
    }

    #[test]
    fn a_bundle_for_another_chain_is_refused() {
        let b = bundle(1, LATEST + 1);
        let other = Rules::new(CHAIN + 1, Limits::default(), LATEST, None);
        assert_eq!(
            screen(&other, &b, Known::New, Source::Gossip).unwrap_err(),
            AdmitError::Bundle(BundleError::WrongChain {
                expected: CHAIN + 1,
                got: CHAIN
            })
        );
    }

    #[test]
    fn sources_map_to_pool_origins() {
        assert_eq!(Source::Rpc.origin(), Origin::Local);
        assert_eq!(Source::Gossip.origin(), Origin::Peer);
    }

    /// One error of every kind, with its code and fault.
    fn every_error() -> Vec<(AdmitError, i32, Fault)> {
        let b = |e: BundleError| AdmitError::Bundle(e);
        vec![
            (AdmitError::bad_signature(&[1; 32]), 4001, Fault::Sender),
            (
                b(BundleError::WrongChain {
                    expected: 1,
                    got: 2,
                }),
                4002,
                Fault::Sender,
            ),
            (
                b(BundleError::Expired {
                    valid_until: 1,
                    next_height: 2,
                }),
                4003,
                Fault::Neither,
            ),
            (
                b(BundleError::TooFarAhead {
                    valid_until: 9,
                    max: 5,
                    max_ttl: 4,
                }),
                4003,
                Fault::Neither,
            ),
            (
                b(BundleError::TooLarge { size: 2, max: 1 }),
                4004,
                Fault::Sender,
            ),
            (
                b(BundleError::TooManyLegs { legs: 2, max: 1 }),
                4004,
                Fault::Sender,
            ),
            (b(BundleError::NoLegs), 4004, Fault::Sender),
            (b(BundleError::Undecodable("x".into())), 4005, Fault::Sender),
            (
                AdmitError::Pool(PoolError::SignerCap { pending: 1, max: 1 }),
                4006,
                Fault::Us,
            ),
            (AdmitError::Busy("queue full".into()), 4006, Fault::Us),
            (AdmitError::DiskLow("disk full".into()), 4006, Fault::Us),
            (
                AdmitError::OtherSignature {
                    hash: "0x01".into(),
                },
                4001,
                Fault::Neither,
            ),
        ]
    }

    #[test]
    fn every_refusal_keeps_its_protocol_code_and_names_whose_fault_it_is() {
        for (e, code, fault) in every_error() {
            assert_eq!(e.code(), code, "{e:?}");
            assert_eq!(e.fault(), fault, "{e:?}");
            assert_eq!(e.is_bad_peer(), fault == Fault::Sender, "{e:?}");
        }
    }

    #[test]
    fn refusals_read_as_their_cause() {
        let full = PoolError::SignerCap { pending: 3, max: 3 };
        assert_eq!(AdmitError::from(full.clone()).to_string(), full.to_string());
        assert_eq!(AdmitError::from(full).label(), "busy");
        let bad = AdmitError::bad_signature(&[0xab; 32]);
        assert!(
            bad.to_string().contains(&format!("0x{}", "ab".repeat(32))),
            "{bad}"
        );
        assert_eq!(bad.label(), "bad_signature");
        assert_eq!(AdmitError::DiskLow(String::new()).label(), "disk_low");
    }

    /// A bundle taken, to be relayed or not.
    fn taken(relay: bool) -> AdmitResult<Taken> {
        Ok(Taken {
            hash: Hash::ZERO,
            relay,
        })
    }

    #[test]
    fn only_the_senders_fault_rejects_a_gossip_peer() {
        assert_eq!(
            GossipVerdict::of_bundle(&taken(true)),
            GossipVerdict::Accept
        );
        assert_eq!(
            GossipVerdict::of_bundle(&taken(false)),
            GossipVerdict::Ignore
        );
        for (e, _, fault) in every_error() {
            let expected = match fault {
                Fault::Sender => GossipVerdict::Reject,
                Fault::Us | Fault::Neither => GossipVerdict::Ignore,
            };
            assert_eq!(GossipVerdict::of_bundle(&Err(e)), expected);
        }
    }

    #[test]
    fn one_invalid_bundle_rejects_its_message_and_none_admitted_ignores_it() {
        let ok = || taken(true);
        let included = || taken(false);
        let bad = || Err(AdmitError::bad_signature(&[0; 32]));
        let busy = || Err(AdmitError::Busy("full".into()));
        let v = |o: Vec<AdmitResult<Taken>>| GossipVerdict::of_message(o);
        assert_eq!(v(vec![ok(), ok()]), GossipVerdict::Accept);
        assert_eq!(v(vec![included(), ok()]), GossipVerdict::Accept);
        assert_eq!(v(vec![included()]), GossipVerdict::Ignore);
        assert_eq!(v(vec![busy(), ok()]), GossipVerdict::Accept);
        assert_eq!(v(vec![ok(), bad(), ok()]), GossipVerdict::Reject);
        assert_eq!(v(vec![busy(), busy()]), GossipVerdict::Ignore);
        assert_eq!(v(vec![]), GossipVerdict::Ignore);
    }
}

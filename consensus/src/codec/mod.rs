//! The wire and WAL codec for every Malachite message, in Borsh.
//!
//! Malachite's message types are generic over the context and carry ed25519 signatures that
//! Borsh cannot derive for, so each is mirrored by a plain Borsh struct here. Every decoder
//! returns an error on malformed input; none panics.

mod consensus_msgs;
mod sync_msgs;

use crate::context::Proposal;
use crate::context::{
    BlockId, Height, LockstepContext as Ctx, ProposalPart, ValidatorAddress, Vote,
};
use borsh::{BorshDeserialize, BorshSerialize};
use bytes::Bytes;
use lockstep_bundles::{Address, Hash};
use malachitebft_app_channel::app::consensus::{LivenessMsg, ProposedValue, SignedConsensusMsg};
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::codec::{Codec, HasEncodedLen};
use malachitebft_app_channel::app::types::core::{
    CommitCertificate, CommitSignature, ExtendedCommitCertificate, ExtendedCommitSignature,
    NilOrVal, PolkaCertificate, PolkaSignature, Round, RoundCertificate, RoundCertificateType,
    RoundSignature, SignedExtension, SignedMessage, ValidatorProof, Validity, VoteType,
};
use malachitebft_app_channel::app::types::sync::{RawDecidedValue, Request, Response, Status};
use malachitebft_app_channel::app::types::PeerId;
use malachitebft_signing_ed25519::Signature;
use malachitebft_sync::{ValueRequest, ValueResponse};

/// A message that could not be decoded (or, never in practice, encoded).
#[derive(Debug, thiserror::Error)]
#[error("codec: {0}")]
pub struct CodecError(pub String);

/// The one codec for network, WAL and sync.
#[derive(Clone, Copy, Debug, Default)]
pub struct LockstepCodec;

fn enc<T: BorshSerialize>(v: &T) -> Result<Bytes, CodecError> {
    borsh::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| CodecError(e.to_string()))
}

fn dec<T: BorshDeserialize>(b: &[u8]) -> Result<T, CodecError> {
    borsh::from_slice(b).map_err(|e| CodecError(e.to_string()))
}

type Sig = [u8; 64];

fn sig(s: &Signature) -> Sig {
    s.to_bytes()
}

fn unsig(s: Sig) -> Signature {
    Signature::from_bytes(s)
}

fn round(r: Round) -> i64 {
    r.as_i64()
}

/// A round on the wire is `-1` (nil) or a `u32`. Anything else is refused here: Malachite's
/// `Round::from(i64)` asserts on values above `u32::MAX`, and a peer's bytes must never reach
/// an assertion. Other negative values are refused too, so every round has one encoding.
fn unround(r: i64) -> Result<Round, CodecError> {
    match r {
        -1 => Ok(Round::Nil),
        0..=0xFFFF_FFFF => Ok(Round::new(r as u32)),
        _ => Err(CodecError(format!("round {r} is outside -1..=u32::MAX"))),
    }
}

fn nil_or(v: &NilOrVal<BlockId>) -> Option<[u8; 32]> {
    match v {
        NilOrVal::Nil => None,
        NilOrVal::Val(id) => Some(id.0 .0),
    }
}

fn un_nil_or(v: Option<[u8; 32]>) -> NilOrVal<BlockId> {
    match v {
        None => NilOrVal::Nil,
        Some(h) => NilOrVal::Val(BlockId(Hash(h))),
    }
}

fn addr(a: &ValidatorAddress) -> [u8; 20] {
    a.0 .0
}

fn unaddr(a: [u8; 20]) -> ValidatorAddress {
    ValidatorAddress(Address(a))
}

fn vtype(t: VoteType) -> u8 {
    match t {
        VoteType::Prevote => 0,
        VoteType::Precommit => 1,
    }
}

fn unvtype(t: u8) -> Result<VoteType, CodecError> {
    match t {
        0 => Ok(VoteType::Prevote),
        1 => Ok(VoteType::Precommit),
        _ => Err(CodecError(format!("unknown vote type {t}"))),
    }
}

/// Converts Malachite's certificate into the protocol's, which clients verify on their own.
pub fn to_protocol_certificate(c: &CommitCertificate<Ctx>) -> lockstep_bundles::CommitCertificate {
    lockstep_bundles::CommitCertificate {
        height: c.height.0,
        round: c.round.as_u32().unwrap_or(0),
        block_hash: c.value_id.0,
        signatures: c
            .commit_signatures
            .iter()
            .map(|s| lockstep_bundles::CommitSig {
                address: s.address.0,
                signature: sig(&s.signature),
            })
            .collect(),
    }
}

/// The inverse of [`to_protocol_certificate`], for serving decided values to syncing peers.
pub fn from_protocol_certificate(
    c: &lockstep_bundles::CommitCertificate,
) -> CommitCertificate<Ctx> {
    CommitCertificate {
        height: Height(c.height),
        round: Round::new(c.round),
        value_id: BlockId(c.block_hash),
        commit_signatures: c
            .signatures
            .iter()
            .map(|s| CommitSignature::new(ValidatorAddress(s.address), unsig(s.signature)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::consensus_msgs::*;
    use super::sync_msgs::*;
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    fn round_trip<T>(v: T) -> T
    where
        LockstepCodec: Codec<T>,
        <LockstepCodec as Codec<T>>::Error: std::fmt::Debug,
    {
        let b = LockstepCodec.encode(&v).unwrap();
        LockstepCodec.decode(b).unwrap()
    }

    fn vote(t: VoteType, value: Option<[u8; 32]>) -> SignedMessage<Ctx, Vote> {
        SignedMessage::new(
            Vote {
                vote_type: t,
                height: Height(9),
                round: Round::new(2),
                value: un_nil_or(value),
                validator: unaddr([3; 20]),
                extension: None,
            },
            unsig([7; 64]),
        )
    }

    #[test]
    fn consensus_messages_round_trip() {
        for v in [
            vote(VoteType::Prevote, None),
            vote(VoteType::Precommit, Some([1; 32])),
        ] {
            let m = SignedConsensusMsg::Vote(v);
            assert_eq!(round_trip(m.clone()), m);
        }
        let p = SignedConsensusMsg::Proposal(SignedMessage::new(
            Proposal {
                height: Height(4),
                round: Round::new(0),
                value: BlockId(Hash([5; 32])),
                pol_round: Round::Nil,
                proposer: unaddr([1; 20]),
            },
            unsig([2; 64]),
        ));
        assert_eq!(round_trip(p.clone()), p);
    }

    /// A block header with every field set (to nothing in particular).
    fn header() -> lockstep_bundles::BlockHeader {
        lockstep_bundles::BlockHeader {
            chain_id: 1,
            height: 3,
            timestamp: 9,
            proposer: Address([1; 20]),
            parent_hash: Hash([2; 32]),
            bundle_count: 2,
            bundles_root: Hash([3; 32]),
            rollups_root: Hash([4; 32]),
            validators_hash: Hash([8; 32]),
        }
    }

    #[test]
    fn proposal_streams_round_trip_in_one_part_and_in_several() {
        let header = header();
        let few = vec![Hash([5; 32]), Hash([6; 32])];
        let many: Vec<Hash> = (0..crate::streaming::PART_HASHES as u32 + 1)
            .map(|i| Hash::tagged(b"test", &[&i.to_le_bytes()]))
            .collect();
        for hashes in [few, many] {
            let msgs = crate::streaming::split(
                3,
                1,
                0,
                Address([1; 20]),
                header.clone(),
                &hashes,
                [7; 64],
            );
            for m in msgs {
                assert_eq!(round_trip(m.clone()), m);
            }
        }
    }

    #[test]
    fn proposed_value_with_nil_rounds_round_trips() {
        let v = ProposedValue {
            height: Height(3),
            round: Round::new(1),
            valid_round: Round::Nil,
            proposer: unaddr([4; 20]),
            value: BlockId(Hash([6; 32])),
            validity: Validity::Invalid,
        };
        assert_eq!(round_trip(v.clone()), v);
    }

    #[test]
    fn certificates_convert_both_ways() {
        let c = lockstep_bundles::CommitCertificate {
            height: 5,
            round: 1,
            block_hash: Hash([8; 32]),
            signatures: vec![lockstep_bundles::CommitSig {
                address: Address([1; 20]),
                signature: [2; 64],
            }],
        };
        assert_eq!(to_protocol_certificate(&from_protocol_certificate(&c)), c);
    }

    #[test]
    fn rounds_outside_nil_and_u32_are_refused_not_asserted_on() {
        for (r, ok) in [
            (-1, true),
            (0, true),
            (i64::from(u32::MAX), true),
            (i64::from(u32::MAX) + 1, false),
            (i64::MAX, false),
            (-2, false),
            (i64::MIN, false),
        ] {
            let vote = WConsensusMsg::Vote(WVote {
                vote_type: 0,
                height: 1,
                round: r,
                value: None,
                validator: [1; 20],
                extension: None,
                sig: [0; 64],
            });
            let proposal = WConsensusMsg::Proposal(WProposal {
                height: 1,
                round: 1,
                value: [2; 32],
                pol_round: r,
                proposer: [1; 20],
                sig: [0; 64],
            });
            for w in [vote, proposal] {
                let got =
                    Codec::<SignedConsensusMsg<Ctx>>::decode(&LockstepCodec, enc(&w).unwrap());
                assert_eq!(got.is_ok(), ok, "round {r}: {:?}", got.err());
            }
            let polka = WLiveness::Polka(WPolka {
                height: 1,
                round: r,
                value: [2; 32],
                signatures: vec![],
            });
            let skip = WLiveness::Round(WRoundCert {
                height: 1,
                round: r,
                skip: true,
                signatures: vec![],
            });
            for w in [polka, skip] {
                let got = Codec::<LivenessMsg<Ctx>>::decode(&LockstepCodec, enc(&w).unwrap());
                assert_eq!(got.is_ok(), ok, "round {r}: {:?}", got.err());
            }
            let response = WResponse {
                start_height: 1,
                values: vec![WDecided {
                    value: vec![],
                    certificate: WExtendedCert {
                        height: 1,
                        round: r,
                        value: [2; 32],
                        signatures: vec![],
                    },
                }],
            };
            let got = Codec::<Response<Ctx>>::decode(&LockstepCodec, enc(&response).unwrap());
            assert_eq!(got.is_ok(), ok, "round {r}");
            let pv = WProposedValue {
                height: 1,
                round: 0,
                valid_round: r,
                proposer: [1; 20],
                value: [2; 32],
                valid: true,
            };
            let got = Codec::<ProposedValue<Ctx>>::decode(&LockstepCodec, enc(&pv).unwrap());
            assert_eq!(got.is_ok(), ok, "round {r}");
        }
    }

    /// Decodes `bytes` as a `T`; whatever is accepted must encode back to exactly `bytes`
    /// (one message, one encoding: a peer cannot make two byte strings mean the same thing).
    /// Returns whether it was accepted.
    fn accepted_canonically<T>(bytes: &Bytes) -> Result<bool, TestCaseError>
    where
        LockstepCodec: Codec<T>,
    {
        match Codec::<T>::decode(&LockstepCodec, bytes.clone()) {
            Err(_) => Ok(false),
            Ok(v) => {
                let again = LockstepCodec
                    .encode(&v)
                    .map_err(|_| TestCaseError::fail("an accepted message does not encode"))?;
                prop_assert_eq!(&again, bytes, "accepted bytes do not re-encode identically");
                Ok(true)
            }
        }
    }

    /// Every decoder on `bytes`: none panics, each accepts only canonical input. Returns how
    /// many accepted.
    fn every_decoder(bytes: &Bytes) -> Result<usize, TestCaseError> {
        let accepted = [
            accepted_canonically::<SignedConsensusMsg<Ctx>>(bytes)?,
            accepted_canonically::<LivenessMsg<Ctx>>(bytes)?,
            accepted_canonically::<StreamMessage<ProposalPart>>(bytes)?,
            accepted_canonically::<Status<Ctx>>(bytes)?,
            accepted_canonically::<Request<Ctx>>(bytes)?,
            accepted_canonically::<Response<Ctx>>(bytes)?,
            accepted_canonically::<ProposedValue<Ctx>>(bytes)?,
            accepted_canonically::<PolkaCertificate<Ctx>>(bytes)?,
            accepted_canonically::<ValidatorProof<Ctx>>(bytes)?,
        ];
        Ok(accepted.iter().filter(|a| **a).count())
    }

    type Decoder = fn(&Bytes) -> Result<bool, TestCaseError>;

    /// Valid encodings of several message kinds, each with its own decoder, to be cut,
    /// lengthened and changed.
    fn seeds() -> Vec<(Bytes, Decoder)> {
        let header = header();
        let part =
            crate::streaming::split(3, 1, 0, Address([1; 20]), header, &[Hash([5; 32])], [7; 64]);
        let pv = ProposedValue {
            height: Height(3),
            round: Round::new(1),
            valid_round: Round::Nil,
            proposer: unaddr([4; 20]),
            value: BlockId(Hash([6; 32])),
            validity: Validity::Valid,
        };
        vec![
            (
                LockstepCodec
                    .encode(&SignedConsensusMsg::Vote(vote(
                        VoteType::Precommit,
                        Some([1; 32]),
                    )))
                    .unwrap(),
                accepted_canonically::<SignedConsensusMsg<Ctx>>,
            ),
            (
                LockstepCodec.encode(&part[0]).unwrap(),
                accepted_canonically::<StreamMessage<ProposalPart>>,
            ),
            (
                LockstepCodec.encode(&pv).unwrap(),
                accepted_canonically::<ProposedValue<Ctx>>,
            ),
        ]
    }

    #[test]
    fn the_seeds_decode() {
        for (s, own) in seeds() {
            assert!(
                own(&s).unwrap(),
                "a seed must be a valid message of its kind"
            );
        }
    }

    proptest! {
        #[test]
        fn decoders_accept_only_canonical_bytes_and_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            every_decoder(&Bytes::from(bytes))?;
        }

        /// Valid messages cut short, lengthened or with one byte changed (often a tag, a
        /// length or a round) are refused or, if still a message, its one encoding.
        #[test]
        fn changed_messages_are_refused_or_canonical(
            seed in any::<proptest::sample::Index>(),
            cut in any::<proptest::sample::Index>(),
            at in any::<proptest::sample::Index>(),
            to in any::<u8>(),
            extra in proptest::collection::vec(any::<u8>(), 1..4),
        ) {
            let seeds = seeds();
            let (valid, own) = &seeds[seed.index(seeds.len())];
            let valid = valid.to_vec();
            let mut changed = valid.clone();
            changed[at.index(valid.len())] = to;
            let mut longer = valid.clone();
            longer.extend(&extra);
            let (longer, shorter) = (Bytes::from(longer), Bytes::from(valid[..cut.index(valid.len())].to_vec()));
            // Its own decoder refuses it lengthened or cut short (no trailing bytes, no
            // missing ones); every decoder accepts only canonical bytes.
            prop_assert!(!own(&longer)?);
            prop_assert!(!own(&shorter)?);
            for bytes in [longer, shorter, Bytes::from(changed)] {
                every_decoder(&bytes)?;
            }
        }
    }
}

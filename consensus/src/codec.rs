//! The wire and WAL codec for every Malachite message, in Borsh.
//!
//! Malachite's message types are generic over the context and carry ed25519 signatures that
//! Borsh cannot derive for, so each is mirrored by a plain Borsh struct here. Every decoder
//! returns an error on malformed input; none panics.

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

#[derive(BorshSerialize, BorshDeserialize)]
struct WExtension {
    data: Vec<u8>,
    sig: Sig,
}

fn ext(e: &Option<SignedExtension<Ctx>>) -> Option<WExtension> {
    e.as_ref().map(|e| WExtension {
        data: e.message.to_vec(),
        sig: sig(&e.signature),
    })
}

fn unext(e: Option<WExtension>) -> Option<SignedExtension<Ctx>> {
    e.map(|e| SignedMessage::new(Bytes::from(e.data), unsig(e.sig)))
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WVote {
    vote_type: u8,
    height: u64,
    round: i64,
    value: Option<[u8; 32]>,
    validator: [u8; 20],
    extension: Option<WExtension>,
    sig: Sig,
}

impl WVote {
    fn from(v: &SignedMessage<Ctx, Vote>) -> WVote {
        WVote {
            vote_type: vtype(v.message.vote_type),
            height: v.message.height.0,
            round: round(v.message.round),
            value: nil_or(&v.message.value),
            validator: addr(&v.message.validator),
            extension: ext(&v.message.extension),
            sig: sig(&v.signature),
        }
    }

    fn into(self) -> Result<SignedMessage<Ctx, Vote>, CodecError> {
        let vote = Vote {
            vote_type: unvtype(self.vote_type)?,
            height: Height(self.height),
            round: unround(self.round)?,
            value: un_nil_or(self.value),
            validator: unaddr(self.validator),
            extension: unext(self.extension),
        };
        Ok(SignedMessage::new(vote, unsig(self.sig)))
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WProposal {
    height: u64,
    round: i64,
    value: [u8; 32],
    pol_round: i64,
    proposer: [u8; 20],
    sig: Sig,
}

#[derive(BorshSerialize, BorshDeserialize)]
enum WConsensusMsg {
    Vote(WVote),
    Proposal(WProposal),
}

impl Codec<SignedConsensusMsg<Ctx>> for LockstepCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<SignedConsensusMsg<Ctx>, CodecError> {
        Ok(match dec::<WConsensusMsg>(&bytes)? {
            WConsensusMsg::Vote(v) => SignedConsensusMsg::Vote(v.into()?),
            WConsensusMsg::Proposal(p) => SignedConsensusMsg::Proposal(SignedMessage::new(
                Proposal {
                    height: Height(p.height),
                    round: unround(p.round)?,
                    value: BlockId(Hash(p.value)),
                    pol_round: unround(p.pol_round)?,
                    proposer: unaddr(p.proposer),
                },
                unsig(p.sig),
            )),
        })
    }
    fn encode(&self, msg: &SignedConsensusMsg<Ctx>) -> Result<Bytes, CodecError> {
        enc(&match msg {
            SignedConsensusMsg::Vote(v) => WConsensusMsg::Vote(WVote::from(v)),
            SignedConsensusMsg::Proposal(p) => WConsensusMsg::Proposal(WProposal {
                height: p.message.height.0,
                round: round(p.message.round),
                value: p.message.value.0 .0,
                pol_round: round(p.message.pol_round),
                proposer: addr(&p.message.proposer),
                sig: sig(&p.signature),
            }),
        })
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WSigned {
    address: [u8; 20],
    sig: Sig,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WPolka {
    height: u64,
    round: i64,
    value: [u8; 32],
    signatures: Vec<WSigned>,
}

impl WPolka {
    fn from(c: &PolkaCertificate<Ctx>) -> WPolka {
        WPolka {
            height: c.height.0,
            round: round(c.round),
            value: c.value_id.0 .0,
            signatures: c
                .polka_signatures
                .iter()
                .map(|s| WSigned {
                    address: addr(&s.address),
                    sig: sig(&s.signature),
                })
                .collect(),
        }
    }

    fn into(self) -> Result<PolkaCertificate<Ctx>, CodecError> {
        Ok(PolkaCertificate {
            height: Height(self.height),
            round: unround(self.round)?,
            value_id: BlockId(Hash(self.value)),
            polka_signatures: self
                .signatures
                .into_iter()
                .map(|s| PolkaSignature::new(unaddr(s.address), unsig(s.sig)))
                .collect(),
        })
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WRoundSig {
    vote_type: u8,
    value: Option<[u8; 32]>,
    address: [u8; 20],
    sig: Sig,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WRoundCert {
    height: u64,
    round: i64,
    skip: bool,
    signatures: Vec<WRoundSig>,
}

#[derive(BorshSerialize, BorshDeserialize)]
enum WLiveness {
    Vote(WVote),
    Polka(WPolka),
    Round(WRoundCert),
}

impl Codec<LivenessMsg<Ctx>> for LockstepCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<LivenessMsg<Ctx>, CodecError> {
        Ok(match dec::<WLiveness>(&bytes)? {
            WLiveness::Vote(v) => LivenessMsg::Vote(v.into()?),
            WLiveness::Polka(p) => LivenessMsg::PolkaCertificate(p.into()?),
            WLiveness::Round(c) => LivenessMsg::SkipRoundCertificate(RoundCertificate {
                height: Height(c.height),
                round: unround(c.round)?,
                cert_type: if c.skip {
                    RoundCertificateType::Skip
                } else {
                    RoundCertificateType::Precommit
                },
                round_signatures: c
                    .signatures
                    .into_iter()
                    .map(|s| {
                        Ok(RoundSignature::new(
                            unvtype(s.vote_type)?,
                            un_nil_or(s.value),
                            unaddr(s.address),
                            unsig(s.sig),
                        ))
                    })
                    .collect::<Result<_, CodecError>>()?,
            }),
        })
    }
    fn encode(&self, msg: &LivenessMsg<Ctx>) -> Result<Bytes, CodecError> {
        enc(&match msg {
            LivenessMsg::Vote(v) => WLiveness::Vote(WVote::from(v)),
            LivenessMsg::PolkaCertificate(p) => WLiveness::Polka(WPolka::from(p)),
            LivenessMsg::SkipRoundCertificate(c) => WLiveness::Round(WRoundCert {
                height: c.height.0,
                round: round(c.round),
                skip: matches!(c.cert_type, RoundCertificateType::Skip),
                signatures: c
                    .round_signatures
                    .iter()
                    .map(|s| WRoundSig {
                        vote_type: vtype(s.vote_type),
                        value: nil_or(&s.value_id),
                        address: addr(&s.address),
                        sig: sig(&s.signature),
                    })
                    .collect(),
            }),
        })
    }
}

impl Codec<PolkaCertificate<Ctx>> for LockstepCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<PolkaCertificate<Ctx>, CodecError> {
        dec::<WPolka>(&bytes)?.into()
    }
    fn encode(&self, msg: &PolkaCertificate<Ctx>) -> Result<Bytes, CodecError> {
        enc(&WPolka::from(msg))
    }
}

impl Codec<ProposalPart> for LockstepCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<ProposalPart, CodecError> {
        dec(&bytes)
    }
    fn encode(&self, msg: &ProposalPart) -> Result<Bytes, CodecError> {
        enc(msg)
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WStream {
    stream_id: Vec<u8>,
    sequence: u64,
    /// `None` is the end-of-stream marker.
    part: Option<ProposalPart>,
}

impl Codec<StreamMessage<ProposalPart>> for LockstepCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<StreamMessage<ProposalPart>, CodecError> {
        let w: WStream = dec(&bytes)?;
        let content = match w.part {
            Some(p) => StreamContent::Data(p),
            None => StreamContent::Fin,
        };
        Ok(StreamMessage::new(
            StreamId::new(Bytes::from(w.stream_id)),
            w.sequence,
            content,
        ))
    }
    fn encode(&self, msg: &StreamMessage<ProposalPart>) -> Result<Bytes, CodecError> {
        let part = match &msg.content {
            StreamContent::Data(p) => Some(p.clone()),
            StreamContent::Fin => None,
        };
        enc(&WStream {
            stream_id: msg.stream_id.to_bytes().to_vec(),
            sequence: msg.sequence,
            part,
        })
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WProof {
    public_key: Vec<u8>,
    peer_id: Vec<u8>,
    sig: Sig,
}

impl Codec<ValidatorProof<Ctx>> for LockstepCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<ValidatorProof<Ctx>, CodecError> {
        let w: WProof = dec(&bytes)?;
        Ok(ValidatorProof::new(w.public_key, w.peer_id, unsig(w.sig)))
    }
    fn encode(&self, msg: &ValidatorProof<Ctx>) -> Result<Bytes, CodecError> {
        enc(&WProof {
            public_key: msg.public_key.clone(),
            peer_id: msg.peer_id.clone(),
            sig: sig(&msg.signature),
        })
    }
}

fn peer(b: &[u8]) -> Result<PeerId, CodecError> {
    PeerId::from_bytes(b).map_err(|e| CodecError(format!("peer id: {e}")))
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WStatus {
    peer_id: Vec<u8>,
    tip_height: u64,
    history_min_height: u64,
}

impl Codec<Status<Ctx>> for LockstepCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<Status<Ctx>, CodecError> {
        let w: WStatus = dec(&bytes)?;
        Ok(Status {
            peer_id: peer(&w.peer_id)?,
            tip_height: Height(w.tip_height),
            history_min_height: Height(w.history_min_height),
        })
    }
    fn encode(&self, msg: &Status<Ctx>) -> Result<Bytes, CodecError> {
        enc(&WStatus {
            peer_id: msg.peer_id.to_bytes(),
            tip_height: msg.tip_height.0,
            history_min_height: msg.history_min_height.0,
        })
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WRequest {
    start: u64,
    end: u64,
}

impl Codec<Request<Ctx>> for LockstepCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<Request<Ctx>, CodecError> {
        let w: WRequest = dec(&bytes)?;
        Ok(Request::ValueRequest(ValueRequest::new(
            Height(w.start)..=Height(w.end),
        )))
    }
    fn encode(&self, msg: &Request<Ctx>) -> Result<Bytes, CodecError> {
        let Request::ValueRequest(r) = msg;
        enc(&WRequest {
            start: r.range.start().0,
            end: r.range.end().0,
        })
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WCommitSig {
    address: [u8; 20],
    sig: Sig,
    extension: Option<WExtension>,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WExtendedCert {
    height: u64,
    round: i64,
    value: [u8; 32],
    signatures: Vec<WCommitSig>,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WDecided {
    value: Vec<u8>,
    certificate: WExtendedCert,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WResponse {
    start_height: u64,
    values: Vec<WDecided>,
}

fn wresponse(r: &Response<Ctx>) -> WResponse {
    let Response::ValueResponse(v) = r;
    WResponse {
        start_height: v.start_height.0,
        values: v
            .values
            .iter()
            .map(|d| WDecided {
                value: d.value_bytes.to_vec(),
                certificate: WExtendedCert {
                    height: d.certificate.height.0,
                    round: round(d.certificate.round),
                    value: d.certificate.value_id.0 .0,
                    signatures: d
                        .certificate
                        .commit_signatures
                        .iter()
                        .map(|s| WCommitSig {
                            address: addr(&s.address),
                            sig: sig(&s.signature),
                            extension: ext(&s.extension),
                        })
                        .collect(),
                },
            })
            .collect(),
    }
}

impl Codec<Response<Ctx>> for LockstepCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<Response<Ctx>, CodecError> {
        let w: WResponse = dec(&bytes)?;
        let values = w
            .values
            .into_iter()
            .map(|d| {
                let c = d.certificate;
                Ok(RawDecidedValue::new(
                    Bytes::from(d.value),
                    ExtendedCommitCertificate {
                        height: Height(c.height),
                        round: unround(c.round)?,
                        value_id: BlockId(Hash(c.value)),
                        commit_signatures: c
                            .signatures
                            .into_iter()
                            .map(|s| ExtendedCommitSignature {
                                address: unaddr(s.address),
                                signature: unsig(s.sig),
                                extension: unext(s.extension),
                            })
                            .collect(),
                    },
                ))
            })
            .collect::<Result<_, CodecError>>()?;
        Ok(Response::ValueResponse(ValueResponse::new(
            Height(w.start_height),
            values,
        )))
    }
    fn encode(&self, msg: &Response<Ctx>) -> Result<Bytes, CodecError> {
        enc(&wresponse(msg))
    }
}

impl HasEncodedLen<Response<Ctx>> for LockstepCodec {
    fn encoded_len(&self, msg: &Response<Ctx>) -> Result<usize, CodecError> {
        borsh::object_length(&wresponse(msg)).map_err(|e| CodecError(e.to_string()))
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WProposedValue {
    height: u64,
    round: i64,
    valid_round: i64,
    proposer: [u8; 20],
    value: [u8; 32],
    valid: bool,
}

impl Codec<ProposedValue<Ctx>> for LockstepCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<ProposedValue<Ctx>, CodecError> {
        let w: WProposedValue = dec(&bytes)?;
        Ok(ProposedValue {
            height: Height(w.height),
            round: unround(w.round)?,
            valid_round: unround(w.valid_round)?,
            proposer: unaddr(w.proposer),
            value: BlockId(Hash(w.value)),
            validity: Validity::from_bool(w.valid),
        })
    }
    fn encode(&self, msg: &ProposedValue<Ctx>) -> Result<Bytes, CodecError> {
        enc(&WProposedValue {
            height: msg.height.0,
            round: round(msg.round),
            valid_round: round(msg.valid_round),
            proposer: addr(&msg.proposer),
            value: msg.value.0 .0,
            valid: msg.validity.to_bool(),
        })
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

    #[test]
    fn proposal_streams_round_trip_in_one_part_and_in_several() {
        let header = lockstep_bundles::BlockHeader {
            chain_id: 1,
            height: 3,
            timestamp: 9,
            proposer: Address([1; 20]),
            parent_hash: Hash([2; 32]),
            bundle_count: 2,
            bundles_root: Hash([3; 32]),
            rollups_root: Hash([4; 32]),
        };
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
        let header = lockstep_bundles::BlockHeader {
            chain_id: 1,
            height: 3,
            timestamp: 9,
            proposer: Address([1; 20]),
            parent_hash: Hash([2; 32]),
            bundle_count: 2,
            bundles_root: Hash([3; 32]),
            rollups_root: Hash([4; 32]),
        };
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

//! Consensus messages on the wire: votes, proposals, liveness (polka and round
//! certificates), proposal parts and their stream framing, validator proofs.

use super::*;
#[derive(BorshSerialize, BorshDeserialize)]
pub(super) struct WExtension {
    pub(super) data: Vec<u8>,
    pub(super) sig: Sig,
}

pub(super) fn ext(e: &Option<SignedExtension<Ctx>>) -> Option<WExtension> {
    e.as_ref().map(|e| WExtension {
        data: e.message.to_vec(),
        sig: sig(&e.signature),
    })
}

pub(super) fn unext(e: Option<WExtension>) -> Option<SignedExtension<Ctx>> {
    e.map(|e| SignedMessage::new(Bytes::from(e.data), unsig(e.sig)))
}

#[derive(BorshSerialize, BorshDeserialize)]
pub(super) struct WVote {
    pub(super) vote_type: u8,
    pub(super) height: u64,
    pub(super) round: i64,
    pub(super) value: Option<[u8; 32]>,
    pub(super) validator: [u8; 20],
    pub(super) extension: Option<WExtension>,
    pub(super) sig: Sig,
}

impl WVote {
    pub(super) fn from(v: &SignedMessage<Ctx, Vote>) -> WVote {
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

    pub(super) fn into(self) -> Result<SignedMessage<Ctx, Vote>, CodecError> {
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
pub(super) struct WProposal {
    pub(super) height: u64,
    pub(super) round: i64,
    pub(super) value: [u8; 32],
    pub(super) pol_round: i64,
    pub(super) proposer: [u8; 20],
    pub(super) sig: Sig,
}

#[derive(BorshSerialize, BorshDeserialize)]
pub(super) enum WConsensusMsg {
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
pub(super) struct WSigned {
    pub(super) address: [u8; 20],
    pub(super) sig: Sig,
}

#[derive(BorshSerialize, BorshDeserialize)]
pub(super) struct WPolka {
    pub(super) height: u64,
    pub(super) round: i64,
    pub(super) value: [u8; 32],
    pub(super) signatures: Vec<WSigned>,
}

impl WPolka {
    pub(super) fn from(c: &PolkaCertificate<Ctx>) -> WPolka {
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

    pub(super) fn into(self) -> Result<PolkaCertificate<Ctx>, CodecError> {
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
pub(super) struct WRoundSig {
    pub(super) vote_type: u8,
    pub(super) value: Option<[u8; 32]>,
    pub(super) address: [u8; 20],
    pub(super) sig: Sig,
}

#[derive(BorshSerialize, BorshDeserialize)]
pub(super) struct WRoundCert {
    pub(super) height: u64,
    pub(super) round: i64,
    pub(super) skip: bool,
    pub(super) signatures: Vec<WRoundSig>,
}

#[derive(BorshSerialize, BorshDeserialize)]
pub(super) enum WLiveness {
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
pub(super) struct WStream {
    pub(super) stream_id: Vec<u8>,
    pub(super) sequence: u64,
    /// `None` is the end-of-stream marker.
    pub(super) part: Option<ProposalPart>,
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
pub(super) struct WProof {
    pub(super) public_key: Vec<u8>,
    pub(super) peer_id: Vec<u8>,
    pub(super) sig: Sig,
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

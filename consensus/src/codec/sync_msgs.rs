//! Value sync on the wire: status, requests, responses (decided values with their
//! certificates), and the proposed values the WAL records.

use super::consensus_msgs::{ext, unext, WExtension};
use super::*;
pub(super) fn peer(b: &[u8]) -> Result<PeerId, CodecError> {
    PeerId::from_bytes(b).map_err(|e| CodecError(format!("peer id: {e}")))
}

#[derive(BorshSerialize, BorshDeserialize)]
pub(super) struct WStatus {
    pub(super) peer_id: Vec<u8>,
    pub(super) tip_height: u64,
    pub(super) history_min_height: u64,
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
pub(super) struct WRequest {
    pub(super) start: u64,
    pub(super) end: u64,
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
pub(super) struct WCommitSig {
    pub(super) address: [u8; 20],
    pub(super) sig: Sig,
    pub(super) extension: Option<WExtension>,
}

#[derive(BorshSerialize, BorshDeserialize)]
pub(super) struct WExtendedCert {
    pub(super) height: u64,
    pub(super) round: i64,
    pub(super) value: [u8; 32],
    pub(super) signatures: Vec<WCommitSig>,
}

#[derive(BorshSerialize, BorshDeserialize)]
pub(super) struct WDecided {
    pub(super) value: Vec<u8>,
    pub(super) certificate: WExtendedCert,
}

#[derive(BorshSerialize, BorshDeserialize)]
pub(super) struct WResponse {
    pub(super) start_height: u64,
    pub(super) values: Vec<WDecided>,
}

pub(super) fn wresponse(r: &Response<Ctx>) -> WResponse {
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
pub(super) struct WProposedValue {
    pub(super) height: u64,
    pub(super) round: i64,
    pub(super) valid_round: i64,
    pub(super) proposer: [u8; 20],
    pub(super) value: [u8; 32],
    pub(super) valid: bool,
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

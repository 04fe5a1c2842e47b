//! Splitting a block proposal into parts and putting streams back together, with bounds.

use crate::context::ProposalPart;
use bytes::Bytes;
use lockstep_bundles::{Address, BlockHeader, Hash};
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::PeerId;
use std::collections::{BTreeMap, HashMap};

/// Most hashes in one `Hashes` part (512 KiB of hashes; gossip messages are capped at 4 MiB).
pub const PART_HASHES: usize = 16 * 1024;
/// Most streams being reassembled at once, across all peers.
pub const MAX_STREAMS: usize = 64;

/// A complete, structurally sound proposal stream.
#[derive(Debug, Clone)]
pub struct CompleteStream {
    pub round: u32,
    pub pol_round: i64,
    pub proposer: Address,
    pub header: BlockHeader,
    pub hashes: Vec<Hash>,
    pub signature: [u8; 64],
}

/// The stream id of a proposal: height and round, big-endian.
pub fn stream_id(height: u64, round: u32) -> StreamId {
    let mut b = Vec::with_capacity(12);
    b.extend_from_slice(&height.to_be_bytes());
    b.extend_from_slice(&round.to_be_bytes());
    StreamId::new(Bytes::from(b))
}

/// The messages of one proposal stream: `Init`, `Hashes` chunks, `Fin`, end marker.
pub fn split(
    height: u64,
    round: u32,
    pol_round: i64,
    proposer: Address,
    header: BlockHeader,
    hashes: &[Hash],
    signature: [u8; 64],
) -> Vec<StreamMessage<ProposalPart>> {
    let mut parts = vec![ProposalPart::Init {
        round,
        pol_round,
        proposer,
        header,
    }];
    parts.extend(
        hashes
            .chunks(PART_HASHES)
            .map(|c| ProposalPart::Hashes(c.to_vec())),
    );
    parts.push(ProposalPart::Fin { signature });
    let id = stream_id(height, round);
    let n = parts.len() as u64;
    let mut msgs: Vec<_> = parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| StreamMessage::new(id.clone(), i as u64, StreamContent::Data(p)))
        .collect();
    msgs.push(StreamMessage::new(id, n, StreamContent::Fin));
    msgs
}

#[derive(Default)]
struct Partial {
    parts: BTreeMap<u64, ProposalPart>,
    end: Option<u64>,
    bytes: usize,
    height: Option<u64>,
}

/// Why a stream was thrown away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("stream exceeds {0} bytes")]
    TooLarge(usize),
    #[error("malformed stream: {0}")]
    Malformed(&'static str),
}

/// Streams under reassembly, keyed by the publishing peer and the stream id.
pub struct Reassembly {
    max_stream_bytes: usize,
    streams: HashMap<(PeerId, StreamId), Partial>,
}

fn part_len(p: &ProposalPart) -> usize {
    match p {
        ProposalPart::Hashes(h) => h.len() * 32,
        _ => 256,
    }
}

impl Reassembly {
    /// Streams of blocks within `limits`: at most one hash per smallest possible bundle.
    pub fn new(limits: &lockstep_bundles::Limits) -> Reassembly {
        let most_bundles =
            limits.max_block_bytes as usize / lockstep_bundles::bundle::MIN_ENCODED_BYTES;
        // Room for the Init and Fin parts.
        Reassembly {
            max_stream_bytes: most_bundles * 32 + 64 * 1024,
            streams: HashMap::new(),
        }
    }

    /// Forgets streams for heights below `height`.
    pub fn prune_below(&mut self, height: u64) {
        self.streams
            .retain(|_, s| s.height.is_none_or(|h| h >= height));
    }

    /// Adds one message; returns the stream once every part has arrived.
    pub fn insert(
        &mut self,
        peer: PeerId,
        msg: StreamMessage<ProposalPart>,
    ) -> Result<Option<CompleteStream>, StreamError> {
        let key = (peer, msg.stream_id.clone());
        if !self.streams.contains_key(&key) && self.streams.len() >= MAX_STREAMS {
            // Make room by dropping the oldest-height stream; a live one will be restreamed.
            if let Some(victim) = self
                .streams
                .iter()
                .min_by_key(|(_, s)| s.height.unwrap_or(0))
                .map(|(k, _)| k.clone())
            {
                self.streams.remove(&victim);
            }
        }
        let max = self.max_stream_bytes;
        let s = self.streams.entry(key.clone()).or_default();
        match msg.content {
            StreamContent::Fin => s.end = Some(msg.sequence),
            StreamContent::Data(part) => {
                if let ProposalPart::Init { header, .. } = &part {
                    if msg.sequence != 0 {
                        self.streams.remove(&key);
                        return Err(StreamError::Malformed("Init part not first"));
                    }
                    s.height = Some(header.height);
                }
                s.bytes += part_len(&part);
                if s.bytes > max {
                    self.streams.remove(&key);
                    return Err(StreamError::TooLarge(max));
                }
                s.parts.entry(msg.sequence).or_insert(part);
            }
        }
        let done = matches!(s.end, Some(end) if s.parts.len() as u64 == end);
        if !done {
            if let Some(end) = s.end {
                if s.parts.keys().next_back().is_some_and(|last| *last >= end) {
                    self.streams.remove(&key);
                    return Err(StreamError::Malformed("part after the end of the stream"));
                }
            }
            return Ok(None);
        }
        let Some(s) = self.streams.remove(&key) else {
            return Ok(None);
        };
        assemble(s.parts.into_values())
    }
}

fn assemble(
    parts: impl Iterator<Item = ProposalPart>,
) -> Result<Option<CompleteStream>, StreamError> {
    let mut it = parts.peekable();
    let Some(ProposalPart::Init {
        round,
        pol_round,
        proposer,
        header,
    }) = it.next()
    else {
        return Err(StreamError::Malformed("stream does not start with Init"));
    };
    let mut hashes = Vec::new();
    let mut signature = None;
    for p in it {
        match p {
            ProposalPart::Hashes(h) if signature.is_none() => hashes.extend(h),
            ProposalPart::Fin { signature: s } if signature.is_none() => signature = Some(s),
            _ => return Err(StreamError::Malformed("parts out of order")),
        }
    }
    let signature = signature.ok_or(StreamError::Malformed("stream has no Fin part"))?;
    Ok(Some(CompleteStream {
        round,
        pol_round,
        proposer,
        header,
        hashes,
        signature,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_bundles::Hash;

    fn header(height: u64) -> BlockHeader {
        BlockHeader {
            chain_id: 1,
            height,
            timestamp: 0,
            proposer: Address::default(),
            parent_hash: Hash::ZERO,
            bundle_count: 0,
            bundles_root: Hash::ZERO,
            rollups_root: Hash::ZERO,
        }
    }

    fn peer() -> PeerId {
        PeerId::from_multihash(
            malachitebft_app_channel::app::types::Keypair::generate_ed25519()
                .public()
                .to_peer_id()
                .into(),
        )
        .unwrap()
    }

    fn hashes(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| Hash::tagged(b"test", &[&i.to_le_bytes()]))
            .collect()
    }

    #[test]
    fn reassembles_out_of_order_and_ignores_duplicates() {
        let bundles = hashes(2 * PART_HASHES + 7);
        let msgs = split(5, 1, -1, Address::default(), header(5), &bundles, [9; 64]);
        assert_eq!(msgs.len(), 6, "Init, three Hashes parts, Fin, end");
        let mut r = Reassembly::new(&lockstep_bundles::Limits::default());
        let p = peer();
        let mut out = None;
        for m in msgs.iter().rev().chain(msgs.iter().take(1)) {
            if let Some(done) = r.insert(p, m.clone()).unwrap() {
                assert!(out.is_none(), "completed once");
                out = Some(done);
            }
        }
        let done = out.expect("complete");
        assert_eq!(done.hashes, bundles);
        assert_eq!(done.signature, [9; 64]);
    }

    #[test]
    fn oversized_stream_is_dropped() {
        let limits = lockstep_bundles::Limits {
            max_block_bytes: 100_000,
            ..Default::default()
        };
        let bundles = hashes(2 * PART_HASHES);
        let msgs = split(5, 0, -1, Address::default(), header(5), &bundles, [0; 64]);
        let mut r = Reassembly::new(&limits);
        let p = peer();
        let errs = msgs
            .into_iter()
            .filter_map(|m| r.insert(p, m).err())
            .count();
        assert!(errs >= 1);
    }
}

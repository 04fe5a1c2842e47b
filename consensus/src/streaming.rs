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

/// The messages of one proposal stream: one `Whole` part when the hashes fit in one part
/// (every block within the default limits), else `Init`, `Hashes` chunks, `Fin`, end marker.
pub fn split(
    height: u64,
    round: u32,
    pol_round: i64,
    proposer: Address,
    header: BlockHeader,
    hashes: &[Hash],
    signature: [u8; 64],
) -> Vec<StreamMessage<ProposalPart>> {
    let id = stream_id(height, round);
    if hashes.len() <= PART_HASHES {
        let whole = ProposalPart::Whole {
            round,
            pol_round,
            proposer,
            header,
            hashes: hashes.to_vec(),
            signature,
        };
        return vec![StreamMessage::new(id, 0, StreamContent::Data(whole))];
    }
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
        ProposalPart::Whole { hashes, .. } => hashes.len() * 32 + 256,
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
        let key = (peer, msg.stream_id);
        let part = match msg.content {
            StreamContent::Data(whole @ ProposalPart::Whole { .. }) => {
                // A whole stream in one message: nothing to hold. A stream already begun
                // under this id, or a `Whole` part anywhere but first, is malformed.
                let begun = self.streams.remove(&key).is_some();
                if begun || msg.sequence != 0 {
                    return Err(StreamError::Malformed("Whole part in a multi-part stream"));
                }
                if part_len(&whole) > self.max_stream_bytes {
                    return Err(StreamError::TooLarge(self.max_stream_bytes));
                }
                return assemble(std::iter::once(whole));
            }
            StreamContent::Data(part) => Some(part),
            StreamContent::Fin => None,
        };
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
        match part {
            None => s.end = Some(msg.sequence),
            Some(part) => {
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
    mut parts: impl Iterator<Item = ProposalPart>,
) -> Result<Option<CompleteStream>, StreamError> {
    // A `Whole` part carries the entire stream; nothing may follow it.
    let (round, pol_round, proposer, header, mut hashes, mut signature) = match parts.next() {
        Some(ProposalPart::Init {
            round,
            pol_round,
            proposer,
            header,
        }) => (round, pol_round, proposer, header, Vec::new(), None),
        Some(ProposalPart::Whole {
            round,
            pol_round,
            proposer,
            header,
            hashes,
            signature,
        }) => (round, pol_round, proposer, header, hashes, Some(signature)),
        _ => return Err(StreamError::Malformed("stream does not start with Init")),
    };
    for p in parts {
        match p {
            ProposalPart::Hashes(h) if signature.is_none() => hashes.extend(h),
            ProposalPart::Fin { signature: s } if signature.is_none() => signature = Some(s),
            _ => return Err(StreamError::Malformed("parts out of order")),
        }
    }
    let signature = signature.ok_or(StreamError::Malformed("stream has no Fin part"))?;
    // A proof-of-lock round is nil (-1) or an earlier round; anything else is not a proposal,
    // and must not reach Malachite's `Round::from(i64)`, which asserts on values past u32.
    if pol_round != -1 && !(0..i64::from(round)).contains(&pol_round) {
        return Err(StreamError::Malformed(
            "pol_round is neither -1 nor below the round",
        ));
    }
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

    /// The messages of a round-0 proposal at `height` naming `n` bundles.
    fn stream(height: u64, n: usize) -> Vec<StreamMessage<ProposalPart>> {
        split(
            height,
            0,
            -1,
            Address::default(),
            header(height),
            &hashes(n),
            [0; 64],
        )
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
    fn a_block_whose_hashes_fit_in_one_part_travels_as_one_message() {
        let bundles = hashes(300);
        let msgs = split(7, 2, 1, Address::default(), header(7), &bundles, [4; 64]);
        assert_eq!(msgs.len(), 1, "one Whole part, no end marker");
        let mut r = Reassembly::new(&lockstep_bundles::Limits::default());
        let done = r
            .insert(peer(), msgs[0].clone())
            .unwrap()
            .expect("complete at once");
        assert_eq!((done.round, done.pol_round), (2, 1));
        assert_eq!(done.header, header(7));
        assert_eq!(done.hashes, bundles);
        assert_eq!(done.signature, [4; 64]);
        assert!(r.streams.is_empty(), "nothing held");
        // The largest one-part block is still one message; one hash more is a stream.
        let at_bound = stream(7, PART_HASHES);
        assert_eq!(at_bound.len(), 1);
        let above = stream(7, PART_HASHES + 1);
        assert_eq!(above.len(), 5, "Init, two Hashes parts, Fin, end");
    }

    #[test]
    fn a_whole_part_that_is_not_the_entire_stream_is_malformed() {
        let p = peer();
        let mut r = Reassembly::new(&lockstep_bundles::Limits::default());
        let long = stream(5, PART_HASHES + 1);
        assert!(r.insert(p, long[0].clone()).unwrap().is_none());
        let whole = stream(5, 3).remove(0);
        assert!(matches!(
            r.insert(p, whole.clone()),
            Err(StreamError::Malformed(_))
        ));
        assert!(r.streams.is_empty(), "the begun stream is dropped too");
        let late = StreamMessage::new(whole.stream_id.clone(), 1, whole.content.clone());
        assert!(matches!(r.insert(p, late), Err(StreamError::Malformed(_))));
        // The same part on its own, first, is a complete stream.
        assert!(r.insert(p, whole).unwrap().is_some());
    }

    #[test]
    fn a_proof_of_lock_round_that_is_not_nil_or_earlier_is_malformed() {
        let p = peer();
        for (round, pol_round, ok) in [
            (0, -1, true),
            (3, 2, true),
            (3, 0, true),
            (3, 3, false),
            (3, 4, false),
            (3, -2, false),
            (0, i64::MAX, false),
            (u32::MAX, i64::from(u32::MAX) + 1, false),
        ] {
            let bundles = hashes(2);
            let one = split(
                5,
                round,
                pol_round,
                Address::default(),
                header(5),
                &bundles,
                [0; 64],
            );
            let long = split(
                5,
                round,
                pol_round,
                Address::default(),
                header(5),
                &hashes(PART_HASHES + 1),
                [0; 64],
            );
            for msgs in [one, long] {
                let mut r = Reassembly::new(&lockstep_bundles::Limits::default());
                let results: Vec<_> = msgs.into_iter().map(|m| r.insert(p, m)).collect();
                let last = results.last().expect("messages");
                if ok {
                    assert!(
                        matches!(last, Ok(Some(done)) if done.pol_round == pol_round),
                        "round {round} pol_round {pol_round}"
                    );
                } else {
                    assert!(
                        matches!(last, Err(StreamError::Malformed(_))),
                        "round {round} pol_round {pol_round}"
                    );
                    assert!(r.streams.is_empty(), "nothing held");
                }
            }
        }
    }

    #[test]
    fn an_oversized_whole_part_is_refused() {
        let limits = lockstep_bundles::Limits {
            max_block_bytes: 100_000,
            ..Default::default()
        };
        let msgs = stream(5, PART_HASHES);
        assert_eq!(msgs.len(), 1);
        let mut r = Reassembly::new(&limits);
        assert!(matches!(
            r.insert(peer(), msgs[0].clone()),
            Err(StreamError::TooLarge(_))
        ));
    }

    #[test]
    fn oversized_stream_is_dropped() {
        let limits = lockstep_bundles::Limits {
            max_block_bytes: 100_000,
            ..Default::default()
        };
        let bundles = hashes(2 * PART_HASHES);
        let msgs = split(5, 0, -1, Address::default(), header(5), &bundles, [0; 64]);
        assert_eq!(msgs.len(), 5, "Init, two Hashes parts, Fin, end");
        let mut r = Reassembly::new(&limits);
        let max = r.max_stream_bytes;
        let p = peer();
        let outcomes: Vec<&str> = msgs
            .into_iter()
            .map(|m| match r.insert(p, m) {
                Ok(None) => "pending",
                Ok(Some(_)) => "complete",
                Err(StreamError::TooLarge(n)) if n == max => "too large",
                Err(_) => "other error",
            })
            .collect();
        // Each part of hashes alone is above the bound: each is refused on arrival and
        // nothing of it is kept; the stream never completes.
        assert_eq!(
            outcomes,
            ["pending", "too large", "too large", "pending", "pending"]
        );
        assert!(r.streams.values().all(|s| s.bytes <= max));
        assert!(r.streams.values().all(|s| !s
            .parts
            .values()
            .any(|p| matches!(p, ProposalPart::Hashes(_)))));
    }
}

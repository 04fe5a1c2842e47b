//! Splitting a block proposal into parts and putting streams back together, with bounds; and
//! the bounded buffer of complete streams for heights ahead of the current one.

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
/// Most streams being reassembled at once from one publishing peer. A proposer publishes one
/// stream per round it leads (and one more when it restreams), and streams of more than one
/// message are only needed for blocks naming more than [`PART_HASHES`] bundles, so a few are
/// plenty; beyond them, that peer's lowest-height stream makes room, and a peer cannot push
/// out other peers' streams.
pub const MAX_STREAMS_PER_PEER: usize = 4;
/// Most complete streams held for heights above the current one (see [`FutureStreams`]).
pub const MAX_FUTURE_STREAMS: usize = 16;
/// Most of those from one proposer.
pub const MAX_FUTURE_STREAMS_PER_PROPOSER: usize = 4;

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

    /// Makes room for a new stream from `peer`: at [`MAX_STREAMS_PER_PEER`] its own
    /// lowest-height stream goes; at [`MAX_STREAMS`] the lowest-height stream of the peer with
    /// the most goes. (A stream whose `Init` part has not arrived counts as height 0.)
    fn make_room(&mut self, peer: &PeerId) {
        let lowest_of = |streams: &HashMap<(PeerId, StreamId), Partial>, p: &PeerId| {
            streams
                .iter()
                .filter(|((from, _), _)| from == p)
                .min_by_key(|(_, s)| s.height.unwrap_or(0))
                .map(|(k, _)| k.clone())
        };
        let mine = self.streams.keys().filter(|(from, _)| from == peer).count();
        if mine >= MAX_STREAMS_PER_PEER {
            if let Some(victim) = lowest_of(&self.streams, peer) {
                self.streams.remove(&victim);
            }
        }
        if self.streams.len() >= MAX_STREAMS {
            let mut counts: HashMap<PeerId, usize> = HashMap::new();
            for (from, _) in self.streams.keys() {
                *counts.entry(*from).or_default() += 1;
            }
            if let Some((busiest, _)) = counts.into_iter().max_by_key(|(_, n)| *n) {
                if let Some(victim) = lowest_of(&self.streams, &busiest) {
                    self.streams.remove(&victim);
                }
            }
        }
    }

    /// How many streams are under reassembly.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether no stream is under reassembly.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
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
        if !self.streams.contains_key(&key) {
            self.make_room(&peer);
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

/// What became of a stream offered to [`FutureStreams::insert`].
#[derive(Debug)]
pub enum Buffered {
    /// Held until its height starts.
    Held,
    /// The same proposal (the same block) is held already.
    Duplicate,
    /// Another proposal for the same height and round (so by the same proposer) is held:
    /// evidence. This one is not held.
    Conflict(Box<CompleteStream>),
    /// No room: every stream held is for an earlier height and round.
    Dropped,
}

/// Complete proposal streams for heights above the current one, validated when their height
/// starts. The caller holds only streams signed by their round's proposer (a validator of
/// the set), so junk from a peer cannot take room here. Bounded: one stream per height and
/// round, [`MAX_FUTURE_STREAMS_PER_PROPOSER`] per proposer and [`MAX_FUTURE_STREAMS`] in
/// all; when full, the stream for the furthest height and round makes room for a nearer one.
/// So the next height's round-0 proposal, the one that matters most, always has a place: no
/// other stream comes before it.
#[derive(Default)]
pub struct FutureStreams {
    held: BTreeMap<(u64, u32), CompleteStream>,
}

impl FutureStreams {
    /// Holds `s` if there is room for it (see the type's doc).
    pub fn insert(&mut self, s: CompleteStream) -> Buffered {
        let key = (s.header.height, s.round);
        if let Some(held) = self.held.get(&key) {
            return if held.header.hash() == s.header.hash() {
                Buffered::Duplicate
            } else {
                Buffered::Conflict(Box::new(held.clone()))
            };
        }
        let furthest_of_proposer = self
            .held
            .iter()
            .filter(|(_, h)| h.proposer == s.proposer)
            .map(|(k, _)| *k)
            .collect::<Vec<_>>();
        if furthest_of_proposer.len() >= MAX_FUTURE_STREAMS_PER_PROPOSER
            && !self.evict_if_after(furthest_of_proposer.last().copied(), key)
        {
            return Buffered::Dropped;
        }
        if self.held.len() >= MAX_FUTURE_STREAMS {
            let furthest = self.held.keys().next_back().copied();
            if !self.evict_if_after(furthest, key) {
                return Buffered::Dropped;
            }
        }
        self.held.insert(key, s);
        Buffered::Held
    }

    /// Removes the stream at `victim` if it comes after `key`; returns whether it did.
    fn evict_if_after(&mut self, victim: Option<(u64, u32)>, key: (u64, u32)) -> bool {
        match victim {
            Some(v) if v > key => self.held.remove(&v).is_some(),
            _ => false,
        }
    }

    /// The streams held for `height`, in round order; those for lower heights are dropped.
    pub fn take(&mut self, height: u64) -> Vec<CompleteStream> {
        let mut from = self.held.split_off(&(height, 0));
        let later = match height.checked_add(1) {
            Some(next) => from.split_off(&(next, 0)),
            None => BTreeMap::new(),
        };
        self.held = later;
        from.into_values().collect()
    }

    /// How many streams are held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether no stream is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
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
            validators_hash: Hash::ZERO,
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

    /// A complete stream for `(height, round)` by `proposer`, naming `n` bundles.
    fn complete(height: u64, round: u32, proposer: u8, n: usize) -> CompleteStream {
        let mut h = header(height);
        h.proposer = Address([proposer; 20]);
        h.bundle_count = n as u32;
        CompleteStream {
            round,
            pol_round: -1,
            proposer: Address([proposer; 20]),
            header: h,
            hashes: hashes(n),
            signature: [0; 64],
        }
    }

    #[test]
    fn one_stream_per_height_and_round_is_held_and_another_is_a_conflict() {
        let mut f = FutureStreams::default();
        assert!(matches!(f.insert(complete(5, 0, 1, 1)), Buffered::Held));
        assert!(matches!(
            f.insert(complete(5, 0, 1, 1)),
            Buffered::Duplicate
        ));
        let Buffered::Conflict(held) = f.insert(complete(5, 0, 1, 2)) else {
            panic!("a different block for the same height and round is a conflict");
        };
        assert_eq!(held.hashes.len(), 1, "the one held first is kept");
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn a_proposer_holds_at_most_its_share_and_its_nearest_streams_win() {
        let mut f = FutureStreams::default();
        for round in 1..=MAX_FUTURE_STREAMS_PER_PROPOSER as u32 {
            assert!(matches!(f.insert(complete(9, round, 1, 0)), Buffered::Held));
        }
        assert_eq!(f.len(), MAX_FUTURE_STREAMS_PER_PROPOSER, "at the limit");
        // One more, further on: dropped.
        let further = MAX_FUTURE_STREAMS_PER_PROPOSER as u32 + 1;
        assert!(matches!(
            f.insert(complete(9, further, 1, 0)),
            Buffered::Dropped
        ));
        // One more, nearer: its furthest makes room.
        assert!(matches!(f.insert(complete(9, 0, 1, 0)), Buffered::Held));
        assert_eq!(f.len(), MAX_FUTURE_STREAMS_PER_PROPOSER);
        let rounds: Vec<u32> = f.take(9).iter().map(|s| s.round).collect();
        assert_eq!(
            rounds,
            (0..MAX_FUTURE_STREAMS_PER_PROPOSER as u32).collect::<Vec<_>>()
        );
        // Other proposers were never pushed out by it: they have room of their own.
    }

    #[test]
    fn a_full_buffer_keeps_the_nearest_heights_and_rounds() {
        let mut f = FutureStreams::default();
        // Junk from many proposers for far heights fills it to the limit.
        for i in 0..MAX_FUTURE_STREAMS {
            let s = complete(100 + i as u64, 0, i as u8, 0);
            assert!(matches!(f.insert(s), Buffered::Held));
        }
        assert_eq!(f.len(), MAX_FUTURE_STREAMS, "at the limit");
        assert!(matches!(
            f.insert(complete(200, 0, 99, 0)),
            Buffered::Dropped
        ));
        // The next height's proposal still gets in; the furthest one goes.
        assert!(matches!(f.insert(complete(6, 0, 42, 0)), Buffered::Held));
        assert_eq!(f.len(), MAX_FUTURE_STREAMS);
        let last = 100 + MAX_FUTURE_STREAMS as u64 - 1;
        assert!(f.take(last).is_empty(), "the furthest was evicted");
    }

    #[test]
    fn taking_a_height_returns_its_streams_and_forgets_lower_ones() {
        let mut f = FutureStreams::default();
        for (h, r) in [(5, 0), (6, 1), (6, 0), (7, 0)] {
            f.insert(complete(h, r, h as u8, 0));
        }
        let got: Vec<(u64, u32)> = f
            .take(6)
            .iter()
            .map(|s| (s.header.height, s.round))
            .collect();
        assert_eq!(got, vec![(6, 0), (6, 1)]);
        assert_eq!(f.len(), 1, "height 5 is forgotten, 7 is kept");
        assert_eq!(f.take(7).len(), 1);
        assert!(f.is_empty());
    }

    #[test]
    fn one_peer_cannot_hold_more_than_its_share_of_partial_streams() {
        let mut r = Reassembly::new(&lockstep_bundles::Limits::default());
        let (junk, honest) = (peer(), peer());
        // The honest proposer's stream for height 5 is begun.
        let real = stream(5, PART_HASHES + 1);
        assert!(r.insert(honest, real[0].clone()).unwrap().is_none());
        // A peer begins streams for many heights: it keeps at most its share.
        for h in 10..10 + 2 * MAX_STREAMS_PER_PEER as u64 {
            let s = stream(h, PART_HASHES + 1);
            assert!(r.insert(junk, s[0].clone()).unwrap().is_none());
        }
        let held_by = |p: PeerId| r.streams.keys().filter(|(from, _)| *from == p).count();
        assert_eq!(held_by(junk), MAX_STREAMS_PER_PEER, "at the limit");
        assert_eq!(held_by(honest), 1);
        // The honest stream still completes.
        let mut done = None;
        for m in &real[1..] {
            done = r.insert(honest, m.clone()).unwrap();
        }
        assert!(done.is_some(), "the honest stream completes");
    }

    #[test]
    fn at_the_total_limit_the_busiest_peer_makes_room() {
        let mut r = Reassembly::new(&lockstep_bundles::Limits::default());
        let peers: Vec<PeerId> = (0..MAX_STREAMS / MAX_STREAMS_PER_PEER)
            .map(|_| peer())
            .collect();
        for (i, p) in peers.iter().enumerate() {
            for k in 0..MAX_STREAMS_PER_PEER {
                let h = 10 + (i * MAX_STREAMS_PER_PEER + k) as u64;
                let s = stream(h, PART_HASHES + 1);
                assert!(r.insert(*p, s[0].clone()).unwrap().is_none());
            }
        }
        assert_eq!(r.streams.len(), MAX_STREAMS, "at the limit");
        let newcomer = peer();
        let s = stream(5, PART_HASHES + 1);
        assert!(r.insert(newcomer, s[0].clone()).unwrap().is_none());
        assert_eq!(r.streams.len(), MAX_STREAMS);
        assert!(r.streams.keys().any(|(from, _)| *from == newcomer));
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

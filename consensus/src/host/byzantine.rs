//! Byzantine proposers, for the `lockstep-byzantine` test build only (the `byzantine`
//! feature): a proposer that censors chosen signers, proposes invalid blocks, or floods its
//! peers with proposal streams. Honest validators must refuse every invalid block (each kind
//! breaks a rule of [`validate`](super::validate)) and spend bounded work on the flood
//! (ADR-023); the fault runner's `byz-invalid` and `byz-flood` scenarios show it on a real
//! network.

use super::propose::Contents;
use super::{now_ms, Host};
use crate::context::{BlockId, Height, ProposalPart, ValidatorAddress};
use bytes::Bytes;
use lockstep_bundles::{Block, BlockHeader, BundleBody, Hash, Leg, Limits, SignedBundle};
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::core::{Context as _, Round};
use malachitebft_signing_ed25519::PrivateKey;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tracing::warn;

/// How a Byzantine proposer makes its block invalid. With several configured, its proposals
/// take them in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// Names a bundle whose signature does not verify (served to whoever fetches it).
    BadSignature,
    /// Names a bundle whose `valid_until` is below the block's height.
    Expired,
    /// Names a bundle an earlier block included.
    Included,
    /// Names one bundle twice.
    Duplicated,
    /// Names bundles whose sizes add up to more than `max_block_bytes`.
    Oversized,
    /// Signs its proposal with a key that is not its own.
    ForgedPartSignature,
    /// Stamps the block an hour ahead of its clock.
    FutureTimestamp,
}

impl Corruption {
    pub const ALL: [Corruption; 7] = [
        Corruption::BadSignature,
        Corruption::Expired,
        Corruption::Included,
        Corruption::Duplicated,
        Corruption::Oversized,
        Corruption::ForgedPartSignature,
        Corruption::FutureTimestamp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Corruption::BadSignature => "bad_signature",
            Corruption::Expired => "expired",
            Corruption::Included => "included",
            Corruption::Duplicated => "duplicated",
            Corruption::Oversized => "oversized",
            Corruption::ForgedPartSignature => "forged_part_signature",
            Corruption::FutureTimestamp => "future_timestamp",
        }
    }

    pub fn parse(s: &str) -> Result<Corruption, String> {
        Corruption::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Corruption::ALL.iter().map(|c| c.name()).collect();
                format!(
                    "unknown invalid proposal {s:?}: one of {}",
                    names.join(", ")
                )
            })
    }
}

/// How many heights of made-up bundles a Byzantine proposer keeps serving.
const FORGED_HEIGHTS: usize = 16;

/// Bundles a Byzantine proposer made up for its invalid blocks. Its fetch server hands them
/// out like pending bundles, so honest validators get them and judge the block by them
/// (rather than finding them missing). Kept for the last [`FORGED_HEIGHTS`] heights.
#[derive(Clone, Default)]
pub struct Forged(Arc<Mutex<ByHeight>>);

/// Made-up bundles (hash, encoding) by the height of the block that names them.
type ByHeight = BTreeMap<u64, Vec<(Hash, Bytes)>>;

impl Forged {
    /// The made-up bundle with hash `id`, if this proposer made one.
    pub fn get(&self, id: &[u8; 32]) -> Option<Bytes> {
        let m = self.0.lock();
        m.values()
            .flatten()
            .find(|(h, _)| h.0 == *id)
            .map(|(_, b)| b.clone())
    }

    /// Every made-up bundle kept (tests hand them to the validators' fetchers).
    pub fn all(&self) -> Vec<Bytes> {
        let m = self.0.lock();
        m.values().flatten().map(|(_, b)| b.clone()).collect()
    }

    fn put(&self, height: u64, items: &[(Hash, Bytes)]) {
        let mut m = self.0.lock();
        m.entry(height).or_default().extend_from_slice(items);
        while m.len() > FORGED_HEIGHTS {
            m.pop_first();
        }
    }
}

/// What a Byzantine proposer does (nothing, by default).
#[derive(Clone, Default)]
pub struct ByzantineProposer {
    /// Leave out every bundle of these signers.
    pub censor: Vec<[u8; 32]>,
    /// Propose only invalid blocks, of these kinds in turn.
    pub corrupt: Vec<Corruption>,
    /// At the start of every round, publish this many junk proposal streams (see
    /// [`Host::flood`]).
    pub flood: u32,
    /// The bundles made up for invalid blocks, which the node's fetch server serves.
    pub forged: Forged,
    /// How many invalid blocks were proposed (picks the next kind).
    pub proposed: Arc<AtomicUsize>,
}

impl Contents {
    fn push(&mut self, b: SignedBundle) -> (Hash, Bytes) {
        let hash = b.hash();
        let encoded = Bytes::from(b.encode());
        self.list.push(b);
        self.hashes.push(hash);
        self.encodings.push(encoded.clone());
        (hash, encoded)
    }
}

/// A bundle nobody submitted, signed by a key made up from `(height, i)`, with `data` bytes
/// in its one leg.
fn made_up(chain_id: u64, height: u64, i: u64, valid_until: u64, data: usize) -> SignedBundle {
    let seed = Hash::tagged(
        b"lockstep/byzantine/made-up",
        &[&height.to_le_bytes(), &i.to_le_bytes()],
    );
    let key = PrivateKey::from(seed.0);
    let body = BundleBody {
        chain_id,
        signer: *key.public_key().as_bytes(),
        nonce: i,
        valid_until,
        legs: vec![Leg {
            rollup_id: 1,
            data: vec![0xb5; data].into(),
        }],
    };
    let signature = key.sign(body.hash().as_bytes()).to_bytes();
    SignedBundle { body, signature }
}

/// The encoded size of a made-up bundle with no leg data.
fn made_up_overhead(chain_id: u64) -> usize {
    made_up(chain_id, 0, 0, 0, 0).encode().len()
}

impl Host {
    /// The kind of invalid block to propose next, if this proposer proposes invalid ones.
    pub(super) fn next_corruption(&self) -> Option<Corruption> {
        let b = &self.cfg.byzantine;
        if b.corrupt.is_empty() {
            return None;
        }
        let n = b.proposed.fetch_add(1, Ordering::Relaxed);
        Some(b.corrupt[n % b.corrupt.len()])
    }

    /// Makes `c` an invalid block of kind `kind` at `height` (the part signature is forged by
    /// the caller, [`Host::forge_part_signature`]). The made-up bundles it names are kept
    /// for the fetch server.
    pub(super) fn corrupt(&self, kind: Corruption, height: u64, c: &mut Contents) {
        let chain = self.cfg.chain_id;
        let limits: Limits = self.cfg.limits;
        let valid_until = height + limits.max_ttl.min(10);
        let mut made: Vec<(Hash, Bytes)> = Vec::new();
        match kind {
            Corruption::BadSignature => {
                let mut b = made_up(chain, height, 0, valid_until, 16);
                b.signature[0] ^= 0x01;
                made.push(c.push(b));
            }
            Corruption::Expired => {
                made.push(c.push(made_up(chain, height, 0, height.saturating_sub(1), 16)));
            }
            Corruption::Included => match self.an_included_bundle() {
                Some(b) => {
                    c.push(b);
                }
                None => {
                    // Nothing included yet: name one made-up bundle twice instead.
                    let b = made_up(chain, height, 0, valid_until, 16);
                    made.push(c.push(b.clone()));
                    c.push(b);
                }
            },
            Corruption::Duplicated => {
                if let Some(first) = c.list.first().cloned() {
                    c.push(first);
                } else {
                    let b = made_up(chain, height, 0, valid_until, 16);
                    made.push(c.push(b.clone()));
                    c.push(b);
                }
            }
            Corruption::Oversized => {
                // Just over the limit, made of bundles of the largest size (within what a
                // fetch answer may carry, so validators get them all and judge the size).
                let room = (limits.max_block_bytes as usize)
                    .saturating_sub(c.encodings.iter().map(Bytes::len).sum());
                let full = limits.max_bundle_bytes as usize;
                let overhead = made_up_overhead(chain);
                let mut left = room + 1;
                let mut i = 0u64;
                while left > 0 {
                    let size = left.max(overhead + 1).min(full);
                    let b = made_up(chain, height, i, valid_until, size - overhead);
                    left = left.saturating_sub(size);
                    made.push(c.push(b));
                    i += 1;
                }
            }
            Corruption::ForgedPartSignature => {}
            Corruption::FutureTimestamp => {
                c.timestamp = now_ms() + 3_600_000;
            }
        }
        self.cfg.byzantine.forged.put(height, &made);
        warn!(
            height,
            kind = kind.name(),
            bundles = c.hashes.len(),
            "BYZANTINE: proposing an invalid block"
        );
    }

    /// A bundle of the latest block that has any (of the last 64 heights).
    fn an_included_bundle(&self) -> Option<SignedBundle> {
        let from = self.tip.height.saturating_sub(64);
        let recent = self.store.included_since(from).ok()?;
        let (height, _) = recent.into_iter().rev().find(|(_, h)| !h.is_empty())?;
        let bytes = self.store.block_bytes(height).ok()??;
        Block::decode(&bytes).ok()?.bundles.into_iter().next()
    }

    /// A signature over the proposal by a key that is not this validator's.
    pub(super) fn forge_part_signature(&self, height: u64, round: u32, id: &BlockId) -> [u8; 64] {
        let key = PrivateKey::from(Hash::tagged(b"lockstep/byzantine/part", &[]).0);
        key.sign(&crate::signing::part_bytes(
            self.cfg.chain_id,
            height,
            round,
            &id.0,
            &ValidatorAddress(self.cfg.address),
        ))
        .to_bytes()
    }

    /// Publishes junk proposal streams, `flood` per round: for heights `height..height + 3`
    /// and the next few rounds, a whole proposal of a made-up block signed with this
    /// validator's key (for its own rounds: a second proposal, so evidence; for others'
    /// rounds: not the proposer's, so one signature check each), and streams begun and never
    /// finished. Honest validators must hold each to bounded work and room (ADR-023).
    pub(super) fn flood(&self, height: u64, round: u32) -> Vec<StreamMessage<ProposalPart>> {
        let n = self.cfg.byzantine.flood;
        let me = ValidatorAddress(self.cfg.address);
        let mut out = Vec::with_capacity(n as usize);
        for i in 0..n {
            let h = height + u64::from(i % 3);
            let r = round + (i / 3) % 4;
            let set = self.cfg.schedule.at(h);
            let mine = self
                .ctx
                .select_proposer(&set.engine, Height(h), Round::new(r))
                .address
                == me;
            let header = BlockHeader {
                chain_id: self.cfg.chain_id,
                height: h,
                timestamp: now_ms(),
                proposer: self.cfg.address,
                parent_hash: Hash::tagged(b"lockstep/byzantine/flood", &[&i.to_le_bytes()]),
                bundle_count: 0,
                bundles_root: lockstep_bundles::block::bundles_root(&[]),
                rollups_root: Hash::tagged(
                    b"lockstep/byzantine/flood",
                    &[&round.to_le_bytes(), &i.to_le_bytes()],
                ),
                validators_hash: set.hash,
            };
            let id = BlockId(header.hash());
            let signature = self.signer.sign_part_unguarded(h, r, &id, &me);
            // A stream id of its own per message, so none is taken for a part of another.
            let mut sid = b"flood".to_vec();
            sid.extend_from_slice(&h.to_be_bytes());
            sid.extend_from_slice(&r.to_be_bytes());
            sid.extend_from_slice(&i.to_be_bytes());
            let sid = StreamId::new(Bytes::from(sid));
            let part = if i % 4 == 3 && !mine {
                // Begun, never finished.
                ProposalPart::Init {
                    round: r,
                    pol_round: -1,
                    proposer: self.cfg.address,
                    header,
                }
            } else {
                ProposalPart::Whole {
                    round: r,
                    pol_round: -1,
                    proposer: self.cfg.address,
                    header,
                    hashes: Vec::new(),
                    signature,
                }
            };
            out.push(StreamMessage::new(sid, 0, StreamContent::Data(part)));
        }
        out
    }
}

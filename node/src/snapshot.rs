//! Joining from a snapshot (ADR-027): a node whose store is empty (new, or wiped) asks its
//! peers where their history starts and which validator sets the chain has had, and starts
//! consensus there instead of at height 1 — which peers that prune (`history.keep_heights`)
//! can no longer serve.
//!
//! - **The offer** (served over the gossip fetch protocol under [`offer_id`]): the peer's
//!   earliest and latest height and every validator set after genesis, each with the proof of
//!   the update that made it (rollup 0's batch at the height that included it, kept when that
//!   block is pruned).
//! - **Checked from genesis**: each update's batch is verified with the set before it (the
//!   certificate, the completeness proof, the co-signatures), version after version, exactly
//!   as a rollup client learns them ([`BatchVerifier::learn`]). A peer cannot forge a set; it
//!   can only lie about where its history starts, which makes the node start where no peer can
//!   serve it (it waits, and says so) rather than follow a wrong chain: every block it then
//!   takes comes with a certificate checked against the height's set.
//! - **The certified header and the replay window** come by value sync: the node starts at
//!   `earliest + margin` and syncs every block from there with its certificate. It judges no
//!   bundle (admission refuses, a validator does not vote) until it holds `max_ttl` heights,
//!   the window in which an included bundle could be submitted again.

use borsh::{BorshDeserialize, BorshSerialize};
use bytes::Bytes;
use lockstep_bundles::{Hash, ValidatorSet};
use lockstep_client::verify::{to_json, BatchVerifier};
use lockstep_consensus::validators::{Schedule, SetRecord};
use lockstep_p2p::BundleGossip;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Heights after a peer's earliest at which a joining node starts, so the peer has not pruned
/// them by the time value sync asks (it prunes one height per height decided).
pub const START_MARGIN: u64 = 16;

/// How often the peers are asked again while none has answered.
const ASK_EVERY: Duration = Duration::from_millis(250);

/// The fetch id under which a node serves its offer.
pub fn offer_id() -> [u8; 32] {
    Hash::tagged(b"lockstep:snapshot-offer:v1", &[]).0
}

/// What a node tells a joining one.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Offer {
    /// The lowest height whose block it keeps (0: none yet).
    pub earliest: u64,
    /// Its latest decided height.
    pub latest: u64,
    /// Every validator set after genesis, oldest first, each with its update's proof.
    pub sets: Vec<SetRecord>,
}

impl Offer {
    pub fn of(earliest: u64, latest: u64, schedule: &Schedule) -> Offer {
        Offer {
            earliest,
            latest,
            sets: schedule
                .all()
                .iter()
                .filter(|s| s.version > 0)
                .map(|s| s.record())
                .collect(),
        }
    }

    pub fn encode(&self) -> Bytes {
        Bytes::from(borsh::to_vec(self).unwrap_or_default())
    }

    pub fn decode(bytes: &[u8]) -> Result<Offer, String> {
        borsh::from_slice(bytes).map_err(|e| format!("undecodable: {e}"))
    }

    /// Decodes an offer and checks every set in it from `genesis` (see the module docs).
    pub fn check(bytes: &[u8], chain_id: u64, genesis: &ValidatorSet) -> Result<Offer, String> {
        let offer = Offer::decode(bytes)?;
        let mut verifier = BatchVerifier::new(chain_id, genesis.clone());
        for r in &offer.sets {
            let batch = r
                .update
                .as_ref()
                .ok_or_else(|| format!("set version {} comes without its update", r.version))?;
            let learned = verifier
                .learn(&to_json(batch))
                .map_err(|e| format!("set version {}: {e}", r.version))?
                .ok_or_else(|| format!("set version {}: its batch carries no update", r.version))?;
            if learned.version != r.version
                || learned.from_height != r.from_height
                || learned.included_at != r.included_at
                || learned.set.validators() != r.validators.as_slice()
            {
                return Err(format!(
                    "set version {} is not the one its update makes",
                    r.version
                ));
            }
        }
        Ok(offer)
    }

    /// Where a node with an empty store starts from this offer: `None` for height 1 (the peer
    /// keeps its whole history), else the height and the sets.
    pub fn start(&self) -> Option<u64> {
        if self.earliest <= 1 {
            return None;
        }
        Some((self.earliest + START_MARGIN).min(self.latest.max(self.earliest)))
    }
}

/// Asks peers for an offer until one answers with a valid one, or `wait` passes (then the
/// node starts at height 1, as on a new network whose peers are not up yet).
pub async fn ask(
    gossip: &Arc<dyn BundleGossip>,
    chain_id: u64,
    genesis: &ValidatorSet,
    wait: Duration,
) -> Option<Offer> {
    let genesis_for_check = genesis.clone();
    let check: lockstep_p2p::FetchCheck = Arc::new(move |id, item| {
        *id == offer_id() && Offer::check(item, chain_id, &genesis_for_check).is_ok()
    });
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let answer = tokio::time::timeout(
            wait.max(ASK_EVERY),
            gossip.fetch(vec![offer_id()], None, check.clone()),
        )
        .await
        .ok()
        .and_then(|a| a.into_iter().next().flatten());
        // The fetch hands over only an answer that passed `check`: it is not checked again.
        if let Some(bytes) = answer {
            match Offer::decode(&bytes) {
                Ok(offer) => return Some(offer),
                Err(e) => warn!("a peer's snapshot offer was refused: {e}"),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            info!("no peer answered with a snapshot offer; starting at height 1");
            return None;
        }
        tokio::time::sleep(ASK_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use lockstep_bundles::Validator;

    fn genesis() -> ValidatorSet {
        ValidatorSet::new(
            (1..=4u8)
                .map(|i| {
                    Validator::new(
                        SigningKey::from_bytes(&[i; 32]).verifying_key().to_bytes(),
                        1,
                    )
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn an_offer_round_trips_and_says_where_to_start() {
        let schedule = Schedule::genesis(7, &genesis()).unwrap();
        let whole = Offer::of(1, 500, &schedule);
        let back = Offer::check(&whole.encode(), 7, &genesis()).unwrap();
        assert_eq!(back, whole);
        assert_eq!(
            back.start(),
            None,
            "a peer with its whole history: start at 1"
        );
        assert_eq!(Offer::of(0, 0, &schedule).start(), None);
        assert_eq!(
            Offer::of(400, 500, &schedule).start(),
            Some(400 + START_MARGIN)
        );
        // Never past the peer's latest height.
        assert_eq!(Offer::of(400, 405, &schedule).start(), Some(405));
    }

    #[test]
    fn a_set_without_a_verifiable_update_is_refused() {
        let schedule = Schedule::genesis(7, &genesis()).unwrap();
        let mut offer = Offer::of(100, 200, &schedule);
        offer.sets.push(SetRecord {
            version: 1,
            from_height: 12,
            included_at: 10,
            validators: vec![Validator::new([9; 32], 1)],
            update: None,
        });
        let e = Offer::check(&offer.encode(), 7, &genesis()).unwrap_err();
        assert!(e.contains("without its update"), "{e}");
        assert!(Offer::check(&[1, 2, 3], 7, &genesis()).is_err());
    }
}

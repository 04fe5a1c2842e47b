//! Byzantine behaviours, for the `lockstep-byzantine` test build only (the `byzantine`
//! feature): what a validator that lies or withholds does, so the fault runner can show the
//! honest ones keep one order and keep deciding.
//!
//! The config's `[byzantine]` section chooses them:
//!
//! ```toml
//! [byzantine]
//! censor_signers = ["<hex public key>"]   # as proposer, leave out their bundles
//! withhold = true                         # gossip nothing, serve no fetch
//! invalid_proposals = ["all"]             # as proposer, only invalid blocks (or some kinds)
//! flood_proposals = 24                    # junk proposal streams at every round
//!
//! [byzantine.engine]                      # Malachite's network proxy (ByzantineConfig)
//! equivocate_votes = { mode = "always" }   # or equivocate_proposals, drop_votes, drop_proposals
//! ```
//!
//! Vote and proposal equivocation and silence are Malachite's own `ByzantineNetworkProxy`
//! (arc-malachitebft-engine-byzantine), which sits between the consensus actor and the network
//! and signs the conflicting messages with this validator's key. Censoring is the proposer
//! reaping without the chosen signers' bundles; withholding wraps the gossip handle and the
//! fetch store.

use bytes::Bytes;
use lockstep_bundles::Hash;
use lockstep_consensus::context::BlockId;
use lockstep_consensus::host::{ByzantineProposer, Corruption, Forged};
use lockstep_p2p::{BundleGossip, MessageId, PeerId, Verdict};
use malachitebft_engine_byzantine::{ByzantineConfig, Trigger};
use serde::Deserialize;
use std::sync::Arc;
use tracing::warn;

/// The `[byzantine]` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    /// Malachite's network proxy: when to equivocate or drop votes and proposals.
    #[serde(default)]
    pub engine: ByzantineConfig,
    /// As proposer, leave out every bundle whose signer is one of these (hex public keys).
    #[serde(default)]
    pub censor_signers: Vec<String>,
    /// Gossip none of the bundles submitted here and answer no peer's fetch, so a block this
    /// validator proposes names bundles no other validator can get.
    #[serde(default)]
    pub withhold: bool,
    /// As proposer, propose only invalid blocks, of these kinds in turn (`"all"`: every kind;
    /// see `lockstep_consensus::host::Corruption` for the names).
    #[serde(default)]
    pub invalid_proposals: Vec<String>,
    /// At the start of every round, publish this many junk proposal streams (whole proposals
    /// of made-up blocks for this and the next two heights, and streams never finished).
    #[serde(default)]
    pub flood_proposals: u32,
}

impl Behaviour {
    /// Reads and checks the section.
    pub fn parse(table: &toml::Table) -> eyre::Result<Self> {
        let b: Behaviour = table
            .clone()
            .try_into()
            .map_err(|e| eyre::eyre!("[byzantine]: {e}"))?;
        b.engine
            .validate()
            .map_err(|e| eyre::eyre!("[byzantine.engine]: {e}"))?;
        // The proxy carries out these two only with the application's help (in the prevote
        // and precommit paths), which this node does not give: refuse rather than pretend.
        for (name, t) in [
            ("ignore_locks", &b.engine.ignore_locks),
            ("force_precommit_nil", &b.engine.force_precommit_nil),
        ] {
            if *t != Trigger::Never {
                eyre::bail!("[byzantine.engine]: {name} is not supported by this node");
            }
        }
        b.censored()?;
        b.corruptions()?;
        Ok(b)
    }

    /// Whether anything misbehaves.
    pub fn is_active(&self) -> bool {
        self.engine.is_active()
            || !self.censor_signers.is_empty()
            || self.withhold
            || !self.invalid_proposals.is_empty()
            || self.flood_proposals > 0
    }

    /// The kinds of invalid block this proposer proposes, in turn.
    pub fn corruptions(&self) -> eyre::Result<Vec<Corruption>> {
        let mut kinds = Vec::new();
        for name in &self.invalid_proposals {
            if name == "all" {
                kinds.extend(Corruption::ALL);
            } else {
                kinds.push(
                    Corruption::parse(name)
                        .map_err(|e| eyre::eyre!("[byzantine] invalid_proposals: {e}"))?,
                );
            }
        }
        Ok(kinds)
    }

    /// What the consensus host does as proposer.
    pub fn proposer(&self) -> eyre::Result<ByzantineProposer> {
        Ok(ByzantineProposer {
            censor: self.censored()?,
            corrupt: self.corruptions()?,
            flood: self.flood_proposals,
            ..ByzantineProposer::default()
        })
    }

    /// The signers whose bundles this proposer leaves out.
    pub fn censored(&self) -> eyre::Result<Vec<[u8; 32]>> {
        self.censor_signers
            .iter()
            .map(|s| {
                let bytes = hex::decode(s.trim_start_matches("0x"))
                    .map_err(|e| eyre::eyre!("[byzantine] censor_signers: {s}: {e}"))?;
                <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                    eyre::eyre!("[byzantine] censor_signers: {s}: not a 32-byte public key")
                })
            })
            .collect()
    }
}

/// The value a conflicting proposal or vote names: the block id with its last byte flipped
/// (a block nobody has, which is what an equivocating validator's second message names as
/// far as the others can tell).
pub fn conflicting_value(v: &BlockId) -> BlockId {
    let mut h = v.0 .0;
    h[31] ^= 0xff;
    BlockId(Hash(h))
}

/// The value of the conflicting copy of a vote: another block for a vote for a block, some
/// block for a nil vote.
pub fn conflicting_vote_value(v: Option<&BlockId>) -> BlockId {
    match v {
        Some(v) => conflicting_value(v),
        None => BlockId(Hash::tagged(b"lockstep/byzantine/vote", &[])),
    }
}

/// Gossip that publishes nothing: bundles submitted to a withholding validator stay with it.
pub struct Withholding(pub Arc<dyn BundleGossip>);

#[async_trait::async_trait]
impl BundleGossip for Withholding {
    async fn publish(&self, items: Vec<Bytes>) {
        warn!(
            items = items.len(),
            "BYZANTINE: withholding bundles from gossip"
        );
    }

    async fn report(&self, id: MessageId, from: PeerId, verdict: Verdict) {
        self.0.report(id, from, verdict).await
    }

    fn peers(&self) -> usize {
        self.0.peers()
    }

    async fn fetch(
        &self,
        ids: Vec<[u8; 32]>,
        prefer: Option<PeerId>,
        check: lockstep_p2p::FetchCheck,
    ) -> Vec<Option<Bytes>> {
        self.0.fetch(ids, prefer, check).await
    }
}

/// A fetch store that has nothing for anyone.
pub struct ServesNothing;

impl lockstep_p2p::fetch::ItemStore for ServesNothing {
    fn lookup(&self, ids: &[[u8; 32]]) -> Vec<Option<Bytes>> {
        vec![None; ids.len()]
    }
}

/// A fetch store that also serves the bundles this proposer made up for its invalid blocks,
/// so honest validators get them and judge the block by them.
pub struct ServesForged {
    pub store: Arc<dyn lockstep_p2p::fetch::ItemStore>,
    pub forged: Forged,
}

impl lockstep_p2p::fetch::ItemStore for ServesForged {
    fn lookup(&self, ids: &[[u8; 32]]) -> Vec<Option<Bytes>> {
        let mut found = self.store.lookup(ids);
        for (slot, id) in found.iter_mut().zip(ids) {
            if slot.is_none() {
                *slot = self.forged.get(id);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> eyre::Result<Behaviour> {
        Behaviour::parse(&toml::from_str::<toml::Table>(s).unwrap())
    }

    #[test]
    fn a_section_parses_into_its_behaviours() {
        let key = "11".repeat(32);
        let b = parse(&format!(
            "censor_signers = [\"0x{key}\"]\nwithhold = true\n[engine]\nequivocate_votes = {{ mode = \"always\" }}\n"
        ))
        .unwrap();
        assert!(b.withhold && b.is_active());
        assert_eq!(b.censored().unwrap(), vec![[0x11; 32]]);
        assert_eq!(b.engine.equivocate_votes, Trigger::Always);
        assert!(!parse("").unwrap().is_active());
        let b = parse("invalid_proposals = [\"all\"]\nflood_proposals = 8\n").unwrap();
        assert!(b.is_active());
        let p = b.proposer().unwrap();
        assert_eq!((p.corrupt.len(), p.flood), (Corruption::ALL.len(), 8));
        let b = parse("invalid_proposals = [\"future_timestamp\"]\n").unwrap();
        assert_eq!(b.corruptions().unwrap(), vec![Corruption::FutureTimestamp]);
    }

    #[test]
    fn what_this_node_cannot_do_is_refused_with_its_name() {
        let e = parse("[engine]\nignore_locks = { mode = \"always\" }\n").unwrap_err();
        assert!(e.to_string().contains("ignore_locks"), "{e}");
        let e = parse("censor_signers = [\"abc\"]\n").unwrap_err();
        assert!(e.to_string().contains("censor_signers"), "{e}");
        let e = parse("invalid_proposals = [\"expired\", \"late\"]\n").unwrap_err();
        assert!(
            e.to_string().contains("late") && e.to_string().contains("expired"),
            "{e}"
        );
        let e = parse("withold = true\n").unwrap_err();
        assert!(e.to_string().contains("withold"), "{e}");
        let e = parse(
            "[engine]\nequivocate_votes = { mode = \"always\" }\ndrop_votes = { mode = \"always\" }\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("cannot both"), "{e}");
    }

    #[test]
    fn a_conflicting_value_differs_and_is_stable() {
        let v = BlockId(Hash::tagged(b"x", &[]));
        assert_ne!(conflicting_value(&v), v);
        assert_eq!(conflicting_value(&conflicting_value(&v)), v);
        assert_ne!(
            conflicting_vote_value(None),
            conflicting_vote_value(Some(&v))
        );
    }
}

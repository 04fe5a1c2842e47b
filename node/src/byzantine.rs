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
        Ok(b)
    }

    /// Whether anything misbehaves.
    pub fn is_active(&self) -> bool {
        self.engine.is_active() || !self.censor_signers.is_empty() || self.withhold
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
    }

    #[test]
    fn what_this_node_cannot_do_is_refused_with_its_name() {
        let e = parse("[engine]\nignore_locks = { mode = \"always\" }\n").unwrap_err();
        assert!(e.to_string().contains("ignore_locks"), "{e}");
        let e = parse("censor_signers = [\"abc\"]\n").unwrap_err();
        assert!(e.to_string().contains("censor_signers"), "{e}");
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

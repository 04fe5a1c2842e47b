//! Lockstep's Malachite application: the consensus `Context`, the wire codec, signing, block
//! streaming, and the host loop that proposes, validates, decides and syncs blocks.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod codec;
pub mod context;
pub mod evidence;
pub mod host;
pub mod metrics;
pub mod recorder;
pub mod resolve;
pub mod signing;
pub mod store;
pub mod streaming;
pub mod validators;

pub use context::{BlockId, Height, LockstepContext, ProposalPart, ValidatorAddress};
pub use evidence::{Evidence, EvidenceLog, Misbehaviour, SignedProposal};
pub use host::{Host, HostConfig, Tip};
pub use resolve::{BundleFetch, NoFetch};
pub use store::{ChainStore, StoreError};

//! Lockstep wire types and the pure protocol rules that go with them.
//!
//! Everything here is deterministic and free of I/O: bundles (§1 of the protocol), blocks and
//! headers, per-rollup batches with their completeness proofs, validator sets and commit
//! certificates. Every decoder returns an error instead of panicking.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod block;
pub mod bundle;
pub mod certificate;
pub mod hash;
pub mod limits;
pub mod merkle;
pub mod rollup;
pub mod rollup_tree;
pub mod set_update;
pub mod sig;
pub mod validator;

pub use block::{Block, BlockHeader};
pub use bundle::{BundleBody, BundleError, Leg, SignedBundle};
pub use certificate::{CertificateError, CommitCertificate, CommitSig, VoteKind};
pub use hash::Hash;
pub use limits::Limits;
pub use rollup::RollupBatch;
pub use rollup_tree::{BatchError, RollupEntry, RollupProof};
pub use set_update::{
    SetChange, SetUpdate, SetUpdateError, SignedSetUpdate, SET_UPDATE_DELAY, SET_UPDATE_ROLLUP,
};
pub use validator::{Address, Validator, ValidatorSet};

//! Lockstep client library.
//!
//! - [`api`]: the JSON-RPC v1 API as one jsonrpsee trait (the node implements the server side,
//!   this crate's users the generated client), with its JSON types and error codes.
//! - [`bundle`]: build, sign and encode bundles.
//! - [`verify`]: turn a JSON rollup batch back into protocol types and verify it against the
//!   genesis validator set, trusting nothing the node says.
//! - [`follower`]: subscribe to a rollup and yield verified batches, failing over across nodes.
//! - [`tracker`]: send a bundle and wait until it is included or dropped.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod bundle;
pub mod follower;
pub mod tracker;
pub mod verify;

#[cfg(test)]
mod sdk_fixtures;

pub use api::{SeqApiClient, SeqApiServer};

//! The `lockstep` validator node: configuration, keys, genesis, the RocksDB store, the
//! JSON-RPC server, metrics, and the wiring of mempool, gossip and consensus.
//!
//! The protocol rules live in the other crates; this crate only connects them to the world.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admission;
#[cfg(feature = "byzantine")]
pub mod byzantine;
pub mod cache;
pub mod cli;
pub mod config;
pub mod disk;
pub mod genesis;
pub mod home;
pub mod keys;
pub mod metrics;
pub mod metrics_http;
pub mod rpc;
pub mod run;
pub mod snapshot;
pub mod store;
pub mod tools;

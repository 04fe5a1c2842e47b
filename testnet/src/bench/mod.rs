//! The benchmark: open-loop load over JSON-RPC spread across all validators of a real local
//! network, measured per bundle from when it was due (`t0 + i / rate`, whether or not the
//! generator had sent it by then) to a verifying rollup subscriber receiving it.

mod chart;
mod hostile;
mod machine;
mod run;
mod saturation;
mod send;
#[cfg(test)]
mod tests;

pub use self::chart::*;
pub use self::hostile::*;
pub use self::machine::*;
pub use self::run::*;
pub use self::saturation::*;
use self::send::*;

use crate::Cluster;
use eyre::eyre;
use hdrhistogram::Histogram;
use lockstep_bundles::sig::Item;
use lockstep_bundles::Hash;
use lockstep_client::follower::Subscriber;
use lockstep_client::SeqApiClient;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Most requests in flight from the load generator; beyond it the generator waits (and the
/// run reports how late it fell behind its schedule).
pub const MAX_IN_FLIGHT: usize = 4096;
/// How often the open-loop sender sends what has come due.
const TICK: Duration = Duration::from_millis(5);
/// Most calls in one batch request (the node accepts up to 1024).
const BATCH_CALLS: usize = 512;
/// Most hex bytes of bundles in one batch request (the node accepts 4 MiB bodies).
const BATCH_BYTES: usize = 3 * 1024 * 1024;
/// Bundles signed by each signer of the load by default: one, so every bundle carries its
/// own key as independent users' bundles do, and a verification batch holds as many keys as
/// signatures (batch verification is much faster when keys repeat). `--bundles-per-signer
/// 400` gives the load of the fifteenth and earlier sessions (one to three keys per batch);
/// the mempool holds at most `mempool.max_per_signer` (1,000) pending bundles per signer.
pub const DEFAULT_BUNDLES_PER_SIGNER: usize = 1;

/// One load run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub legs: usize,
    pub leg_bytes: usize,
    pub rate: f64,
    pub duration: Duration,
    /// How long to wait for the last deliveries after the load stops; when it ends, the
    /// sender is stopped whatever it has left to send.
    pub drain: Duration,
    /// Consecutive bundles signed by one key ([`DEFAULT_BUNDLES_PER_SIGNER`]).
    pub bundles_per_signer: usize,
    /// The validators' `consensus.target_block_time_ms` (a network setting, recorded with
    /// the results because latency depends on it).
    pub block_time_ms: u64,
    /// The validators' `consensus.propose_wait_ms`.
    pub propose_wait_ms: u64,
    /// The validators' `gossip.publish_linger_ms`.
    pub publish_linger_ms: u64,
    /// The validators' `history.keep_heights` (0 keeps every height).
    pub keep_heights: u64,
    /// One-way delay of every peer link, in ms: the validators then run in the network lab
    /// (namespaces, root needed) with every link through its delaying relay. `None`: loopback.
    pub link_delay_ms: Option<u64>,
    /// Jitter added to `link_delay_ms` (uniform in `[0, jitter]` per chunk, order kept).
    pub link_jitter_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// From a histogram of microseconds.
    fn of(h: &Histogram<u64>) -> Percentiles {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Percentiles {
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            max: h.max() as f64 / 1000.0,
        }
    }
}

/// A histogram of microseconds, from 1 µs to 10 minutes at 3 significant digits.
fn micros_histogram() -> eyre::Result<Histogram<u64>> {
    Ok(Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?)
}

/// This machine's wall clock in microseconds (block timestamps are wall-clock milliseconds).
fn wall_clock_us() -> eyre::Result<f64> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_micros() as f64)
}

/// Latency cut at the block's timestamp (the proposer's clock when it built the block; every
/// process shares this machine's clock, at millisecond resolution).
#[derive(Debug, Clone, Serialize)]
pub struct LatencySplit {
    /// From when the bundle was due to the proposal that included it: sending, admission,
    /// gossip, and waiting in the pool for a proposer.
    pub due_to_block: Percentiles,
    /// From the proposal to the subscriber: consensus, commit, and delivery.
    pub block_to_delivery: Percentiles,
    /// Between consecutive blocks' timestamps, every height of the run counted (empty ones
    /// too): long intervals are heights that were slow to decide, not bundles slow to arrive.
    pub block_interval: Percentiles,
}

/// What a peak RSS covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RssScope {
    /// This run (load and drain): the kernel's mark was reset when the run started.
    Run,
    /// The process's whole life: the mark could not be reset (see [`reset_rss_peak`]).
    Process,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeUsage {
    pub name: String,
    pub cpu_s: f64,
    /// The kernel's high-water mark of resident memory (`VmHWM`), in MB, over
    /// `rss_peak_scope`.
    pub rss_peak_mb: f64,
    pub rss_peak_scope: RssScope,
}

/// Which keys the raw batch-verification rate (the ceiling) was measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RawVerifyKeys {
    /// One key per signature.
    Distinct,
    /// The run's own mix: `bundles_per_signer` consecutive signatures per key.
    SameAsLoad,
}

/// A raw batch-verification measurement ([`raw_verify_rate`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawVerify {
    /// Signatures verified per second, on all cores.
    pub per_s: f64,
    /// Consecutive signatures made by one key in the measured batches (1: distinct keys).
    pub signatures_per_key: usize,
}

impl RawVerify {
    /// How this measurement's keys relate to a load of `bundles_per_signer`.
    pub fn keys_for(&self, bundles_per_signer: usize) -> eyre::Result<RawVerifyKeys> {
        match self.signatures_per_key {
            1 => Ok(RawVerifyKeys::Distinct),
            k if k == bundles_per_signer => Ok(RawVerifyKeys::SameAsLoad),
            k => Err(eyre!(
                "ceiling measured with {k} signatures per key, load signs {bundles_per_signer} \
                 bundles per signer"
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub validators: usize,
    pub target_block_time_ms: u64,
    pub propose_wait_ms: u64,
    pub publish_linger_ms: u64,
    pub keep_heights: u64,
    /// The one-way delay of every peer link ([`RunSpec::link_delay_ms`]); `None` on loopback.
    pub link_delay_ms: Option<u64>,
    pub link_jitter_ms: u64,
    /// The network the validators ran on and how link delays were made
    /// ([`crate::Cluster::network_description`]).
    pub network: String,
    pub legs: usize,
    pub leg_bytes: usize,
    /// Consecutive bundles of the load signed by one key.
    pub bundles_per_signer: usize,
    pub offered_per_s: f64,
    /// Bundles the schedule held: `offered_per_s` × the load's duration.
    pub planned: u64,
    /// Bundles put in a request the generator issued (fewer than `planned` when the drain
    /// deadline stopped it first).
    pub sent: u64,
    /// Bundles the validators answered with a hash.
    pub accepted: u64,
    /// Bundles the validators refused, or whose request failed.
    pub rejected: u64,
    /// Bundles the subscriber received (first leg, rollup 1) before the run ended.
    pub delivered: u64,
    /// `delivered` ÷ `duration_s`.
    pub delivered_bundles_per_s: f64,
    pub delivered_mb_per_s: f64,
    /// From each bundle's due time to its verified delivery.
    pub latency_ms: Percentiles,
    pub latency_split_ms: LatencySplit,
    pub raw_verify_per_s: f64,
    pub raw_verify_keys: RawVerifyKeys,
    /// `raw_verify_per_s` ÷ `validators` (every validator verifies every bundle, all on
    /// this machine).
    pub ceiling_bundles_per_s: f64,
    /// `delivered_bundles_per_s` ÷ `ceiling_bundles_per_s`.
    pub ratio_to_ceiling: f64,
    /// How far the oldest bundle not yet sent was behind its due time, at worst: measured at
    /// every tick, before every request and when the run ended (bundles never sent count).
    pub schedule_lag_ms_max: f64,
    /// Whether the drain deadline ended the run (and stopped the generator if it was still
    /// sending) rather than every accepted bundle having been delivered.
    pub ended_by_deadline: bool,
    pub nodes: Vec<NodeUsage>,
    /// The largest of the nodes' `rss_peak_mb`.
    pub rss_peak_mb: f64,
    /// `run` if every node's mark was reset at the start of the run, else `process`.
    pub rss_peak_scope: RssScope,
    pub heights: u64,
    /// From the start of the load to the last delivery, at least the load's duration.
    pub duration_s: f64,
    /// The hostile load held beside this run (`bench --hostile`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostile: Option<HostileLoad>,
}

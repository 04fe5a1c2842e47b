//! The open-loop sender: bundles sent as they come due, as JSON-RPC batch requests spread
//! over the validators, counted as they are answered, stopped at the run's deadline.

use super::*;

/// Splits bundles into batch requests of at most [`BATCH_CALLS`] calls and [`BATCH_BYTES`]
/// bytes (`bytes` of each; a bundle larger than that goes alone), in order.
pub(super) fn split_batches<T>(group: Vec<T>, bytes_of: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0usize;
    for r in group {
        let len = bytes_of(&r);
        match out.last_mut() {
            Some(b) if b.len() < BATCH_CALLS && bytes + len <= BATCH_BYTES => {
                bytes += len;
                b.push(r);
            }
            _ => {
                bytes = len;
                out.push(vec![r]);
            }
        }
    }
    out
}

/// What the sender and its requests report while a run goes on.
#[derive(Default)]
pub(super) struct Sending {
    /// Bundles put in an issued request.
    pub(super) sent: AtomicU64,
    pub(super) accepted: AtomicU64,
    pub(super) rejected: AtomicU64,
    /// Index of the oldest bundle not yet in an issued request (the total when all are).
    pub(super) oldest_unsent: AtomicUsize,
    /// The largest lag seen of the oldest unsent bundle behind its due time, in µs.
    pub(super) lag_max_us: AtomicU64,
}

impl Sending {
    /// Records the lag at `now` of a bundle not yet sent that was due at `due`.
    pub(super) fn note_lag(&self, now: Instant, due: Instant) {
        let lag = now.saturating_duration_since(due).as_micros();
        self.lag_max_us
            .fetch_max(u64::try_from(lag).unwrap_or(u64::MAX), Relaxed);
    }
}

/// Sends one JSON-RPC batch of `seq_sendRawBundle` calls and counts the outcomes.
pub(super) async fn send_batch(
    client: jsonrpsee::http_client::HttpClient,
    batch: Vec<String>,
    permit: tokio::sync::OwnedSemaphorePermit,
    s: Arc<Sending>,
) {
    use jsonrpsee::core::client::ClientT;
    let n = batch.len();
    let mut request = jsonrpsee::core::params::BatchRequestBuilder::new();
    for raw in batch {
        if request
            .insert("seq_sendRawBundle", jsonrpsee::rpc_params![raw])
            .is_err()
        {
            s.rejected.fetch_add(1, Relaxed);
        }
    }
    match client.batch_request::<Hash>(request).await {
        Ok(r) => {
            s.accepted
                .fetch_add(r.num_successful_calls() as u64, Relaxed);
            s.rejected.fetch_add(r.num_failed_calls() as u64, Relaxed);
        }
        Err(_) => {
            s.rejected.fetch_add(n as u64, Relaxed);
        }
    }
    drop(permit);
}

/// The open-loop sender: every [`TICK`] it sends what has come due (bundle `i` at
/// `t0 + i / rate`), to validator `i mod n`, as one JSON-RPC batch request per validator (split
/// at [`BATCH_CALLS`] calls or [`BATCH_BYTES`]), oldest first, the way a busy front end
/// forwards its users' bundles. Returns when every request is answered; aborting it aborts
/// the requests still in flight.
pub(super) async fn send_open_loop(
    clients: Vec<jsonrpsee::http_client::HttpClient>,
    raw: Vec<String>,
    rate: f64,
    t0: Instant,
    s: Arc<Sending>,
) {
    let n = clients.len().max(1);
    let total = raw.len();
    let due_at = |i: usize| t0 + Duration::from_secs_f64(i as f64 / rate);
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut in_flight = tokio::task::JoinSet::new();
    let mut raw = raw.into_iter().enumerate();
    let mut next = 0usize;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while next < total {
        tick.tick().await;
        while in_flight.try_join_next().is_some() {}
        let now = Instant::now();
        s.note_lag(now, due_at(next));
        let due = (((now - t0).as_secs_f64() * rate) as usize + 1).min(total);
        if due <= next {
            continue;
        }
        let mut groups: Vec<Vec<(usize, String)>> = vec![Vec::new(); n];
        for (i, r) in raw.by_ref().take(due - next) {
            groups[i % n].push((i, r));
        }
        next = due;
        let mut batches: Vec<Vec<(usize, String)>> = groups
            .into_iter()
            .flat_map(|g| split_batches(g, |(_, r)| r.len()))
            .collect();
        // Oldest first, so the oldest bundle not yet sent is always the next batch's first.
        batches.sort_by_key(|b| b.first().map(|(i, _)| *i));
        for batch in batches {
            let Some(&(first, _)) = batch.first() else {
                continue;
            };
            s.oldest_unsent.store(first, Relaxed);
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            s.note_lag(Instant::now(), due_at(first));
            s.sent.fetch_add(batch.len() as u64, Relaxed);
            let batch = batch.into_iter().map(|(_, r)| r).collect();
            in_flight.spawn(send_batch(
                clients[first % n].clone(),
                batch,
                permit,
                s.clone(),
            ));
        }
        s.oldest_unsent.store(next, Relaxed);
    }
    while in_flight.join_next().await.is_some() {}
}

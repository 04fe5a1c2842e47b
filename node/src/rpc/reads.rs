//! Store reads and JSON encoding for the RPC server, off the async executor: each runs on
//! tokio's blocking pool, at most [`MAX_BLOCKING_READS`] at once, and no lock is held across
//! one. Batches encoded for subscribers are kept in a cache shared by all of them; concurrent
//! misses for the same `(rollup, height)` wait for one encoding (single flight).

use crate::cache::FifoCache;
use jsonrpsee::core::RpcResult;
use parking_lot::Mutex;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{OnceCell, Semaphore};

/// Store reads (with their decoding and encoding) running at once for the RPC server; more
/// wait for a turn without holding a thread. A subscriber's batch and a call's read take
/// turns alike, so a flood of calls slows subscribers without blocking the executor.
pub const MAX_BLOCKING_READS: usize = 16;
/// Encoded batches kept for subscribers: at most this many…
pub const ENCODED_BATCH_CACHE: usize = 8_192;
/// …and about this many bytes.
pub const ENCODED_BATCH_CACHE_BYTES: usize = 32 * 1024 * 1024;

type Raw = Arc<RawValue>;
type Key = (u64, u64);
/// One encoding in progress: whoever comes first runs it, the others wait for its outcome.
type Slot = Arc<OnceCell<Option<Raw>>>;

/// The cache and the encodings in progress, under one short lock (map operations only).
struct Batches {
    cache: FifoCache<Key, Raw>,
    in_flight: HashMap<Key, Slot>,
}

/// The RPC server's way to the store: a bounded number of blocking reads, and the encoded
/// batches shared by subscribers.
pub struct Reads {
    turns: Arc<Semaphore>,
    batches: Mutex<Batches>,
}

impl Default for Reads {
    fn default() -> Self {
        Reads::new(
            MAX_BLOCKING_READS,
            ENCODED_BATCH_CACHE,
            ENCODED_BATCH_CACHE_BYTES,
        )
    }
}

impl Reads {
    pub fn new(concurrent: usize, cached: usize, cached_bytes: usize) -> Reads {
        Reads {
            turns: Arc::new(Semaphore::new(concurrent.max(1))),
            batches: Mutex::new(Batches {
                cache: FifoCache::new(cached, cached_bytes),
                in_flight: HashMap::new(),
            }),
        }
    }

    /// Runs `read` on a blocking thread once a turn is free. The turn is held until `read`
    /// returns, even if the caller stops waiting (a closed connection), so at most
    /// [`MAX_BLOCKING_READS`] threads ever read for the RPC server. A panic is an internal
    /// error, not the caller's.
    pub async fn blocking<T, F>(&self, read: F) -> RpcResult<T>
    where
        F: FnOnce() -> RpcResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let turn = self
            .turns
            .clone()
            .acquire_owned()
            .await
            .map_err(super::internal)?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            read()
        })
        .await
        .map_err(super::internal)?
    }

    /// The encoded batch for `(rollup_id, height)`: from the cache, else from the encoding
    /// already in progress for it, else made by `encode` on a blocking thread (and cached if
    /// there is one; `None`, a height not decided, is not).
    pub async fn encoded_batch<F>(
        &self,
        rollup_id: u64,
        height: u64,
        encode: F,
    ) -> RpcResult<Option<Raw>>
    where
        F: FnOnce() -> RpcResult<Option<Raw>> + Send + 'static,
    {
        let key = (rollup_id, height);
        let slot = {
            let mut b = self.batches.lock();
            if let Some(raw) = b.cache.get(&key) {
                return Ok(Some(raw));
            }
            b.in_flight.entry(key).or_default().clone()
        };
        let waiter = Waiter {
            reads: self,
            key,
            slot,
        };
        // An encoding that fails (or whose runner went away) is run again by the next waiter.
        let value = waiter
            .slot
            .get_or_try_init(|| self.blocking(encode))
            .await?
            .clone();
        Ok(value)
    }

    /// Encodings in progress (for tests).
    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.batches.lock().in_flight.len()
    }
}

/// One caller waiting on an encoding. The last one out moves the outcome into the cache and
/// forgets the encoding, whether it finished or every waiter went away.
struct Waiter<'a> {
    reads: &'a Reads,
    key: Key,
    slot: Slot,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut b = self.reads.batches.lock();
        let ours = b
            .in_flight
            .get(&self.key)
            .is_some_and(|s| Arc::ptr_eq(s, &self.slot));
        if !ours {
            return;
        }
        match self.slot.get() {
            Some(outcome) => {
                b.in_flight.remove(&self.key);
                if let Some(raw) = outcome {
                    b.cache.insert(self.key, raw.clone(), raw.get().len());
                    metrics::gauge!(crate::metrics::BATCH_CACHE_BYTES).set(b.cache.bytes() as f64);
                }
            }
            // Not done, and nobody else waits for it (the map and this waiter hold the only
            // references, and new ones are taken under this lock).
            None if Arc::strong_count(&self.slot) <= 2 => {
                b.in_flight.remove(&self.key);
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn raw(s: &str) -> Raw {
        Arc::from(RawValue::from_string(s.to_string()).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_for_one_batch_encode_it_once() {
        let reads = Arc::new(Reads::new(4, 16, 1 << 20));
        let encodings = Arc::new(AtomicUsize::new(0));
        let mut waiters = Vec::new();
        for _ in 0..8 {
            let (reads, encodings) = (reads.clone(), encodings.clone());
            waiters.push(tokio::spawn(async move {
                reads
                    .encoded_batch(1, 7, move || {
                        encodings.fetch_add(1, Ordering::SeqCst);
                        // Long enough for every other caller to find the encoding in progress.
                        std::thread::sleep(Duration::from_millis(200));
                        Ok(Some(raw(r#"{"height":7}"#)))
                    })
                    .await
            }));
        }
        for w in waiters {
            let got = w.await.unwrap().unwrap().unwrap();
            assert_eq!(got.get(), r#"{"height":7}"#);
        }
        assert_eq!(encodings.load(Ordering::SeqCst), 1);
        assert_eq!(reads.in_flight(), 0, "finished encodings are forgotten");
        // Now cached: no encoding at all.
        let again = reads
            .encoded_batch(1, 7, || panic!("the cached batch was encoded again"))
            .await
            .unwrap();
        assert!(again.is_some());
    }

    #[tokio::test]
    async fn a_failed_or_undecided_encoding_is_not_cached_and_a_panic_is_an_error() {
        let reads = Reads::new(1, 16, 1 << 20);
        let failed = reads
            .encoded_batch(1, 1, || Err(super::super::internal("disk on fire")))
            .await;
        assert!(failed.is_err());
        assert_eq!(reads.in_flight(), 0);
        assert!(reads
            .encoded_batch(1, 1, || Ok(None))
            .await
            .unwrap()
            .is_none());
        let ok = reads
            .encoded_batch(1, 1, || Ok(Some(raw("1"))))
            .await
            .unwrap();
        assert_eq!(ok.unwrap().get(), "1");
        let panicked = reads.blocking::<(), _>(|| panic!("a bug")).await;
        assert_eq!(panicked.unwrap_err().code(), -32603);
        // The turn the panicking read held is free again.
        assert_eq!(reads.blocking(|| Ok(5)).await.unwrap(), 5);
    }

    #[tokio::test]
    async fn a_waiter_that_goes_away_leaves_nothing_behind() {
        let reads = Reads::new(1, 16, 1 << 20);
        let slow = reads.encoded_batch(2, 3, || {
            std::thread::sleep(Duration::from_millis(50));
            Ok(Some(raw("3")))
        });
        // Polled once (the encoding starts), then dropped.
        assert!(tokio::time::timeout(Duration::from_millis(1), slow)
            .await
            .is_err());
        assert_eq!(reads.in_flight(), 0);
    }
}

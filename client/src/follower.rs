//! Following one rollup: subscribe, verify every batch, yield every height once, in order.
//!
//! [`Subscriber`] is one subscription on one node. [`Follower`] is what a rollup runs: it
//! knows several nodes, and when its node disconnects, ends the subscription, sends a batch that
//! does not verify or skips a height, it moves to the next node and resumes from the height
//! after the last one it verified.

use crate::api::{RollupBatchJson, SeqApiClient};
use crate::verify::{BatchVerifier, VerifyError};
use jsonrpsee::core::client::Subscription;
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
use lockstep_bundles::{BatchError, RollupBatch, SET_UPDATE_ROLLUP};
use std::time::Duration;
use tracing::warn;

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("connection: {0}")]
    Connection(String),
    #[error("subscription ended by the node")]
    Ended,
    #[error("height {got} received, expected {expected}")]
    Gap { expected: u64, got: u64 },
    #[error("batch for rollup {got}, expected {expected}")]
    WrongRollup { expected: u64, got: u64 },
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("no node could serve the rollup: {0}")]
    Exhausted(String),
    #[error("validator set: {0}")]
    SetUnavailable(String),
}

/// A verified batch with the JSON it came in.
#[derive(Debug, Clone)]
pub struct Verified {
    pub batch: RollupBatch,
    pub json: RollupBatchJson,
}

/// A subscription to one rollup on one node whose every batch is verified.
pub struct Subscriber {
    _client: WsClient,
    sub: Subscription<RollupBatchJson>,
    verifier: BatchVerifier,
    rollup_id: u64,
    next: Option<u64>,
}

impl Subscriber {
    /// Subscribes to `rollup_id` from `from_height` (default: the node's next height).
    pub async fn connect(
        ws_url: &str,
        rollup_id: u64,
        from_height: Option<u64>,
        verifier: BatchVerifier,
    ) -> Result<Subscriber, FollowError> {
        let client = WsClientBuilder::default()
            .connection_timeout(Duration::from_secs(5))
            .build(ws_url)
            .await
            .map_err(|e| FollowError::Connection(format!("{ws_url}: {e}")))?;
        let sub = client
            .subscribe_rollup(rollup_id, from_height)
            .await
            .map_err(|e| FollowError::Connection(format!("{ws_url}: {e}")))?;
        Ok(Subscriber {
            _client: client,
            sub,
            verifier,
            rollup_id,
            next: from_height,
        })
    }

    /// The next height's verified batch; heights are strictly consecutive.
    pub async fn next(&mut self) -> Result<Verified, FollowError> {
        let json = match self.sub.next().await {
            Some(Ok(j)) => j,
            Some(Err(e)) => return Err(FollowError::Connection(e.to_string())),
            None => return Err(FollowError::Ended),
        };
        if json.rollup_id != self.rollup_id {
            return Err(FollowError::WrongRollup {
                expected: self.rollup_id,
                got: json.rollup_id,
            });
        }
        if let Some(expected) = self.next {
            if json.height != expected {
                return Err(FollowError::Gap {
                    expected,
                    got: json.height,
                });
            }
        }
        let batch = match self.verifier.verify(&json) {
            // The set changed: learn the updates from this node (each verified by the set
            // before it), then this batch must verify with the set of its height.
            Err(VerifyError::Invalid(BatchError::OtherValidatorSet { .. })) => {
                learn_sets(&self._client, &mut self.verifier).await?;
                self.verifier.verify(&json)?
            }
            other => other?,
        };
        self.next = Some(json.height + 1);
        Ok(Verified { batch, json })
    }

    /// The verifier, with every validator set learned so far.
    pub fn verifier(&self) -> &BatchVerifier {
        &self.verifier
    }
}

/// Brings `verifier` up to the newest validator set `client`'s node knows: asks which sets
/// followed the newest one learned (`seq_getValidatorSets`), then learns each from its
/// update's batch (rollup 0 at the height that included it), in order. What the node says of
/// the sets only tells where to look: a set it names that the update does not make is an
/// error. Returns how many sets were learned.
pub async fn learn_sets(
    client: &impl SeqApiClient,
    verifier: &mut BatchVerifier,
) -> Result<usize, FollowError> {
    let conn = |e: jsonrpsee::core::ClientError| FollowError::Connection(e.to_string());
    let mut learned = 0;
    loop {
        let from = verifier.latest().version + 1;
        let claimed = client.get_validator_sets(Some(from)).await.map_err(conn)?;
        if claimed.is_empty() {
            return Ok(learned);
        }
        for c in claimed {
            let batch = client
                .get_rollup_batch(SET_UPDATE_ROLLUP, c.included_at)
                .await
                .map_err(conn)?
                .ok_or_else(|| {
                    FollowError::SetUnavailable(format!(
                        "the node names set version {} from an update at height {}, but does \
                         not serve that height (pruned?)",
                        c.version, c.included_at
                    ))
                })?;
            let known = verifier.learn(&batch)?.cloned();
            match known {
                Some(k) if k.version == c.version && k.set.hash() == c.validators_hash => {
                    learned += 1;
                }
                _ => {
                    return Err(FollowError::SetUnavailable(format!(
                        "the node names set version {} ({}) from height {}, but the batch of \
                         height {} does not make it",
                        c.version, c.validators_hash, c.from_height, c.included_at
                    )))
                }
            }
        }
    }
}

/// Time between attempts when every node failed once in a row.
pub const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// A rollup's view of the sequencer: verified batches, every height exactly once, in order,
/// across node failures.
pub struct Follower {
    urls: Vec<String>,
    current: usize,
    rollup_id: u64,
    verifier: BatchVerifier,
    next: Option<u64>,
    sub: Option<Subscriber>,
    /// Consecutive failures without a verified batch in between.
    failures: usize,
    max_failures: usize,
}

impl Follower {
    /// Follows `rollup_id` through the nodes at `ws_urls`, from `from_height` (default: the
    /// first node's next height). Gives up after `max_failures` consecutive failed attempts.
    pub fn new(
        ws_urls: Vec<String>,
        rollup_id: u64,
        from_height: Option<u64>,
        verifier: BatchVerifier,
        max_failures: usize,
    ) -> Follower {
        Follower {
            urls: ws_urls,
            current: 0,
            rollup_id,
            verifier,
            next: from_height,
            sub: None,
            failures: 0,
            max_failures: max_failures.max(1),
        }
    }

    /// The height the next batch will have, once known.
    pub fn next_height(&self) -> Option<u64> {
        self.next
    }

    /// The URL of the node currently followed.
    pub fn node(&self) -> &str {
        &self.urls[self.current]
    }

    fn fail(&mut self, e: &FollowError) -> Result<(), FollowError> {
        warn!(node = %self.urls[self.current], "rollup follower: {e}; moving to the next node");
        self.sub = None;
        self.current = (self.current + 1) % self.urls.len();
        self.failures += 1;
        if self.failures >= self.max_failures {
            return Err(FollowError::Exhausted(e.to_string()));
        }
        Ok(())
    }

    /// The next verified batch.
    pub async fn next(&mut self) -> Result<Verified, FollowError> {
        if self.urls.is_empty() {
            return Err(FollowError::Exhausted("no nodes given".into()));
        }
        loop {
            if self.sub.is_none() {
                if self.failures > 0 && self.failures.is_multiple_of(self.urls.len()) {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                let url = self.urls[self.current].clone();
                match Subscriber::connect(&url, self.rollup_id, self.next, self.verifier.clone())
                    .await
                {
                    Ok(s) => self.sub = Some(s),
                    Err(e) => {
                        self.fail(&e)?;
                        continue;
                    }
                }
            }
            let Some(sub) = self.sub.as_mut() else {
                continue;
            };
            match sub.next().await {
                Ok(v) => {
                    if sub.verifier().sets().len() != self.verifier.sets().len() {
                        // Learned sets are kept across nodes.
                        self.verifier = sub.verifier().clone();
                    }
                    self.failures = 0;
                    self.next = Some(v.batch.height + 1);
                    return Ok(v);
                }
                Err(e) => self.fail(&e)?,
            }
        }
    }
}

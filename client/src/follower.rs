//! Following one rollup: subscribe, verify every batch, yield heights in order.

use crate::api::{RollupBatchJson, SeqApiClient};
use crate::verify::{BatchVerifier, VerifyError};
use jsonrpsee::core::client::Subscription;
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
use lockstep_bundles::RollupBatch;

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
            .build(ws_url)
            .await
            .map_err(|e| FollowError::Connection(e.to_string()))?;
        let sub = client
            .subscribe_rollup(rollup_id, from_height)
            .await
            .map_err(|e| FollowError::Connection(e.to_string()))?;
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
        let batch = self.verifier.verify(&json)?;
        self.next = Some(json.height + 1);
        Ok(Verified { batch, json })
    }
}

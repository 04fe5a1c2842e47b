//! Sending a bundle and waiting for its fate.

use crate::api::SeqApiClient;
use jsonrpsee::core::ClientError;
use lockstep_bundles::{Hash, SignedBundle};
use std::time::Duration;

/// What became of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Included { height: u64, index: u32 },
    Dropped { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error("rejected ({code}): {message}")]
    Rejected { code: i32, message: String },
    #[error("rpc: {0}")]
    Rpc(String),
    #[error("bundle {hash} still {status} after {timeout:?}")]
    Timeout {
        hash: Hash,
        status: String,
        timeout: Duration,
    },
}

fn rpc(e: ClientError) -> TrackError {
    match e {
        ClientError::Call(c) => TrackError::Rejected {
            code: c.code(),
            message: c.message().to_string(),
        },
        other => TrackError::Rpc(other.to_string()),
    }
}

/// Sends `bundle` through `client` and waits until it is included or dropped.
pub async fn send_and_wait<C: SeqApiClient + Sync>(
    client: &C,
    bundle: &SignedBundle,
    timeout: Duration,
) -> Result<(Hash, Outcome), TrackError> {
    let hash = client
        .send_raw_bundle(crate::bundle::to_raw_hex(bundle))
        .await
        .map_err(rpc)?;
    Ok((hash, wait(client, hash, timeout).await?))
}

/// Waits until the bundle `hash` is included or dropped.
pub async fn wait<C: SeqApiClient + Sync>(
    client: &C,
    hash: Hash,
    timeout: Duration,
) -> Result<Outcome, TrackError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let s = client.get_bundle_status(hash).await.map_err(rpc)?;
        match s.status.as_str() {
            "included" => {
                return Ok(Outcome::Included {
                    height: s.height.unwrap_or(0),
                    index: s.index.unwrap_or(0),
                })
            }
            "dropped" => {
                return Ok(Outcome::Dropped {
                    reason: s.reason.unwrap_or_default(),
                })
            }
            other => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(TrackError::Timeout {
                        hash,
                        status: other.to_string(),
                        timeout,
                    });
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

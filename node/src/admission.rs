//! Admission: decode, stateless checks, signature verification in batches on blocking worker
//! threads, then the mempool; shared by the RPC server and the gossip inbound path.

use bytes::Bytes;
use lockstep_bundles::bundle::Window;
use lockstep_bundles::sig::{self, Item};
use lockstep_bundles::{BundleError, Hash, Limits, SignedBundle};
use lockstep_consensus::Tip;
use lockstep_mempool::pool::PoolError;
use lockstep_mempool::{Admitted, Inserted, Mempool};
use lockstep_p2p::{BundleGossip, Inbound, Verdict};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch, Mutex, Semaphore};
use tracing::debug;

/// Signatures queued for verification before new submissions get "busy" (4006).
pub const VERIFY_QUEUE: usize = 16_384;
/// Most signatures verified in one batch.
pub const MAX_BATCH: usize = 512;
/// Gossip messages being admitted at once.
pub const GOSSIP_IN_FLIGHT: usize = 2_048;

/// Why a bundle was not admitted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdmitError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("{0}")]
    Busy(String),
}

impl AdmitError {
    pub fn code(&self) -> i32 {
        match self {
            AdmitError::Bundle(b) => b.code(),
            AdmitError::Busy(_) => 4006,
        }
    }
}

impl From<PoolError> for AdmitError {
    fn from(e: PoolError) -> Self {
        AdmitError::Busy(e.to_string())
    }
}

struct Job {
    item: Item,
    reply: oneshot::Sender<bool>,
}

/// Starts `workers` verification loops; each takes up to [`MAX_BATCH`] queued signatures at
/// a time and verifies them as one batch on a blocking thread.
fn spawn_verifiers(workers: usize) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>(VERIFY_QUEUE);
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..workers.max(1) {
        let rx = rx.clone();
        tokio::spawn(async move {
            loop {
                let mut jobs = Vec::with_capacity(MAX_BATCH);
                {
                    let mut r = rx.lock().await;
                    match r.recv().await {
                        Some(j) => jobs.push(j),
                        None => return,
                    }
                    while jobs.len() < MAX_BATCH {
                        match r.try_recv() {
                            Ok(j) => jobs.push(j),
                            Err(_) => break,
                        }
                    }
                }
                let items: Vec<Item> = jobs.iter().map(|j| j.item).collect();
                let n = items.len();
                let started = std::time::Instant::now();
                let verdicts = tokio::task::spawn_blocking(move || sig::verify_batch(&items))
                    .await
                    .unwrap_or_else(|_| vec![false; n]);
                metrics::histogram!("lockstep_mempool_verify_batch_size").record(n as f64);
                metrics::histogram!("lockstep_mempool_verify_batch_seconds")
                    .record(started.elapsed().as_secs_f64());
                for (job, ok) in jobs.into_iter().zip(verdicts) {
                    let _ = job.reply.send(ok);
                }
            }
        });
    }
    tx
}

/// The raw rate (signatures/s) at which this machine batch-verifies `items` on all cores, in
/// batches of [`MAX_BATCH`]: the ceiling admission is measured against.
pub fn raw_verify_rate(items: &[Item]) -> f64 {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for chunk in items.chunks(items.len().div_ceil(cores).max(1)) {
            s.spawn(move || {
                for batch in chunk.chunks(MAX_BATCH) {
                    let _ = sig::verify_batch(batch);
                }
            });
        }
    });
    items.len() as f64 / started.elapsed().as_secs_f64()
}

/// Where a bundle came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Rpc,
    Gossip,
}

pub struct Admission {
    chain_id: u64,
    limits: Limits,
    mempool: Arc<Mempool>,
    tip: watch::Receiver<Tip>,
    verify: mpsc::Sender<Job>,
    gossip: Arc<dyn BundleGossip>,
}

fn reject(e: AdmitError) -> AdmitError {
    let label = match &e {
        AdmitError::Bundle(b) => b.label(),
        AdmitError::Busy(_) => "busy",
    };
    metrics::counter!("lockstep_mempool_rejected_total", "reason" => label).increment(1);
    e
}

impl Admission {
    pub fn new(
        chain_id: u64,
        limits: Limits,
        mempool: Arc<Mempool>,
        tip: watch::Receiver<Tip>,
        gossip: Arc<dyn BundleGossip>,
    ) -> Arc<Admission> {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Arc::new(Admission {
            chain_id,
            limits,
            mempool,
            tip,
            verify: spawn_verifiers(workers),
            gossip,
        })
    }

    /// Admits an encoded `SignedBundle`.
    pub async fn submit_bytes(&self, encoded: Bytes, source: Source) -> Result<Hash, AdmitError> {
        let bundle = SignedBundle::decode(&encoded, &self.limits).map_err(|e| reject(e.into()))?;
        self.submit(bundle, encoded, source).await
    }

    /// Admits a decoded bundle whose canonical encoding is `encoded`. Idempotent: a bundle
    /// already pending or included returns its hash without being checked again.
    pub async fn submit(
        &self,
        bundle: SignedBundle,
        encoded: Bytes,
        source: Source,
    ) -> Result<Hash, AdmitError> {
        // `encoded` is canonical (it decoded, or was just encoded): hash it as it is.
        let hash = SignedBundle::hash_of_encoding(&encoded);
        if self.mempool.seen(&hash).is_some() {
            return Ok(hash);
        }
        let latest = self.tip.borrow().height;
        let window = Window::after(latest, &self.limits);
        bundle
            .check_static(encoded.len(), self.chain_id, &window, &self.limits)
            .map_err(|e| reject(e.into()))?;
        if !self.mempool.signature_verified(&hash) {
            let (reply, verdict) = oneshot::channel();
            let job = Job {
                item: Item {
                    pk: bundle.body.signer,
                    msg: hash.0,
                    sig: bundle.signature,
                },
                reply,
            };
            self.verify.try_send(job).map_err(|_| {
                reject(AdmitError::Busy(
                    "node busy: signature verification queue is full; retry later".into(),
                ))
            })?;
            if !verdict.await.unwrap_or(false) {
                return Err(reject(
                    BundleError::BadSignature {
                        signer: lockstep_bundles::hash::encode_hex(&bundle.body.signer),
                    }
                    .into(),
                ));
            }
        }
        let admitted = Admitted {
            hash,
            bundle: Arc::new(bundle),
            encoded: encoded.clone(),
        };
        match self
            .mempool
            .insert(admitted, latest + 1)
            .map_err(|e| reject(e.into()))?
        {
            Inserted::New => {
                metrics::counter!("lockstep_mempool_admitted_total", "source" => match source {
                    Source::Rpc => "rpc",
                    Source::Gossip => "gossip",
                })
                .increment(1);
                let (count, bytes) = self.mempool.size();
                metrics::gauge!("lockstep_mempool_bundles").set(count as f64);
                metrics::gauge!("lockstep_mempool_bytes").set(bytes as f64);
                if source == Source::Rpc {
                    self.gossip.publish(encoded).await;
                }
            }
            Inserted::AlreadyPending | Inserted::AlreadyIncluded { .. } => {}
        }
        Ok(hash)
    }
}

/// Admits gossiped bundles and reports a verdict on each, so gossipsub forwards the valid
/// ones and scores down peers that send invalid ones.
pub async fn run_gossip_inbound(
    mut inbound: mpsc::Receiver<Inbound>,
    admission: Arc<Admission>,
    gossip: Arc<dyn BundleGossip>,
) {
    let permits = Arc::new(Semaphore::new(GOSSIP_IN_FLIGHT));
    while let Some(msg) = inbound.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let admission = admission.clone();
        let gossip = gossip.clone();
        tokio::spawn(async move {
            let verdict = match admission.submit_bytes(msg.data, Source::Gossip).await {
                Ok(_) => Verdict::Accept,
                // A peer may relay a bundle that expired in flight, or hit our limits: no fault.
                Err(AdmitError::Busy(_)) => Verdict::Ignore,
                Err(AdmitError::Bundle(
                    BundleError::Expired { .. } | BundleError::TooFarAhead { .. },
                )) => Verdict::Ignore,
                Err(AdmitError::Bundle(e)) => {
                    debug!(peer = %msg.from, "invalid gossiped bundle: {e}");
                    Verdict::Reject
                }
            };
            gossip.report(msg.id, msg.from, verdict).await;
            drop(permit);
        });
    }
}

/// Gossip message id of an encoded bundle: its bundle hash, computed without decoding
/// (`borsh(SignedBundle) = borsh(body) ++ signature`).
pub fn gossip_message_id(data: &[u8]) -> Vec<u8> {
    if data.len() < 64 {
        return Hash::tagged(b"lockstep:gossip:malformed", &[data])
            .0
            .to_vec();
    }
    SignedBundle::hash_of_encoding(data).0.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gossip_message_id_is_the_bundle_hash() {
        let k = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let b = lockstep_client::bundle::sign(&k, 1, 1, 10, vec![(1, vec![1])]);
        assert_eq!(gossip_message_id(&b.encode()), b.hash().0.to_vec());
        assert_eq!(gossip_message_id(&[1, 2, 3]).len(), 32);
    }
}

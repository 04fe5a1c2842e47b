//! Admission: decode, the mempool's admission rules ([`lockstep_mempool::admit`]), signature
//! verification in batches on dedicated threads, then the pool; shared by the RPC server and
//! the gossip inbound path. The rules are pure and live in the mempool; this module runs
//! them around the I/O:
//!
//! - `verifier`: the signature-verification threads and their bounded queue;
//! - `queue`: single submissions (RPC) coalesced into groups;
//! - `gossip`: gossip messages admitted in groups, each given a verdict for peer scoring;
//! - `durable`: bundles submitted here made durable before they are acknowledged (one
//!   synced write per group of groups), and reloaded at start;
//! - here: [`Admission`], the handle, and the admission of one group.

mod durable;
mod gossip;
mod queue;
mod verifier;

pub use durable::{reload, republish, NoPendingLog, PendingLog};
pub use gossip::{gossip_message_id, run_gossip_inbound};
pub use lockstep_mempool::{AdmitError, Source};
pub use verifier::{raw_verify_rate, raw_verify_rate_in_batches, MAX_BATCH};

use crate::disk::DiskSpace;
use crate::store::PendingRecord;
use bytes::Bytes;
use durable::AckWriter;
use lockstep_bundles::SignedSetUpdate;
use lockstep_bundles::{Hash, Limits, SignedBundle};
use lockstep_consensus::validators::Schedule;
use lockstep_consensus::Tip;
use lockstep_mempool::{AdmitResult, Admitted, Inserted, Known, Mempool, Rules, Screened, Taken};
use lockstep_p2p::BundleGossip;
use queue::SubmitQueue;
use std::sync::Arc;
use tokio::sync::watch;
use verifier::Verifier;

/// Admission of bundles into the mempool, shared by the RPC server and the gossip inbound
/// path.
///
/// Single submissions (RPC) are coalesced: they queue, and whatever is queued is admitted as
/// one group (see `queue`). Gossip arrives in groups already ([`run_gossip_inbound`]).
pub struct Admission {
    core: Arc<Core>,
    queue: SubmitQueue,
}

/// A bundle to admit, as decoded (with its canonical encoding) or why it could not be.
type Parsed = AdmitResult<(SignedBundle, Bytes)>;

/// What admits a group: the rules' inputs, the pool, the verifier, the gossip to publish
/// new bundles on and the writer that makes acknowledgements durable.
struct Core {
    chain_id: u64,
    limits: Limits,
    mempool: Arc<Mempool>,
    tip: watch::Receiver<Tip>,
    verifier: Verifier,
    gossip: Arc<dyn BundleGossip>,
    disk: Arc<DiskSpace>,
    acks: AckWriter,
    /// Validator set updates are checked against the set of the next height.
    schedule: Arc<Schedule>,
    /// Below this height the node lacks part of the replay window (it joined from a
    /// snapshot) and takes no bundle: it could not tell one included before.
    window_complete_at: u64,
    /// Groups admitted so far (each one lock, one verification hand-off).
    groups: std::sync::atomic::AtomicU64,
}

/// Counts a refusal (`lockstep_mempool_rejected_total`, by reason) and passes it on.
fn reject(e: AdmitError) -> AdmitError {
    metrics::counter!(crate::metrics::REJECTED, "reason" => e.label()).increment(1);
    e
}

/// A decoded bundle on its way through admission.
struct Candidate {
    slot: usize,
    source: Source,
    hash: Hash,
    bundle: SignedBundle,
    encoded: Bytes,
}

impl Admission {
    /// How many groups admission has admitted (each under one lock, with one hand-off to
    /// the verifiers): fewer than the submissions when they were coalesced.
    #[cfg(test)]
    fn groups_admitted(&self) -> u64 {
        self.core.groups.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Starts the verifier threads, the acknowledgement writer (over `log`) and the
    /// submission queue (needs a tokio runtime).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        chain_id: u64,
        schedule: Arc<Schedule>,
        window_complete_at: u64,
        limits: Limits,
        mempool: Arc<Mempool>,
        tip: watch::Receiver<Tip>,
        gossip: Arc<dyn BundleGossip>,
        disk: Arc<DiskSpace>,
        log: Arc<dyn PendingLog>,
    ) -> Arc<Admission> {
        let core = Arc::new(Core {
            chain_id,
            limits,
            mempool,
            tip,
            verifier: Verifier::start(verifier::cores()),
            gossip,
            disk,
            acks: AckWriter::start(log),
            schedule,
            window_complete_at,
            groups: std::sync::atomic::AtomicU64::new(0),
        });
        let queue = SubmitQueue::start(core.clone());
        Arc::new(Admission { core, queue })
    }

    /// Admits an encoded `SignedBundle`. Idempotent: the very copy already pending returns its
    /// hash without being checked again (an included one, once its signature is checked;
    /// another signature of a pending one is refused, 4001). From [`Source::Rpc`], the hash is
    /// returned once the bundle is durable here (see `durable`).
    pub async fn submit_bytes(&self, encoded: Bytes, source: Source) -> AdmitResult<Hash> {
        // Undecodable input needs no queue.
        let bundle = SignedBundle::decode_shared(&encoded, &self.core.limits)
            .map_err(|e| reject(e.into()))?;
        self.queue.submit(bundle, encoded, source).await
    }

    /// Admits a decoded bundle whose canonical encoding is `encoded`.
    pub async fn submit(
        &self,
        bundle: SignedBundle,
        encoded: Bytes,
        source: Source,
    ) -> AdmitResult<Hash> {
        self.queue.submit(bundle, encoded, source).await
    }

    /// Admits many encoded bundles at once (a burst of gossip, say): the same checks and
    /// outcomes as one [`Admission::submit_bytes`] per bundle, in order.
    pub async fn submit_many(&self, encoded: Vec<Bytes>, source: Source) -> Vec<AdmitResult<Hash>> {
        self.core
            .submit_many(encoded, source)
            .await
            .into_iter()
            .map(|r| r.map(|t| t.hash))
            .collect()
    }

    /// Admits a gossip message's bundles ([`Source::Gossip`]): as
    /// [`Admission::submit_many`], with whether each copy taken may be relayed (see
    /// [`Taken`]), for the verdict on the message.
    pub async fn submit_gossip(&self, encoded: Vec<Bytes>) -> Vec<AdmitResult<Taken>> {
        self.core.submit_many(encoded, Source::Gossip).await
    }
}

/// How a screened bundle's signature is checked.
#[derive(Clone, Copy)]
enum Check {
    /// Verified here before, with this signature.
    Done,
    /// A new bundle: verify it, then insert it.
    Verify,
    /// Another copy of a bundle known here (as `Known` says): verify it, then
    /// [`Rules::recheck`]; never inserted.
    Recheck(Known),
}

impl Core {
    async fn submit_many(&self, encoded: Vec<Bytes>, source: Source) -> Vec<AdmitResult<Taken>> {
        let parsed = encoded
            .into_iter()
            .map(|e| match SignedBundle::decode_shared(&e, &self.limits) {
                Ok(b) => (Ok((b, e)), source),
                Err(err) => (Err(reject(err.into())), source),
            })
            .collect();
        self.admit(parsed).await
    }

    /// Admits a group of bundles: one outcome per bundle, in order, with one lock for the
    /// dedupe, the rules ([`Rules::screen`]), one verification request, one lock for the
    /// inserts, one publication of the new bundles submitted here, and one durable write of
    /// every bundle submitted here that is pending, which the group's answers wait for (a
    /// failed write answers those bundles 4006).
    async fn admit(&self, parsed: Vec<(Parsed, Source)>) -> Vec<AdmitResult<Taken>> {
        let mut acks = Acks::default();
        let mut out = self.admit_group(parsed, &mut acks).await;
        let mut records = acks.records;
        if !acks.known.is_empty() {
            // Submitted again while pending (perhaps from gossip, so not yet recorded here):
            // the pool's copy, whose signature was verified, is what is recorded.
            let hashes: Vec<Hash> = acks.known.iter().map(|(_, h)| *h).collect();
            for ((slot, _), a) in acks.known.iter().zip(self.mempool.pending_many(&hashes)) {
                if let Some(a) = a {
                    records.push((*slot, record(&a, acks.latest)));
                }
            }
        }
        let slots: Vec<usize> = records.iter().map(|(slot, _)| *slot).collect();
        let durable = self
            .acks
            .queue(records.into_iter().map(|(_, r)| r).collect())
            .await;
        // The group's new bundles travel together (as few gossip messages as fit), while
        // they are written.
        self.gossip.publish(acks.publish).await;
        if let Err(e) = durable.await {
            for slot in slots {
                out[slot] = Err(reject(AdmitError::Busy(format!(
                    "node busy: the bundle could not be recorded durably ({e}); retry later"
                ))));
            }
        }
        out
    }

    /// [`Core::admit`] up to the inserts: the outcomes, and in `acks` what is to be made
    /// durable and published.
    async fn admit_group(
        &self,
        parsed: Vec<(Parsed, Source)>,
        acks: &mut Acks,
    ) -> Vec<AdmitResult<Taken>> {
        self.groups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut out: Vec<AdmitResult<Taken>> = Vec::with_capacity(parsed.len());
        let mut candidates = Vec::with_capacity(parsed.len());
        for (slot, (p, source)) in parsed.into_iter().enumerate() {
            match p {
                Ok((bundle, encoded)) => {
                    // `encoded` is canonical (it decoded, or was just encoded): hash it as is.
                    let hash = SignedBundle::hash_of_encoding(&encoded);
                    out.push(Ok(Taken { hash, relay: true }));
                    candidates.push(Candidate {
                        slot,
                        source,
                        hash,
                        bundle,
                        encoded,
                    });
                }
                Err(e) => out.push(Err(e)),
            }
        }
        if candidates.is_empty() {
            return out;
        }

        // Known by hash and signature: the hash covers the body only (ADR-023).
        let copies: Vec<(Hash, [u8; 64])> = candidates
            .iter()
            .map(|c| (c.hash, c.bundle.signature))
            .collect();
        let latest = self.tip.borrow().height;
        if latest < self.window_complete_at {
            let why = format!(
                "this node joined from a snapshot and cannot judge bundles until it holds the \
                 replay window (height {}; it is at {latest}); retry later or at another node",
                self.window_complete_at
            );
            for c in &candidates {
                out[c.slot] = Err(reject(AdmitError::Busy(why.clone())));
            }
            return out;
        }
        let known = self.mempool.known_many(&copies);
        acks.latest = latest;
        let rules = Rules::new(self.chain_id, self.limits, latest, self.disk.refusal());
        let mut checked = Vec::with_capacity(candidates.len());
        let mut items = Vec::new();
        for (c, k) in candidates.into_iter().zip(known) {
            // A validator set update the next block could not carry is refused now, rather
            // than acknowledged and left to expire (one that does not decode is the rules').
            if let Some(Ok(u)) = SignedSetUpdate::from_bundle(&c.bundle) {
                if let Err(e) = self.schedule.check(latest + 1, &u) {
                    out[c.slot] = Err(reject(AdmitError::SetUpdate(e)));
                    continue;
                }
            }
            match rules.screen(&c.bundle, c.hash, c.encoded.len(), k, c.source) {
                // Idempotent: its hash is the answer (once it is durable here, if pending).
                Ok(Screened::Known) => {
                    if c.source == Source::Rpc && k == Known::Pending {
                        acks.known.push((c.slot, c.hash));
                    }
                }
                // Included, from a peer: the chain has it; taken, not relayed, not checked.
                Ok(Screened::Included) => {
                    out[c.slot] = Ok(Taken {
                        hash: c.hash,
                        relay: false,
                    })
                }
                Ok(Screened::Recheck(item)) => {
                    items.push(item);
                    checked.push((c, Check::Recheck(k)));
                }
                Ok(Screened::Verify(item)) => {
                    items.push(item);
                    checked.push((c, Check::Verify));
                }
                Ok(Screened::Verified) => checked.push((c, Check::Done)),
                Err(e) => out[c.slot] = Err(reject(e)),
            }
        }
        if checked.is_empty() {
            return out;
        }

        let verdicts = match self.verifier.verify(items).await {
            Ok(v) => v,
            Err(e) => {
                for (c, _) in &checked {
                    out[c.slot] = Err(reject(e.clone()));
                }
                return out;
            }
        };
        let mut verdicts = verdicts.into_iter();
        let mut admitted = Vec::with_capacity(checked.len());
        let mut slots = Vec::with_capacity(checked.len());
        for (c, check) in checked {
            let verified = match check {
                Check::Done => true,
                Check::Verify | Check::Recheck(_) => verdicts.next().unwrap_or(false),
            };
            if let Check::Recheck(known) = check {
                out[c.slot] =
                    Rules::recheck(c.hash, &c.bundle.body.signer, known, verified).map_err(reject);
                continue;
            }
            if !verified {
                out[c.slot] = Err(reject(AdmitError::bad_signature(&c.bundle.body.signer)));
                continue;
            }
            slots.push((
                c.slot,
                c.source,
                c.bundle.body.valid_until,
                c.encoded.clone(),
            ));
            admitted.push((
                Admitted {
                    hash: c.hash,
                    bundle: Arc::new(c.bundle),
                    encoded: c.encoded,
                },
                c.source.origin(),
            ));
        }
        if admitted.is_empty() {
            return out;
        }

        let inserted = self.mempool.insert_many(admitted, rules.next_height());
        let (mut from_rpc, mut from_gossip) = (0u64, 0u64);
        for ((slot, source, valid_until, encoded), r) in slots.into_iter().zip(inserted) {
            let hash = match &out[slot] {
                Ok(t) => t.hash,
                Err(_) => continue,
            };
            let ack = || PendingRecord {
                hash,
                valid_until,
                admitted_at: latest,
                encoded: encoded.clone(),
            };
            match (r, source) {
                (Ok(Inserted::New), Source::Rpc) => {
                    from_rpc += 1;
                    acks.records.push((slot, ack()));
                    acks.publish.push(encoded);
                }
                (Ok(Inserted::New), Source::Gossip) => from_gossip += 1,
                // Pending by another group's hand, whose record may not be written yet.
                (Ok(Inserted::AlreadyPending), Source::Rpc) => acks.records.push((slot, ack())),
                // Another copy of the same body made it into the pool first (in this group or
                // another): this one is not taken (ADR-023).
                (Ok(Inserted::PendingOtherSignature), _) => {
                    out[slot] = Err(reject(AdmitError::OtherSignature {
                        hash: hash.to_string(),
                    }))
                }
                (Ok(_), _) => {}
                (Err(e), _) => out[slot] = Err(reject(e.into())),
            }
        }
        for (source, n) in [(Source::Rpc, from_rpc), (Source::Gossip, from_gossip)] {
            if n > 0 {
                metrics::counter!(crate::metrics::ADMITTED, "source" => source.label())
                    .increment(n);
            }
        }
        out
    }
}

/// What a group's admission leaves to do for its bundles submitted here.
#[derive(Default)]
struct Acks {
    /// The latest decided height when the group was screened.
    latest: u64,
    /// Admitted (new, or pending by another group's hand): to be made durable, by slot.
    records: Vec<(usize, PendingRecord)>,
    /// Already pending when screened: the pool's copy is to be made durable, by slot.
    known: Vec<(usize, Hash)>,
    /// New to this node: to be gossiped.
    publish: Vec<Bytes>,
}

/// The durable record of a pending bundle, admitted when `latest` was decided.
fn record(a: &Admitted, latest: u64) -> PendingRecord {
    PendingRecord {
        hash: a.hash,
        valid_until: a.bundle.body.valid_until,
        admitted_at: latest,
        encoded: a.encoded.clone(),
    }
}

#[cfg(test)]
mod tests;

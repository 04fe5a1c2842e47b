//! Gossip inbound: gossiped bundles admitted in groups, and a verdict on each message so
//! gossipsub forwards the valid ones and scores down peers that send invalid ones. The
//! verdict is the mempool's ([`GossipVerdict`], from each refusal's [`Fault`]); this module
//! only hands it to the network.
//!
//! [`Fault`]: lockstep_mempool::Fault

use super::queue::{drain, CHUNK};
use super::Admission;
use lockstep_bundles::{Hash, SignedBundle};
use lockstep_mempool::{AdmitResult, GossipVerdict, Taken};
use lockstep_p2p::{BundleGossip, Inbound, PeerId, Verdict};
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};
use tracing::debug;

/// Gossip messages being admitted at once.
pub(crate) const GOSSIP_IN_FLIGHT: usize = 2_048;

/// Admits gossiped bundles and reports a verdict on each message. Whatever is queued (up to
/// about `CHUNK` bundles) is admitted as one group.
pub async fn run_gossip_inbound(
    mut inbound: mpsc::Receiver<Inbound>,
    admission: Arc<Admission>,
    gossip: Arc<dyn BundleGossip>,
) {
    let permits = Arc::new(Semaphore::new(GOSSIP_IN_FLIGHT));
    while let Some(first) = inbound.recv().await {
        let (chunk, bundles) = drain(first, &mut inbound, CHUNK, |m| m.items.len());
        let permits_needed = bundles.min(GOSSIP_IN_FLIGHT) as u32;
        let Ok(permit) = permits.clone().acquire_many_owned(permits_needed).await else {
            return;
        };
        let admission = admission.clone();
        let gossip = gossip.clone();
        tokio::spawn(async move {
            let data = chunk.iter().flat_map(|m| m.items.iter().cloned()).collect();
            let mut results = admission.submit_gossip(data).await.into_iter();
            for msg in chunk {
                let outcomes = results.by_ref().take(msg.items.len());
                let v = message_verdict(&msg.from, outcomes);
                gossip.report(msg.id, msg.from, v).await;
            }
            drop(permit);
        });
    }
}

/// The verdict on a message from the outcomes of its bundles ([`GossipVerdict::of_message`]),
/// logging the invalid bundle that rejects it.
fn message_verdict(from: &PeerId, outcomes: impl Iterator<Item = AdmitResult<Taken>>) -> Verdict {
    let outcomes = outcomes.inspect(|r| {
        if let Some(e) = r.as_ref().err().filter(|e| e.is_bad_peer()) {
            debug!(peer = %from, "invalid gossiped bundle: {e}");
        }
    });
    match GossipVerdict::of_message(outcomes) {
        GossipVerdict::Accept => Verdict::Accept,
        GossipVerdict::Ignore => Verdict::Ignore,
        GossipVerdict::Reject => Verdict::Reject,
    }
}

/// Gossip message id of a message's encoded bundles: for one bundle the id of that copy, a
/// tagged hash of its bundle hash and its signature (computed without decoding:
/// `borsh(SignedBundle) = borsh(body) ++ signature`); for several a tagged hash of their ids
/// in order. The id covers the signature (ADR-023): gossipsub remembers the ids it has seen,
/// even of messages it rejected, so an id of the body alone would let a copy with a bad
/// signature, seen first, make the genuine bundle a duplicate.
pub fn gossip_message_id(items: &[&[u8]]) -> Vec<u8> {
    let hash = |data: &[u8]| {
        if data.len() < 64 {
            Hash::tagged(b"lockstep:gossip:malformed", &[data])
        } else {
            let body_hash = SignedBundle::hash_of_encoding(data);
            let signature = &data[data.len() - 64..];
            Hash::tagged(b"lockstep:gossip:bundle", &[&body_hash.0, signature])
        }
    };
    match items {
        [one] => hash(one).0.to_vec(),
        many => {
            let hashes: Vec<Hash> = many.iter().map(|d| hash(d)).collect();
            let parts: Vec<&[u8]> = hashes.iter().map(|h| &h.0[..]).collect();
            Hash::tagged(b"lockstep:gossip:batch", &parts).0.to_vec()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_bundles::BundleError;
    use lockstep_mempool::AdmitError;

    #[test]
    fn one_invalid_bundle_rejects_its_message_and_none_acceptable_ignores_it() {
        let from = PeerId::random();
        let ok = || {
            Ok(Taken {
                hash: Hash::ZERO,
                relay: true,
            })
        };
        let included = || {
            Ok(Taken {
                hash: Hash::ZERO,
                relay: false,
            })
        };
        let bad = || {
            Err(AdmitError::Bundle(BundleError::BadSignature {
                signer: String::new(),
            }))
        };
        let busy = || Err(AdmitError::Busy("full".into()));
        let v = |o: Vec<Result<Taken, AdmitError>>| message_verdict(&from, o.into_iter());
        assert_eq!(v(vec![ok(), ok()]), Verdict::Accept);
        // A copy of an included bundle is not relayed, alone or with the others' fate.
        assert_eq!(v(vec![included()]), Verdict::Ignore);
        assert_eq!(v(vec![included(), ok()]), Verdict::Accept);
        assert_eq!(v(vec![busy(), ok()]), Verdict::Accept);
        assert_eq!(v(vec![ok(), bad(), ok()]), Verdict::Reject);
        assert_eq!(v(vec![busy(), busy()]), Verdict::Ignore);
    }

    #[test]
    fn gossip_message_id_is_the_copy_s_id() {
        let k = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let b = lockstep_client::bundle::sign(&k, 1, 1, 10, vec![(1, vec![1])]);
        let c = lockstep_client::bundle::sign(&k, 1, 2, 10, vec![(1, vec![2; 8])]);
        assert_eq!(
            gossip_message_id(&[&b.encode()]),
            Hash::tagged(b"lockstep:gossip:bundle", &[&b.hash().0, &b.signature])
                .0
                .to_vec()
        );
        assert_eq!(gossip_message_id(&[&[1, 2, 3]]).len(), 32);
        // A batch: neither bundle's id, and its order matters.
        let (eb, ec) = (b.encode(), c.encode());
        let bc = gossip_message_id(&[&eb, &ec]);
        assert_ne!(bc, b.hash().0.to_vec());
        assert_ne!(bc, gossip_message_id(&[&ec, &eb]));
    }

    #[test]
    fn gossip_message_ids_cover_the_signature() {
        // A copy of a bundle with another signature is another message: a bad copy seen
        // first does not make the genuine bundle a duplicate.
        let k = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let b = lockstep_client::bundle::sign(&k, 1, 1, 10, vec![(1, vec![1])]);
        let mut forged = b.clone();
        forged.signature[63] ^= 1;
        let (eb, ef) = (b.encode(), forged.encode());
        assert_ne!(gossip_message_id(&[&eb]), gossip_message_id(&[&ef]));
        let c = lockstep_client::bundle::sign(&k, 1, 2, 10, vec![(1, vec![2])]).encode();
        assert_ne!(gossip_message_id(&[&eb, &c]), gossip_message_id(&[&ef, &c]));
    }
}

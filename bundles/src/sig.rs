//! Consensus-critical ed25519 verification (ZIP-215, as `ed25519-consensus` implements it).
//!
//! Single and batch verification accept exactly the same signatures, so a validator's verdict
//! on a bundle does not depend on whether it checked it alone or in a batch.

use ed25519_consensus::{batch, Signature, VerificationKey, VerificationKeyBytes};

/// Verifies one signature over `msg` by the public key `pk`.
pub fn verify(pk: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    match VerificationKey::try_from(*pk) {
        Ok(vk) => vk.verify(&Signature::from(*sig), msg).is_ok(),
        Err(_) => false,
    }
}

/// One item of a batch: public key, 32-byte message (a hash), signature.
#[derive(Debug, Clone, Copy)]
pub struct Item {
    pub pk: [u8; 32],
    pub msg: [u8; 32],
    pub sig: [u8; 64],
}

/// Verifies a batch; returns one verdict per item, in order.
///
/// The fast path checks the whole batch at once; if that fails, items are checked one by one
/// so that a single bad signature does not condemn the others.
pub fn verify_batch(items: &[Item]) -> Vec<bool> {
    if items.is_empty() {
        return Vec::new();
    }
    if items.len() == 1 {
        let i = &items[0];
        return vec![verify(&i.pk, &i.msg, &i.sig)];
    }
    let mut verifier = batch::Verifier::new();
    for i in items {
        verifier.queue((
            VerificationKeyBytes::from(i.pk),
            Signature::from(i.sig),
            &i.msg[..],
        ));
    }
    if verifier.verify(rand::thread_rng()).is_ok() {
        return vec![true; items.len()];
    }
    items
        .iter()
        .map(|i| verify(&i.pk, &i.msg, &i.sig))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn item(seed: u8, msg: u8) -> Item {
        let k = SigningKey::from_bytes(&[seed; 32]);
        let m = [msg; 32];
        Item {
            pk: k.verifying_key().to_bytes(),
            msg: m,
            sig: k.sign(&m).to_bytes(),
        }
    }

    #[test]
    fn batch_and_single_agree_with_one_bad_item() {
        let mut items: Vec<Item> = (1..=8).map(|s| item(s, s)).collect();
        items[3].sig[0] ^= 1;
        let single: Vec<bool> = items
            .iter()
            .map(|i| verify(&i.pk, &i.msg, &i.sig))
            .collect();
        assert_eq!(verify_batch(&items), single);
        assert_eq!(single.iter().filter(|ok| !**ok).count(), 1);
    }

    #[test]
    fn malformed_public_key_is_rejected_not_panicking() {
        let mut i = item(1, 1);
        i.pk = [0xff; 32];
        assert!(!verify(&i.pk, &i.msg, &i.sig));
        assert_eq!(verify_batch(&[i, item(2, 2)]), vec![false, true]);
    }

    #[test]
    fn small_order_key_signature_gets_the_same_verdict_alone_and_in_batch() {
        // ZIP-215 accepts the identity point as a key with signature (R = identity, s = 0)
        // for any message; batch verification must reach the same verdict.
        let mut pk = [0u8; 32];
        pk[0] = 1; // encoding of the identity point
        let mut sig = [0u8; 64];
        sig[0] = 1; // R = identity, s = 0
        let odd = Item {
            pk,
            msg: [5; 32],
            sig,
        };
        let single = verify(&odd.pk, &odd.msg, &odd.sig);
        assert_eq!(verify_batch(&[odd, item(3, 3)]), vec![single, true]);
    }
}

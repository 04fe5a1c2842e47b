//! Consensus-critical ed25519 verification (ZIP-215, as `ed25519-zebra` implements it).
//!
//! `ed25519-zebra` is the ZIP-215 reference; it runs on curve25519-dalek 4, which picks its
//! AVX2 backend at run time where the CPU has it (`ed25519-consensus`, its fork, is tied to
//! curve25519-dalek-ng's serial backend: about 1.4x slower single and 1.3x slower in batches
//! of 64 on the benchmark machine).
//!
//! Single and batch verification accept exactly the same signatures, so a validator's verdict
//! on a bundle does not depend on whether it checked it alone or in a batch.

use ed25519_zebra::{batch, Signature, VerificationKey, VerificationKeyBytes};

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

    /// The small-order point encodings, canonical and not, that ZIP-215's test vectors are
    /// built from.
    const SMALL_ORDER: [&str; 14] = [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        // Non-canonical encodings of the same points.
        "0100000000000000000000000000000000000000000000000000000000000080",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ];

    fn point(h: &str) -> [u8; 32] {
        let mut b = [0u8; 32];
        hex::decode_to_slice(h, &mut b).unwrap();
        b
    }

    /// Votes are checked by Malachite with `ed25519-consensus`; bundles and certificates here
    /// with `ed25519-zebra`. On every (key, R) pair of small-order encodings with s = 0 (the
    /// edge cases where ed25519 verifiers disagree), both accept, as ZIP-215 says, alone and in
    /// a batch beside a good signature.
    #[test]
    fn zip215_edge_cases_get_the_same_verdict_here_and_in_malachites_verifier() {
        let msg = [7u8; 32];
        for a in SMALL_ORDER {
            for r in SMALL_ORDER {
                let pk = point(a);
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(&point(r));
                let ours = verify(&pk, &msg, &sig);
                let theirs = ed25519_consensus::VerificationKey::try_from(pk)
                    .and_then(|vk| vk.verify(&ed25519_consensus::Signature::from(sig), &msg))
                    .is_ok();
                assert!(ours, "ZIP-215 accepts A={a} R={r} s=0");
                assert_eq!(ours, theirs, "A={a} R={r}");
                let odd = Item { pk, msg, sig };
                assert_eq!(verify_batch(&[odd, item(9, 9)]), vec![true, true]);
            }
        }
        // A non-canonical s (s >= l) is refused by both.
        let k = SigningKey::from_bytes(&[4; 32]);
        let mut sig = k.sign(&msg).to_bytes();
        sig[63] |= 0xf0;
        let pk = k.verifying_key().to_bytes();
        assert!(!verify(&pk, &msg, &sig));
        assert!(ed25519_consensus::VerificationKey::try_from(pk)
            .unwrap()
            .verify(&ed25519_consensus::Signature::from(sig), &msg)
            .is_err());
    }
}

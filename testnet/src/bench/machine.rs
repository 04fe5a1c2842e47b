//! What the machine and the node processes are measured by: the raw batch-verification
//! rate (the ceiling), CPU seconds and the kernel's resident-memory figures.

use super::*;

/// How many times the raw verification rate is measured; the median is reported, since this
/// machine's speed drifts between seconds.
pub const RAW_VERIFY_REPEATS: usize = 5;

/// The machine's raw ed25519 batch-verification rate on all cores, on batches of distinct
/// keys (one key per signature): the median of [`RAW_VERIFY_REPEATS`] passes over `samples`
/// signatures.
pub fn raw_verify_rate(samples: usize) -> RawVerify {
    raw_verify_rate_with(samples, 1)
}

/// [`raw_verify_rate`] with `signatures_per_key` consecutive signatures made by one key (as a
/// load of that many bundles per signer makes them).
pub fn raw_verify_rate_with(samples: usize, signatures_per_key: usize) -> RawVerify {
    let per_key = signatures_per_key.max(1);
    let items: Vec<Item> = (0..samples)
        .map(|i| {
            let k = ed25519_dalek::SigningKey::from_bytes(
                &Hash::tagged(b"raw", &[&(i / per_key).to_le_bytes()]).0,
            );
            let msg = Hash::tagged(b"msg", &[&i.to_le_bytes()]).0;
            use ed25519_dalek::Signer;
            Item {
                pk: k.verifying_key().to_bytes(),
                msg,
                sig: k.sign(&msg).to_bytes(),
            }
        })
        .collect();
    let mut rates: Vec<f64> = (0..RAW_VERIFY_REPEATS)
        .map(|_| lockstep_node::admission::raw_verify_rate(&items))
        .collect();
    rates.sort_by(f64::total_cmp);
    RawVerify {
        per_s: rates[rates.len() / 2],
        signatures_per_key: per_key,
    }
}

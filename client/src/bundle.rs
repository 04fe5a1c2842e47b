//! Building, signing and encoding bundles.

use crate::api::{BundleJson, LegJson};
use ed25519_dalek::SigningKey;
use lockstep_bundles::hash::{decode_hex, decode_hex_array, encode_hex};
use lockstep_bundles::{BundleBody, Leg, SignedBundle};

/// Signs a bundle with `key` (the signer field is the key's public key).
pub fn sign(
    key: &SigningKey,
    chain_id: u64,
    nonce: u64,
    valid_until: u64,
    legs: Vec<(u64, Vec<u8>)>,
) -> SignedBundle {
    BundleBody {
        chain_id,
        signer: key.verifying_key().to_bytes(),
        nonce,
        valid_until,
        legs: legs
            .into_iter()
            .map(|(rollup_id, data)| Leg {
                rollup_id,
                data: data.into(),
            })
            .collect(),
    }
    .sign(key)
}

/// The `seq_sendRawBundle` parameter: `0x` + hex of the Borsh encoding.
pub fn to_raw_hex(bundle: &SignedBundle) -> String {
    encode_hex(&bundle.encode())
}

/// The `seq_sendBundle` parameter.
pub fn to_json(bundle: &SignedBundle) -> BundleJson {
    let b = &bundle.body;
    BundleJson {
        chain_id: b.chain_id,
        signer: encode_hex(&b.signer),
        nonce: b.nonce,
        valid_until: b.valid_until,
        legs: b
            .legs
            .iter()
            .map(|l| LegJson {
                rollup_id: l.rollup_id,
                data: encode_hex(&l.data),
            })
            .collect(),
        signature: encode_hex(&bundle.signature),
    }
}

/// Parses the JSON form; the error names the field that is wrong.
pub fn from_json(j: &BundleJson) -> Result<SignedBundle, String> {
    let signer = decode_hex_array::<32>(&j.signer).map_err(|e| format!("signer: {e}"))?;
    let signature = decode_hex_array::<64>(&j.signature).map_err(|e| format!("signature: {e}"))?;
    let legs = j
        .legs
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let data = decode_hex(&l.data).map_err(|e| format!("legs[{i}].data: {e}"))?;
            Ok(Leg {
                rollup_id: l.rollup_id,
                data: data.into(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(SignedBundle {
        body: BundleBody {
            chain_id: j.chain_id,
            signer,
            nonce: j.nonce,
            valid_until: j.valid_until,
            legs,
        },
        signature,
    })
}

/// What [`sign_many`] signs: `count` bundles of `legs` legs (rollups 1..=legs) of `leg_bytes`
/// bytes each, a new signer every `per_signer` bundles, all signers derived from `salt`.
#[derive(Debug, Clone, Copy)]
pub struct LoadSpec {
    pub chain_id: u64,
    pub valid_until: u64,
    pub count: usize,
    pub legs: usize,
    pub leg_bytes: usize,
    pub per_signer: usize,
    pub salt: u64,
}

/// Signs a load of distinct bundles on all cores (for benchmarks and load tests).
pub fn sign_many(spec: LoadSpec) -> Vec<SignedBundle> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let per_thread = spec.count.div_ceil(threads).max(1);
    let one = move |i: usize| {
        let signer = (i / spec.per_signer.max(1)) as u64;
        let seed = lockstep_bundles::Hash::tagged(
            b"lockstep:load-signer",
            &[&spec.salt.to_le_bytes(), &signer.to_le_bytes()],
        );
        let key = SigningKey::from_bytes(&seed.0);
        let legs = (0..spec.legs)
            .map(|l| (l as u64 + 1, vec![(i % 251) as u8; spec.leg_bytes]))
            .collect();
        sign(
            &key,
            spec.chain_id,
            spec.salt.wrapping_shl(32).wrapping_add(i as u64),
            spec.valid_until,
            legs,
        )
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t * per_thread..((t + 1) * per_thread).min(spec.count))
                        .map(one)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_many_makes_distinct_valid_bundles_in_order() {
        let spec = LoadSpec {
            chain_id: 1,
            valid_until: 9,
            count: 50,
            legs: 2,
            leg_bytes: 3,
            per_signer: 7,
            salt: 4,
        };
        let b = sign_many(spec);
        assert_eq!(b.len(), 50);
        let hashes: std::collections::HashSet<_> = b.iter().map(|x| x.hash()).collect();
        assert_eq!(hashes.len(), 50);
        assert!(b
            .iter()
            .all(|x| x.verify_signature(&x.hash()).is_ok() && x.body.legs.len() == 2));
        assert_eq!(b[0].body.signer, b[6].body.signer);
        assert_ne!(b[0].body.signer, b[7].body.signer);
    }

    #[test]
    fn one_bundle_per_signer_gives_every_bundle_its_own_key() {
        let b = sign_many(LoadSpec {
            chain_id: 1,
            valid_until: 9,
            count: 40,
            legs: 1,
            leg_bytes: 3,
            per_signer: 1,
            salt: 4,
        });
        let signers: std::collections::HashSet<_> = b.iter().map(|x| x.body.signer).collect();
        assert_eq!(signers.len(), 40);
    }

    #[test]
    fn json_round_trip_and_field_errors() {
        let k = SigningKey::from_bytes(&[3; 32]);
        let b = sign(&k, 7, 1, 50, vec![(1, vec![1, 2]), (2, vec![])]);
        assert_eq!(from_json(&to_json(&b)), Ok(b.clone()));
        let mut j = to_json(&b);
        j.legs[1].data = "zz".into();
        assert!(from_json(&j).unwrap_err().starts_with("legs[1].data"));
        let raw = to_raw_hex(&b);
        assert!(raw.starts_with("0x"));
    }
}

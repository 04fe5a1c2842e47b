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
            .map(|(rollup_id, data)| Leg { rollup_id, data })
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
                data,
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

#[cfg(test)]
mod tests {
    use super::*;

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

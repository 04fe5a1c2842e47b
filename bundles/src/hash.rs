//! 32-byte SHA-256 hashes, domain-separated, shown as `0x`-prefixed lower-case hex.

use borsh::{BorshDeserialize, BorshSerialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// A map keyed by hashes or public keys: foldhash with a per-process random seed. Keys are
/// SHA-256 outputs, so SipHash's extra strength buys nothing an attacker could not get by
/// grinding anyway, and it was the largest single cost of admission's bookkeeping.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// A set of hashes or public keys; see [`FastMap`].
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// A SHA-256 digest.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub const ZERO: Hash = Hash([0; 32]);

    /// SHA-256 over `tag ++ parts…`: every hash in the protocol is domain-separated by a tag.
    pub fn tagged(tag: &[u8], parts: &[&[u8]]) -> Hash {
        let mut h = Sha256::new();
        h.update(tag);
        for p in parts {
            h.update(p);
        }
        Hash(h.finalize().into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// `0x` + 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

/// Why a string is not a hash.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HexError {
    #[error("expected a 0x-prefixed hex string")]
    MissingPrefix,
    #[error("invalid hex: {0}")]
    Invalid(String),
    #[error("expected {expected} bytes, got {got}")]
    Length { expected: usize, got: usize },
}

/// Decodes `0x`-prefixed hex (either case) into bytes.
pub fn decode_hex(s: &str) -> Result<Vec<u8>, HexError> {
    let body = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or(HexError::MissingPrefix)?;
    if body.len() % 2 != 0 {
        return Err(HexError::Invalid("odd number of digits".into()));
    }
    // Straight into a buffer of the right size, SIMD where the CPU has it: bundles sent as
    // raw hex are decoded on the RPC path, and a 64 KiB leg is 128 KiB of hex.
    let mut out = vec![0u8; body.len() / 2];
    const_hex::decode_to_slice(body, &mut out).map_err(|e| HexError::Invalid(e.to_string()))?;
    Ok(out)
}

/// Decodes `0x`-prefixed hex of exactly `N` bytes.
pub fn decode_hex_array<const N: usize>(s: &str) -> Result<[u8; N], HexError> {
    let v = decode_hex(s)?;
    let got = v.len();
    v.try_into()
        .map_err(|_| HexError::Length { expected: N, got })
}

/// `0x` + lower-case hex.
pub fn encode_hex(bytes: &[u8]) -> String {
    // One allocation, SIMD where the CPU has it (`hex::encode` goes through a char iterator
    // and `format!` copies again); batches with 64 KiB legs are mostly hex.
    let mut out = vec![0u8; 2 + 2 * bytes.len()];
    out[..2].copy_from_slice(b"0x");
    // Cannot fail: the output is exactly twice the input's length.
    let _ = const_hex::encode_to_slice(bytes, &mut out[2..]);
    String::from_utf8(out).unwrap_or_default()
}

impl FromStr for Hash {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode_hex_array::<32>(s).map(Hash)
    }
}

impl serde::Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize<'de>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let h = Hash::tagged(b"t", &[b"x"]);
        assert_eq!(h.to_hex().parse::<Hash>(), Ok(h));
        assert_eq!("00".parse::<Hash>(), Err(HexError::MissingPrefix));
        assert!(matches!("0xzz".parse::<Hash>(), Err(HexError::Invalid(_))));
        assert_eq!(
            "0x00".parse::<Hash>(),
            Err(HexError::Length {
                expected: 32,
                got: 1
            })
        );
    }

    #[test]
    fn encode_hex_is_prefixed_lower_case_and_decodes_back() {
        assert_eq!(encode_hex(&[]), "0x");
        assert_eq!(encode_hex(&[0x00, 0xab, 0xff, 0x10]), "0x00abff10");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(encode_hex(&all), format!("0x{}", hex::encode(&all)));
        assert_eq!(decode_hex(&encode_hex(&all)).unwrap(), all);
    }

    proptest::proptest! {
        /// The SIMD codec agrees with the `hex` crate's plain one on every input, valid or not.
        #[test]
        fn hex_codec_agrees_with_the_reference(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300), junk in "[0-9a-fA-FxX g]{0,80}") {
            proptest::prop_assert_eq!(encode_hex(&bytes), format!("0x{}", hex::encode(&bytes)));
            proptest::prop_assert_eq!(decode_hex(&format!("0x{}", hex::encode_upper(&bytes))).ok(), Some(bytes.clone()));
            let ours = decode_hex(&format!("0x{junk}")).ok();
            proptest::prop_assert_eq!(ours, hex::decode(&junk).ok());
        }
    }

    #[test]
    fn tags_separate_domains() {
        assert_ne!(Hash::tagged(b"a", &[b"x"]), Hash::tagged(b"b", &[b"x"]));
    }
}

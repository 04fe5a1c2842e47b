//! `SignedBundle` v1 (protocol §1): Borsh encoding, hash, signature and stateless validity.

use crate::hash::Hash;
use crate::limits::Limits;
use crate::sig;
use borsh::{BorshDeserialize, BorshSerialize};
use bytes::Bytes;
use ed25519_dalek::{Signer as _, SigningKey};
use std::ops::Range;

/// Domain tag of a bundle hash.
pub const BUNDLE_HASH_TAG: &[u8] = b"lockstep:bundle:v1";
/// The smallest encoding a `SignedBundle` can have (no legs): chain id, signer, nonce,
/// `valid_until`, the leg count and the signature. Bounds how many bundles a block can hold.
pub const MIN_ENCODED_BYTES: usize = 8 + 32 + 8 + 8 + 4 + 64;

/// One rollup's part of a bundle. `data` is shared, not copied: a bundle decoded with
/// [`SignedBundle::decode_shared`] points into the buffer it arrived in, so the pool, blocks
/// and proposals hold one copy of each leg however often the bundle is cloned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    pub rollup_id: u64,
    pub data: Bytes,
}

// Borsh as if `data` were a `Vec<u8>` (u32 length, then the bytes): the protocol's layout.
impl BorshSerialize for Leg {
    fn serialize<W: std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        self.rollup_id.serialize(w)?;
        self.data[..].serialize(w)
    }
}

impl BorshDeserialize for Leg {
    fn deserialize_reader<R: std::io::Read>(r: &mut R) -> std::io::Result<Self> {
        let rollup_id = u64::deserialize_reader(r)?;
        let data = Vec::<u8>::deserialize_reader(r)?;
        Ok(Leg {
            rollup_id,
            data: Bytes::from(data),
        })
    }
}

/// What the signer signs (through its hash).
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BundleBody {
    pub chain_id: u64,
    pub signer: [u8; 32],
    pub nonce: u64,
    pub valid_until: u64,
    pub legs: Vec<Leg>,
}

/// A bundle with its ed25519 signature over `bundle_hash`.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedBundle {
    pub body: BundleBody,
    pub signature: [u8; 64],
}

/// Why a bundle is refused. Each variant maps to one protocol error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("signature does not verify for signer {signer}")]
    BadSignature { signer: String },
    #[error("wrong chain id: bundle is for chain {got}, this network is chain {expected}")]
    WrongChain { expected: u64, got: u64 },
    #[error("expired: valid_until {valid_until} is below the next height {next_height}")]
    Expired { valid_until: u64, next_height: u64 },
    #[error(
        "valid_until {valid_until} is too far ahead: at most {max} (latest height + max_ttl {max_ttl})"
    )]
    TooFarAhead {
        valid_until: u64,
        max: u64,
        max_ttl: u64,
    },
    #[error("bundle too large: {size} encoded bytes, the limit is {max}")]
    TooLarge { size: usize, max: u32 },
    #[error("too many legs: {legs}, the limit is {max}")]
    TooManyLegs { legs: usize, max: u32 },
    #[error("a bundle needs at least one leg")]
    NoLegs,
    #[error("not decodable as a SignedBundle: {0}")]
    Undecodable(String),
    #[error("validator set update refused: {0}")]
    SetUpdate(#[from] crate::set_update::SetUpdateError),
}

impl BundleError {
    /// The protocol error code (4001–4005) for this rejection.
    pub fn code(&self) -> i32 {
        match self {
            BundleError::BadSignature { .. } => 4001,
            BundleError::WrongChain { .. } => 4002,
            BundleError::Expired { .. } | BundleError::TooFarAhead { .. } => 4003,
            BundleError::TooLarge { .. }
            | BundleError::TooManyLegs { .. }
            | BundleError::NoLegs => 4004,
            BundleError::Undecodable(_) => 4005,
            BundleError::SetUpdate(_) => 4008,
        }
    }

    /// A short, stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            BundleError::BadSignature { .. } => "bad_signature",
            BundleError::WrongChain { .. } => "wrong_chain",
            BundleError::Expired { .. } => "expired",
            BundleError::TooFarAhead { .. } => "too_far_ahead",
            BundleError::TooLarge { .. } => "too_large",
            BundleError::TooManyLegs { .. } => "too_many_legs",
            BundleError::NoLegs => "no_legs",
            BundleError::Undecodable(_) => "undecodable",
            BundleError::SetUpdate(_) => "set_update",
        }
    }
}

fn check_size(size: usize, limits: &Limits) -> Result<(), BundleError> {
    if size > limits.max_bundle_bytes as usize {
        return Err(BundleError::TooLarge {
            size,
            max: limits.max_bundle_bytes,
        });
    }
    Ok(())
}

/// Reads a bundle's encoding front to back.
struct Cursor<'a> {
    buf: &'a Bytes,
    at: usize,
}

impl Cursor<'_> {
    fn left(&self) -> usize {
        self.buf.len() - self.at
    }

    fn error(&self, what: String) -> BundleError {
        BundleError::Undecodable(format!(
            "{what} (at byte {} of {})",
            self.at,
            self.buf.len()
        ))
    }

    /// The range of the next `n` bytes.
    fn take(&mut self, n: usize) -> Result<Range<usize>, BundleError> {
        if n > self.left() {
            return Err(self.error(format!("input ends {} bytes short", n - self.left())));
        }
        self.at += n;
        Ok(self.at - n..self.at)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BundleError> {
        let r = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[r]);
        Ok(out)
    }

    fn u64(&mut self) -> Result<u64, BundleError> {
        self.array().map(u64::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, BundleError> {
        self.array().map(u32::from_le_bytes)
    }
}

/// The heights against which a bundle's `valid_until` is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The height the bundle would be included at (at the earliest).
    pub next_height: u64,
    /// Largest acceptable `valid_until`: latest decided height + `max_ttl`.
    pub max_valid_until: u64,
    pub max_ttl: u64,
}

impl Window {
    /// The window for a node whose latest decided height is `latest`.
    pub fn after(latest: u64, limits: &Limits) -> Window {
        Window {
            next_height: latest.saturating_add(1),
            max_valid_until: latest.saturating_add(limits.max_ttl),
            max_ttl: limits.max_ttl,
        }
    }
}

impl BundleBody {
    /// `SHA-256(b"lockstep:bundle:v1" ++ borsh(body))`.
    pub fn hash(&self) -> Hash {
        Hash::tagged(BUNDLE_HASH_TAG, &[&borsh::to_vec(self).unwrap_or_default()])
    }

    /// Signs the body with `key`; `signer` must be `key`'s public key.
    pub fn sign(self, key: &SigningKey) -> SignedBundle {
        let hash = self.hash();
        let signature = key.sign(hash.as_bytes()).to_bytes();
        SignedBundle {
            body: self,
            signature,
        }
    }

    /// The rollup id of every leg, in leg order.
    pub fn rollup_ids(&self) -> Vec<u64> {
        self.legs.iter().map(|l| l.rollup_id).collect()
    }
}

impl SignedBundle {
    /// Decodes a bundle, refusing anything over `max_bundle_bytes` before decoding it. The
    /// legs share one copy of `bytes`.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<SignedBundle, BundleError> {
        check_size(bytes.len(), limits)?;
        Self::decode_shared(&Bytes::copy_from_slice(bytes), limits)
    }

    /// Decodes a bundle whose legs point into `encoded` (no copy). Accepts exactly what
    /// Borsh accepts for a `SignedBundle`: the protocol layout, nothing left over.
    pub fn decode_shared(encoded: &Bytes, limits: &Limits) -> Result<SignedBundle, BundleError> {
        check_size(encoded.len(), limits)?;
        let mut c = Cursor {
            buf: encoded,
            at: 0,
        };
        let chain_id = c.u64()?;
        let signer = c.array()?;
        let nonce = c.u64()?;
        let valid_until = c.u64()?;
        let count = c.u32()? as usize;
        // Every leg takes at least 12 bytes (rollup id and length), and the signature 64:
        // refuse an impossible count before reserving room for it.
        if count > c.left().saturating_sub(64) / 12 {
            return Err(c.error(format!("{count} legs cannot fit")));
        }
        let mut legs = Vec::with_capacity(count);
        for _ in 0..count {
            let rollup_id = c.u64()?;
            let len = c.u32()? as usize;
            let data = encoded.slice(c.take(len)?);
            legs.push(Leg { rollup_id, data });
        }
        let signature = c.array()?;
        if c.left() > 0 {
            return Err(c.error(format!("{} bytes left over", c.left())));
        }
        Ok(SignedBundle {
            body: BundleBody {
                chain_id,
                signer,
                nonce,
                valid_until,
                legs,
            },
            signature,
        })
    }

    /// The canonical Borsh encoding.
    pub fn encode(&self) -> Vec<u8> {
        // Encoding into a Vec cannot fail: the types hold no maps or floats.
        borsh::to_vec(self).unwrap_or_default()
    }

    pub fn hash(&self) -> Hash {
        self.body.hash()
    }

    /// The bundle hash computed from the bundle's canonical encoding without decoding or
    /// re-encoding it: `borsh(SignedBundle) = borsh(body) ++ signature`. For bytes that
    /// [`SignedBundle::decode`] accepts this equals `decode(bytes).hash()`.
    pub fn hash_of_encoding(encoded: &[u8]) -> Hash {
        let body = &encoded[..encoded.len().saturating_sub(64)];
        Hash::tagged(BUNDLE_HASH_TAG, &[body])
    }

    /// Every rule that needs neither the signature nor any state beyond the window:
    /// size, leg count, chain id and the `valid_until` window, in that order.
    pub fn check_static(
        &self,
        encoded_len: usize,
        chain_id: u64,
        window: &Window,
        limits: &Limits,
    ) -> Result<(), BundleError> {
        if encoded_len > limits.max_bundle_bytes as usize {
            return Err(BundleError::TooLarge {
                size: encoded_len,
                max: limits.max_bundle_bytes,
            });
        }
        if self.body.legs.is_empty() {
            return Err(BundleError::NoLegs);
        }
        if self.body.legs.len() > limits.max_legs as usize {
            return Err(BundleError::TooManyLegs {
                legs: self.body.legs.len(),
                max: limits.max_legs,
            });
        }
        if self.body.chain_id != chain_id {
            return Err(BundleError::WrongChain {
                expected: chain_id,
                got: self.body.chain_id,
            });
        }
        if self.body.valid_until < window.next_height {
            return Err(BundleError::Expired {
                valid_until: self.body.valid_until,
                next_height: window.next_height,
            });
        }
        if self.body.valid_until > window.max_valid_until {
            return Err(BundleError::TooFarAhead {
                valid_until: self.body.valid_until,
                max: window.max_valid_until,
                max_ttl: window.max_ttl,
            });
        }
        // A leg for the sequencer's own rollup is a validator set update: it must be the
        // bundle's only leg and decode (whether it is authorized depends on the chain's state,
        // checked where that is known).
        if let Some(Err(e)) = crate::set_update::SignedSetUpdate::from_bundle(self) {
            return Err(e.into());
        }
        Ok(())
    }

    /// Verifies the signature alone (ZIP-215, the same verdict as batch verification).
    pub fn verify_signature(&self, hash: &Hash) -> Result<(), BundleError> {
        if sig::verify(&self.body.signer, hash.as_bytes(), &self.signature) {
            Ok(())
        } else {
            Err(BundleError::BadSignature {
                signer: crate::hash::encode_hex(&self.body.signer),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn no_bundle_encodes_below_the_minimum() {
        let mut b = body(&key(1));
        b.legs.clear();
        let empty = SignedBundle {
            body: b,
            signature: [0; 64],
        };
        assert_eq!(empty.encode().len(), MIN_ENCODED_BYTES);
    }

    fn body(k: &SigningKey) -> BundleBody {
        BundleBody {
            chain_id: 7,
            signer: k.verifying_key().to_bytes(),
            nonce: 1,
            valid_until: 100,
            legs: vec![
                Leg {
                    rollup_id: 1,
                    data: vec![1, 2].into(),
                },
                Leg {
                    rollup_id: 2,
                    data: vec![].into(),
                },
            ],
        }
    }

    #[test]
    fn encoding_matches_the_protocol_layout() {
        let k = key(1);
        let b = body(&k).sign(&k);
        let enc = b.encode();
        // chain_id, signer, nonce, valid_until, legs (u32 count, each: u64 + u32 len + data), sig
        let mut expected = Vec::new();
        expected.extend_from_slice(&7u64.to_le_bytes());
        expected.extend_from_slice(&k.verifying_key().to_bytes());
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.extend_from_slice(&100u64.to_le_bytes());
        expected.extend_from_slice(&2u32.to_le_bytes());
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.extend_from_slice(&2u32.to_le_bytes());
        expected.extend_from_slice(&[1, 2]);
        expected.extend_from_slice(&2u64.to_le_bytes());
        expected.extend_from_slice(&0u32.to_le_bytes());
        expected.extend_from_slice(&b.signature);
        assert_eq!(enc, expected);
        let hash = Hash::tagged(BUNDLE_HASH_TAG, &[&expected[..expected.len() - 64]]);
        assert_eq!(b.hash(), hash);
    }

    #[test]
    fn signed_bundle_verifies_and_tampering_breaks_it() {
        let k = key(2);
        let b = body(&k).sign(&k);
        assert!(b.verify_signature(&b.hash()).is_ok());
        let mut t = b.clone();
        t.body.nonce += 1;
        assert_eq!(t.verify_signature(&t.hash()).unwrap_err().code(), 4001);
    }

    #[test]
    fn static_checks_map_to_protocol_codes() {
        let k = key(3);
        let limits = Limits::default();
        let w = Window::after(10, &limits);
        let ok = body(&k).sign(&k);
        assert!(ok.check_static(100, 7, &w, &limits).is_ok());
        assert_eq!(
            ok.check_static(100, 8, &w, &limits).unwrap_err().code(),
            4002
        );
        let mut expired = body(&k);
        expired.valid_until = 10;
        let e = expired
            .sign(&k)
            .check_static(100, 7, &w, &limits)
            .unwrap_err();
        assert!(matches!(
            e,
            BundleError::Expired {
                valid_until: 10,
                next_height: 11
            }
        ));
        let mut far = body(&k);
        far.valid_until = 10 + limits.max_ttl + 1;
        assert_eq!(
            far.sign(&k)
                .check_static(100, 7, &w, &limits)
                .unwrap_err()
                .code(),
            4003
        );
        let mut at_edge = body(&k);
        at_edge.valid_until = 10 + limits.max_ttl;
        assert!(at_edge.sign(&k).check_static(100, 7, &w, &limits).is_ok());
        let mut many = body(&k);
        many.legs = vec![
            Leg {
                rollup_id: 1,
                data: vec![].into()
            };
            17
        ];
        assert_eq!(
            many.sign(&k)
                .check_static(100, 7, &w, &limits)
                .unwrap_err()
                .code(),
            4004
        );
        let mut none = body(&k);
        none.legs.clear();
        assert_eq!(
            none.sign(&k).check_static(100, 7, &w, &limits).unwrap_err(),
            BundleError::NoLegs
        );
        assert_eq!(
            ok.check_static(200_000, 7, &w, &limits).unwrap_err().code(),
            4004
        );
    }

    #[test]
    fn decoded_legs_share_the_buffer_they_arrived_in() {
        let k = key(6);
        let encoded = Bytes::from(body(&k).sign(&k).encode());
        let b = SignedBundle::decode_shared(&encoded, &Limits::default()).unwrap();
        let range = encoded.as_ptr_range();
        assert_eq!(b.body.legs[0].data, vec![1, 2]);
        assert!(range.contains(&b.body.legs[0].data.as_ptr()));
    }

    #[test]
    fn decode_refuses_oversized_input_before_decoding() {
        let limits = Limits {
            max_bundle_bytes: 200,
            ..Limits::default()
        };
        let err = SignedBundle::decode(&[0u8; 201], &limits).unwrap_err();
        assert!(matches!(
            err,
            BundleError::TooLarge {
                size: 201,
                max: 200
            }
        ));
    }

    proptest! {
        #[test]
        fn decode_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = SignedBundle::decode(&bytes, &Limits::default());
        }

        #[test]
        fn encode_decode_round_trip(
            chain_id: u64, nonce: u64, valid_until: u64,
            legs in proptest::collection::vec((any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..8),
        ) {
            let k = key(9);
            let b = BundleBody {
                chain_id, signer: k.verifying_key().to_bytes(), nonce, valid_until,
                legs: legs.into_iter().map(|(rollup_id, data)| Leg { rollup_id, data: data.into() }).collect(),
            }.sign(&k);
            let enc = b.encode();
            prop_assert_eq!(SignedBundle::hash_of_encoding(&enc), b.hash());
            prop_assert_eq!(SignedBundle::decode(&enc, &Limits::default()), Ok(b));
        }

        /// The hand-written decoder accepts exactly what Borsh accepts, with the same value:
        /// on garbage, and on valid encodings cut short, lengthened or with one byte changed
        /// (most often a count or a length).
        #[test]
        fn decoding_agrees_with_borsh(
            garbage in proptest::collection::vec(any::<u8>(), 0..256),
            legs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 0..4),
            cut in any::<proptest::sample::Index>(),
            flip in any::<proptest::sample::Index>(),
            to in any::<u8>(),
            extra in proptest::collection::vec(any::<u8>(), 0..4),
        ) {
            let k = key(5);
            let mut b = body(&k);
            b.legs = legs.into_iter().enumerate().map(|(i, d)| Leg { rollup_id: i as u64 + 1, data: d.into() }).collect();
            let enc = b.sign(&k).encode();
            let mut flipped = enc.clone();
            flipped[flip.index(enc.len())] = to;
            let mut longer = enc.clone();
            longer.extend(&extra);
            for input in [garbage, enc[..cut.index(enc.len())].to_vec(), flipped, longer] {
                let ours = SignedBundle::decode(&input, &Limits::default());
                let theirs = borsh::from_slice::<SignedBundle>(&input);
                prop_assert_eq!(ours.as_ref().ok(), theirs.as_ref().ok());
                if let Err(e) = ours {
                    prop_assert_eq!(e.code(), 4005);
                }
            }
        }

        #[test]
        fn trailing_bytes_are_refused(extra in 1usize..8) {
            let k = key(4);
            let mut enc = body(&k).sign(&k).encode();
            enc.extend(std::iter::repeat_n(0u8, extra));
            prop_assert_eq!(SignedBundle::decode(&enc, &Limits::default()).unwrap_err().code(), 4005);
        }
    }
}

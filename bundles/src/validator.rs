//! Validators, addresses and the validator set that signs commit certificates.

use crate::hash::{decode_hex_array, encode_hex, HexError};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// A validator address: the first 20 bytes of SHA-256 of its ed25519 public key.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Address(pub [u8; 20]);

impl Address {
    pub fn from_public_key(pk: &[u8; 32]) -> Address {
        let digest: [u8; 32] = Sha256::digest(pk).into();
        let mut a = [0u8; 20];
        a.copy_from_slice(&digest[..20]);
        Address(a)
    }

    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl FromStr for Address {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode_hex_array::<20>(s).map(Address)
    }
}

impl Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as Deserialize<'de>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One validator: its key and voting power.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Validator {
    pub address: Address,
    pub public_key: [u8; 32],
    pub voting_power: u64,
}

impl Validator {
    pub fn new(public_key: [u8; 32], voting_power: u64) -> Validator {
        Validator {
            address: Address::from_public_key(&public_key),
            public_key,
            voting_power,
        }
    }
}

/// Why a validator set is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidatorSetError {
    #[error("the validator set is empty")]
    Empty,
    #[error("validator {0} has zero voting power")]
    ZeroPower(Address),
    #[error("validator {0} appears twice")]
    Duplicate(Address),
    #[error("total voting power overflows")]
    Overflow,
}

/// The validators, sorted by address, with their total voting power.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    total_power: u64,
}

impl ValidatorSet {
    /// Builds a set; refuses an empty set, zero power, duplicates and power overflow.
    pub fn new(mut validators: Vec<Validator>) -> Result<ValidatorSet, ValidatorSetError> {
        if validators.is_empty() {
            return Err(ValidatorSetError::Empty);
        }
        validators.sort_by_key(|v| v.address);
        let mut total: u64 = 0;
        for (i, v) in validators.iter().enumerate() {
            if v.voting_power == 0 {
                return Err(ValidatorSetError::ZeroPower(v.address));
            }
            if i > 0 && validators[i - 1].address == v.address {
                return Err(ValidatorSetError::Duplicate(v.address));
            }
            total = total
                .checked_add(v.voting_power)
                .ok_or(ValidatorSetError::Overflow)?;
        }
        // Keep 3 * total representable so quorum arithmetic cannot overflow.
        total.checked_mul(3).ok_or(ValidatorSetError::Overflow)?;
        Ok(ValidatorSet {
            validators,
            total_power: total,
        })
    }

    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    pub fn len(&self) -> usize {
        self.validators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    pub fn total_power(&self) -> u64 {
        self.total_power
    }

    pub fn get(&self, address: &Address) -> Option<&Validator> {
        self.validators
            .binary_search_by_key(address, |v| v.address)
            .ok()
            .map(|i| &self.validators[i])
    }

    /// True when `power` is more than two thirds of the total.
    pub fn is_quorum(&self, power: u64) -> bool {
        power.saturating_mul(3) > self.total_power.saturating_mul(2)
    }

    /// Round-robin proposer for `(height, round)`, over validators in address order.
    pub fn proposer(&self, height: u64, round: u32) -> &Validator {
        let n = self.validators.len() as u64;
        let i = (height.wrapping_add(u64::from(round))) % n;
        &self.validators[i as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(seed: u8, power: u64) -> Validator {
        Validator::new([seed; 32], power)
    }

    #[test]
    fn refuses_bad_sets() {
        assert_eq!(ValidatorSet::new(vec![]), Err(ValidatorSetError::Empty));
        assert!(matches!(
            ValidatorSet::new(vec![v(1, 0)]),
            Err(ValidatorSetError::ZeroPower(_))
        ));
        assert!(matches!(
            ValidatorSet::new(vec![v(1, 1), v(1, 1)]),
            Err(ValidatorSetError::Duplicate(_))
        ));
        assert_eq!(
            ValidatorSet::new(vec![v(1, u64::MAX), v(2, 1)]),
            Err(ValidatorSetError::Overflow)
        );
    }

    #[test]
    fn quorum_is_strictly_more_than_two_thirds() {
        let set = ValidatorSet::new(vec![v(1, 1), v(2, 1), v(3, 1), v(4, 1)]).unwrap();
        assert!(!set.is_quorum(2));
        assert!(set.is_quorum(3));
        let set3 = ValidatorSet::new(vec![v(1, 1), v(2, 1), v(3, 1)]).unwrap();
        assert!(!set3.is_quorum(2));
        assert!(set3.is_quorum(3));
    }

    #[test]
    fn proposer_rotates_through_every_validator() {
        let set = ValidatorSet::new(vec![v(1, 1), v(2, 1), v(3, 1)]).unwrap();
        let mut seen: Vec<Address> = (0..3).map(|h| set.proposer(h, 0).address).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 3);
        assert_eq!(set.proposer(1, 1).address, set.proposer(2, 0).address);
    }
}

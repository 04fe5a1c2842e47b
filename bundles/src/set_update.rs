//! Validator set updates: a change to the validator set (add a key with its power, remove one,
//! change a power), signed by validators holding more than two thirds of the power of the set
//! it changes, carried on chain as the one leg of a bundle for [`SET_UPDATE_ROLLUP`], and in
//! force [`SET_UPDATE_DELAY`] heights after the block that includes it.
//!
//! Every set has a version: genesis is version 0 and each applied update adds one. An update
//! names the version it changes, so it applies once: after it (or any other update) is applied
//! it names an old version and is refused, whatever the set looks like then.

use crate::certificate::CommitSig;
use crate::hash::Hash;
use crate::validator::{Address, Validator, ValidatorSet, ValidatorSetError};
use crate::{sig, SignedBundle};
use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey};
use std::collections::BTreeSet;

/// The rollup id reserved for the sequencer itself: a leg for it is a validator set update.
pub const SET_UPDATE_ROLLUP: u64 = 0;

/// Heights between the block that includes an update and the first height the new set
/// decides: an update in block `h` is in force from `h + SET_UPDATE_DELAY`. Two, so that every
/// node learns the new set one whole height before it votes (block `h + 1` is still decided by
/// the old set), and new validators are admitted by their peers' network gates before their
/// votes count.
pub const SET_UPDATE_DELAY: u64 = 2;

/// Domain tag of what co-signers sign.
pub const SET_UPDATE_TAG: &[u8] = b"lockstep:set-update:v1";
/// Domain tag of a validator set's hash (the header's `validators_hash`).
pub const VALIDATORS_TAG: &[u8] = b"lockstep:validators:v1";

/// One change to the set.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum SetChange {
    /// A new validator: its ed25519 public key and voting power.
    Add { public_key: [u8; 32], power: u64 },
    /// A validator leaves the set.
    Remove { address: Address },
    /// A validator's voting power changes.
    SetPower { address: Address, power: u64 },
}

/// What the co-signers agree to.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SetUpdate {
    pub chain_id: u64,
    /// The version of the set this update changes (genesis: 0).
    pub version: u64,
    pub changes: Vec<SetChange>,
}

/// An update with its co-signatures (each by a validator of the set it changes, over
/// [`SetUpdate::signing_hash`]), sorted by address.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedSetUpdate {
    pub update: SetUpdate,
    pub signatures: Vec<CommitSig>,
}

/// Why an update is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetUpdateError {
    #[error("a leg for rollup 0 must be a bundle's only leg (it is a validator set update)")]
    NotAlone,
    #[error("not decodable as a validator set update: {0}")]
    Undecodable(String),
    #[error("the update is for chain {got}, this network is chain {expected}")]
    WrongChain { expected: u64, got: u64 },
    #[error("the update changes nothing")]
    NoChanges,
    #[error("the update changes set version {got}, the current set is version {current}")]
    WrongVersion { current: u64, got: u64 },
    #[error("another update is already in force from height {activation}; wait for it")]
    Pending { activation: u64 },
    #[error("validator {0} is not in the set the update changes")]
    UnknownSigner(Address),
    #[error("validator {0} signed twice (signatures must be sorted by address, one each)")]
    Unsorted(Address),
    #[error("the signature of validator {0} does not verify")]
    BadSignature(Address),
    #[error("signed by {signed} of {total} voting power; more than two thirds is needed")]
    NoQuorum { signed: u64, total: u64 },
    #[error("validator {0} is already in the set")]
    AlreadyIn(Address),
    #[error("validator {0} is not in the set")]
    NotIn(Address),
    #[error("validator {0} is changed twice by one update")]
    ChangedTwice(Address),
    #[error("a voting power of 0 (remove the validator instead)")]
    ZeroPower,
    #[error("the new validator's key is not a usable ed25519 public key: {0}")]
    BadKey(String),
    #[error("the new set is unusable: {0}")]
    Set(#[from] ValidatorSetError),
}

impl SetChange {
    fn address(&self) -> Address {
        match self {
            SetChange::Add { public_key, .. } => Address::from_public_key(public_key),
            SetChange::Remove { address } | SetChange::SetPower { address, .. } => *address,
        }
    }
}

impl SetUpdate {
    /// What every co-signer signs: `SHA-256("lockstep:set-update:v1" ++ borsh(update))`.
    pub fn signing_hash(&self) -> Hash {
        Hash::tagged(SET_UPDATE_TAG, &[&borsh::to_vec(self).unwrap_or_default()])
    }

    /// `set` with the changes made; refuses a change that does not fit the set (adding a
    /// member, removing or repowering a stranger, one validator changed twice, zero power, an
    /// empty result).
    pub fn apply(&self, set: &ValidatorSet) -> Result<ValidatorSet, SetUpdateError> {
        if self.changes.is_empty() {
            return Err(SetUpdateError::NoChanges);
        }
        let mut touched = BTreeSet::new();
        let mut validators: Vec<Validator> = set.validators().to_vec();
        for change in &self.changes {
            let address = change.address();
            if !touched.insert(address) {
                return Err(SetUpdateError::ChangedTwice(address));
            }
            let at = validators.iter().position(|v| v.address == address);
            match (change, at) {
                (SetChange::Add { .. }, Some(_)) => return Err(SetUpdateError::AlreadyIn(address)),
                (SetChange::Add { public_key, power }, None) => {
                    if *power == 0 {
                        return Err(SetUpdateError::ZeroPower);
                    }
                    ed25519_dalek::VerifyingKey::from_bytes(public_key)
                        .map_err(|e| SetUpdateError::BadKey(format!("{address}: {e}")))?;
                    validators.push(Validator::new(*public_key, *power));
                }
                (SetChange::Remove { .. } | SetChange::SetPower { .. }, None) => {
                    return Err(SetUpdateError::NotIn(address))
                }
                (SetChange::Remove { .. }, Some(i)) => {
                    validators.remove(i);
                }
                (SetChange::SetPower { power, .. }, Some(i)) => {
                    if *power == 0 {
                        return Err(SetUpdateError::ZeroPower);
                    }
                    validators[i].voting_power = *power;
                }
            }
        }
        Ok(ValidatorSet::new(validators)?)
    }
}

impl SignedSetUpdate {
    /// An update with no signatures yet.
    pub fn unsigned(update: SetUpdate) -> SignedSetUpdate {
        SignedSetUpdate {
            update,
            signatures: Vec::new(),
        }
    }

    /// Adds `key`'s signature (replacing an earlier one by the same key), keeping the
    /// signatures sorted by address.
    pub fn sign(&mut self, key: &SigningKey) {
        let address = Address::from_public_key(&key.verifying_key().to_bytes());
        let signature = key.sign(self.update.signing_hash().as_bytes()).to_bytes();
        self.signatures.retain(|s| s.address != address);
        self.signatures.push(CommitSig { address, signature });
        self.signatures.sort_by_key(|s| s.address);
    }

    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<SignedSetUpdate, SetUpdateError> {
        borsh::from_slice(bytes).map_err(|e| SetUpdateError::Undecodable(e.to_string()))
    }

    /// The update a bundle carries: `None` for a bundle with no leg for [`SET_UPDATE_ROLLUP`];
    /// an error for one whose leg is not alone or does not decode.
    pub fn from_bundle(bundle: &SignedBundle) -> Option<Result<SignedSetUpdate, SetUpdateError>> {
        let legs = &bundle.body.legs;
        if !legs.iter().any(|l| l.rollup_id == SET_UPDATE_ROLLUP) {
            return None;
        }
        if legs.len() != 1 {
            return Some(Err(SetUpdateError::NotAlone));
        }
        Some(SignedSetUpdate::decode(&legs[0].data))
    }

    /// The voting power of `set` that signed, after checking every signature: each by a member
    /// of `set`, sorted by address, one each, verifying (ZIP-215). Refuses the update when any
    /// signature fails, or when the signers hold two thirds of the power or less.
    pub fn authorize(&self, chain_id: u64, set: &ValidatorSet) -> Result<u64, SetUpdateError> {
        if self.update.chain_id != chain_id {
            return Err(SetUpdateError::WrongChain {
                expected: chain_id,
                got: self.update.chain_id,
            });
        }
        let msg = self.update.signing_hash();
        let mut signed: u64 = 0;
        let mut last: Option<Address> = None;
        for s in &self.signatures {
            if last.is_some_and(|l| l >= s.address) {
                return Err(SetUpdateError::Unsorted(s.address));
            }
            last = Some(s.address);
            let v = set
                .get(&s.address)
                .ok_or(SetUpdateError::UnknownSigner(s.address))?;
            if !sig::verify(&v.public_key, msg.as_bytes(), &s.signature) {
                return Err(SetUpdateError::BadSignature(s.address));
            }
            signed = signed.saturating_add(v.voting_power);
        }
        if !set.is_quorum(signed) {
            return Err(SetUpdateError::NoQuorum {
                signed,
                total: set.total_power(),
            });
        }
        Ok(signed)
    }

    /// The set this update makes of `set` (version `version`), checking everything: the
    /// version, every signature and the quorum, and that the changes fit.
    pub fn check(
        &self,
        chain_id: u64,
        version: u64,
        set: &ValidatorSet,
    ) -> Result<ValidatorSet, SetUpdateError> {
        if self.update.version != version {
            return Err(SetUpdateError::WrongVersion {
                current: version,
                got: self.update.version,
            });
        }
        let next = self.update.apply(set)?;
        self.authorize(chain_id, set)?;
        Ok(next)
    }
}

impl ValidatorSet {
    /// The set's hash (the header's `validators_hash`):
    /// `SHA-256("lockstep:validators:v1" ++ u64 count ++ (public_key ++ u64 power)…)`, the
    /// validators in address order, integers little-endian.
    pub fn hash(&self) -> Hash {
        let count = (self.len() as u64).to_le_bytes();
        let entries: Vec<[u8; 40]> = self
            .validators()
            .iter()
            .map(|v| {
                let mut e = [0u8; 40];
                e[..32].copy_from_slice(&v.public_key);
                e[32..].copy_from_slice(&v.voting_power.to_le_bytes());
                e
            })
            .collect();
        let mut parts: Vec<&[u8]> = Vec::with_capacity(entries.len() + 1);
        parts.push(&count);
        parts.extend(entries.iter().map(|e| &e[..]));
        Hash::tagged(VALIDATORS_TAG, &parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BundleBody, Leg};

    fn keys(n: u8) -> Vec<SigningKey> {
        (1..=n).map(|i| SigningKey::from_bytes(&[i; 32])).collect()
    }

    fn set_of(keys: &[SigningKey]) -> ValidatorSet {
        ValidatorSet::new(
            keys.iter()
                .map(|k| Validator::new(k.verifying_key().to_bytes(), 1))
                .collect(),
        )
        .unwrap()
    }

    fn add(seed: u8) -> SetUpdate {
        SetUpdate {
            chain_id: 7,
            version: 0,
            changes: vec![SetChange::Add {
                public_key: SigningKey::from_bytes(&[seed; 32])
                    .verifying_key()
                    .to_bytes(),
                power: 1,
            }],
        }
    }

    fn signed_by(update: SetUpdate, keys: &[SigningKey]) -> SignedSetUpdate {
        let mut s = SignedSetUpdate::unsigned(update);
        for k in keys {
            s.sign(k);
        }
        s
    }

    #[test]
    fn more_than_two_thirds_authorize_and_fewer_do_not() {
        let k = keys(4);
        let set = set_of(&k);
        let three = signed_by(add(9), &k[..3]);
        let next = three.check(7, 0, &set).unwrap();
        assert_eq!(next.len(), 5);
        let two = signed_by(add(9), &k[..2]);
        assert_eq!(
            two.check(7, 0, &set),
            Err(SetUpdateError::NoQuorum {
                signed: 2,
                total: 4
            })
        );
        // A stranger's signature adds nothing and refuses the update.
        let stranger = signed_by(
            add(9),
            &[
                k[0].clone(),
                k[1].clone(),
                SigningKey::from_bytes(&[42; 32]),
            ],
        );
        assert!(matches!(
            stranger.check(7, 0, &set),
            Err(SetUpdateError::UnknownSigner(_))
        ));
    }

    #[test]
    fn a_forged_or_replayed_update_is_refused() {
        let k = keys(4);
        let set = set_of(&k);
        let mut forged = signed_by(add(9), &k[..3]);
        forged.update.changes = vec![SetChange::Add {
            public_key: [77; 32],
            power: 100,
        }];
        assert!(matches!(
            forged.check(7, 0, &set),
            Err(SetUpdateError::BadSignature(_))
        ));
        let good = signed_by(add(9), &k[..3]);
        assert_eq!(
            good.check(7, 1, &set),
            Err(SetUpdateError::WrongVersion { current: 1, got: 0 })
        );
        assert!(matches!(
            good.check(8, 0, &set),
            Err(SetUpdateError::WrongChain { .. })
        ));
        let mut doubled = good.clone();
        doubled.signatures.push(doubled.signatures[0].clone());
        assert!(matches!(
            doubled.check(7, 0, &set),
            Err(SetUpdateError::Unsorted(_))
        ));
    }

    #[test]
    fn changes_must_fit_the_set() {
        let k = keys(4);
        let set = set_of(&k);
        let member = set.validators()[0].clone();
        let cases = [
            (vec![], SetUpdateError::NoChanges),
            (
                vec![SetChange::Add {
                    public_key: member.public_key,
                    power: 1,
                }],
                SetUpdateError::AlreadyIn(member.address),
            ),
            (
                vec![SetChange::Remove {
                    address: Address([5; 20]),
                }],
                SetUpdateError::NotIn(Address([5; 20])),
            ),
            (
                vec![
                    SetChange::SetPower {
                        address: member.address,
                        power: 3,
                    },
                    SetChange::Remove {
                        address: member.address,
                    },
                ],
                SetUpdateError::ChangedTwice(member.address),
            ),
            (
                vec![SetChange::SetPower {
                    address: member.address,
                    power: 0,
                }],
                SetUpdateError::ZeroPower,
            ),
        ];
        for (changes, want) in cases {
            let u = SetUpdate {
                chain_id: 7,
                version: 0,
                changes,
            };
            assert_eq!(u.apply(&set), Err(want));
        }
        let all_gone = SetUpdate {
            chain_id: 7,
            version: 0,
            changes: set
                .validators()
                .iter()
                .map(|v| SetChange::Remove { address: v.address })
                .collect(),
        };
        assert_eq!(
            all_gone.apply(&set),
            Err(SetUpdateError::Set(ValidatorSetError::Empty))
        );
        let repower = SetUpdate {
            chain_id: 7,
            version: 0,
            changes: vec![SetChange::SetPower {
                address: member.address,
                power: 5,
            }],
        };
        let next = repower.apply(&set).unwrap();
        assert_eq!(next.total_power(), 8);
        assert_ne!(next.hash(), set.hash());
    }

    #[test]
    fn a_bundle_carries_an_update_only_as_its_only_leg() {
        let k = keys(4);
        let update = signed_by(add(9), &k[..3]);
        let bundle = |legs: Vec<Leg>| SignedBundle {
            body: BundleBody {
                chain_id: 7,
                signer: [1; 32],
                nonce: 1,
                valid_until: 10,
                legs,
            },
            signature: [0; 64],
        };
        let leg = |rollup_id, data: Vec<u8>| Leg {
            rollup_id,
            data: data.into(),
        };
        assert!(SignedSetUpdate::from_bundle(&bundle(vec![leg(3, vec![1])])).is_none());
        assert_eq!(
            SignedSetUpdate::from_bundle(&bundle(vec![leg(0, update.encode())])),
            Some(Ok(update.clone()))
        );
        assert_eq!(
            SignedSetUpdate::from_bundle(&bundle(vec![leg(0, update.encode()), leg(3, vec![1])])),
            Some(Err(SetUpdateError::NotAlone))
        );
        assert!(matches!(
            SignedSetUpdate::from_bundle(&bundle(vec![leg(0, vec![1, 2, 3])])),
            Some(Err(SetUpdateError::Undecodable(_)))
        ));
    }

    #[test]
    fn the_set_hash_covers_keys_and_powers_in_address_order() {
        let k = keys(3);
        let a = set_of(&k);
        let mut reversed = k.clone();
        reversed.reverse();
        assert_eq!(a.hash(), set_of(&reversed).hash());
        assert_ne!(a.hash(), set_of(&k[..2]).hash());
    }
}

//! Verifying rollup batches received as JSON, against the validator set of their height:
//! the genesis set, then each set an update made, learned from the update's own batch
//! (rollup 0 at the height that included it), certified by the set before it. Nothing the
//! serving node says is trusted: a forged or under-signed update does not verify, and an
//! update the node hides shows as a header naming a set the verifier does not hold.

use crate::api::{EntryJson, RollupBatchJson};
use lockstep_bundles::hash::{decode_hex, encode_hex};
use lockstep_bundles::rollup::BatchProof;
use lockstep_bundles::{
    BatchError, CommitCertificate, RollupBatch, RollupEntry, SignedSetUpdate, ValidatorSet,
    SET_UPDATE_DELAY, SET_UPDATE_ROLLUP,
};

/// Why a batch was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed batch: {0}")]
    Malformed(String),
    #[error("batch does not verify: {0}")]
    Invalid(#[from] BatchError),
    #[error("batch claims {field} {claimed}, the signed header says {actual}")]
    Mismatch {
        field: &'static str,
        claimed: String,
        actual: String,
    },
    /// A validator set update that does not follow from the sets already verified.
    #[error("validator set update at height {height}: {reason}")]
    SetUpdate { height: u64, reason: String },
}

/// Converts a decided batch to its JSON form.
pub fn to_json(b: &RollupBatch) -> RollupBatchJson {
    RollupBatchJson {
        rollup_id: b.rollup_id,
        height: b.height,
        block_hash: b.header.hash(),
        timestamp: b.header.timestamp,
        entries: b
            .entries
            .iter()
            .map(|e| EntryJson {
                bundle_hash: e.bundle_hash,
                leg_index: e.leg_index,
                rollups: e.rollups.clone(),
                data: encode_hex(&e.data),
            })
            .collect(),
        proof: encode_hex(
            &borsh::to_vec(&BatchProof {
                header: b.header.clone(),
                rollup: b.proof.clone(),
            })
            .unwrap_or_default(),
        ),
        certificate: encode_hex(&borsh::to_vec(&b.certificate).unwrap_or_default()),
    }
}

/// Parses the JSON form back into protocol types (no verification yet).
pub fn from_json(j: &RollupBatchJson) -> Result<RollupBatch, VerifyError> {
    let m = |what: &str, e: String| VerifyError::Malformed(format!("{what}: {e}"));
    let proof_bytes = decode_hex(&j.proof).map_err(|e| m("proof", e.to_string()))?;
    let proof: BatchProof =
        borsh::from_slice(&proof_bytes).map_err(|e| m("proof", e.to_string()))?;
    let cert_bytes = decode_hex(&j.certificate).map_err(|e| m("certificate", e.to_string()))?;
    let certificate: CommitCertificate =
        borsh::from_slice(&cert_bytes).map_err(|e| m("certificate", e.to_string()))?;
    let entries = j
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Ok(RollupEntry {
                bundle_hash: e.bundle_hash,
                leg_index: e.leg_index,
                rollups: e.rollups.clone(),
                data: decode_hex(&e.data)
                    .map_err(|err| m(&format!("entries[{i}].data"), err.to_string()))?,
            })
        })
        .collect::<Result<Vec<_>, VerifyError>>()?;
    Ok(RollupBatch {
        rollup_id: j.rollup_id,
        height: j.height,
        header: proof.header,
        entries,
        proof: proof.rollup,
        certificate,
    })
}

/// One validator set the verifier holds: in force from `from_height`, version `version`
/// (genesis 0), made by an update included at `included_at` (0 for genesis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownSet {
    pub version: u64,
    pub from_height: u64,
    pub included_at: u64,
    pub set: ValidatorSet,
}

/// Verifies batches for one chain, with every validator set it has learned.
#[derive(Debug, Clone)]
pub struct BatchVerifier {
    pub chain_id: u64,
    /// Oldest first; the first is genesis's.
    sets: Vec<KnownSet>,
}

impl BatchVerifier {
    /// A verifier that trusts the genesis set alone.
    pub fn new(chain_id: u64, validators: ValidatorSet) -> Self {
        BatchVerifier {
            chain_id,
            sets: vec![KnownSet {
                version: 0,
                from_height: 1,
                included_at: 0,
                set: validators,
            }],
        }
    }

    /// Every set learned, oldest first.
    pub fn sets(&self) -> &[KnownSet] {
        &self.sets
    }

    /// The newest set learned.
    pub fn latest(&self) -> &KnownSet {
        // `sets` always holds genesis's.
        &self.sets[self.sets.len() - 1]
    }

    /// The set that decides `height`, as far as this verifier knows.
    pub fn set_at(&self, height: u64) -> &ValidatorSet {
        let i = self
            .sets
            .iter()
            .rposition(|s| s.from_height <= height)
            .unwrap_or(0);
        &self.sets[i].set
    }

    /// Parses and verifies: certificate against the set of the batch's height, entries
    /// against the header's rollup commitment, and the JSON's block hash and timestamp against
    /// the header. A header naming a set this verifier does not hold fails with
    /// [`BatchError::OtherValidatorSet`]: learn the updates ([`BatchVerifier::learn`]) and
    /// verify again.
    pub fn verify(&self, j: &RollupBatchJson) -> Result<RollupBatch, VerifyError> {
        let b = from_json(j)?;
        let actual = b.header.hash();
        if actual != j.block_hash {
            return Err(VerifyError::Mismatch {
                field: "blockHash",
                claimed: j.block_hash.to_string(),
                actual: actual.to_string(),
            });
        }
        if b.header.timestamp != j.timestamp {
            return Err(VerifyError::Mismatch {
                field: "timestamp",
                claimed: j.timestamp.to_string(),
                actual: b.header.timestamp.to_string(),
            });
        }
        b.verify(self.chain_id, self.set_at(b.height))?;
        Ok(b)
    }

    /// Learns the set made by the update in `update_batch`: the batch of rollup 0 at the
    /// height that included it. The batch is verified like any (so the update is one the
    /// chain decided, and every update of that block is in it); the update must name the
    /// newest set learned, come after it is in force, and carry more than two thirds of its
    /// power in valid signatures. Returns the new set; a batch with no update learns nothing.
    pub fn learn(
        &mut self,
        update_batch: &RollupBatchJson,
    ) -> Result<Option<&KnownSet>, VerifyError> {
        if update_batch.rollup_id != SET_UPDATE_ROLLUP {
            return Err(VerifyError::Malformed(format!(
                "an update batch is rollup {SET_UPDATE_ROLLUP}'s, not rollup {}'s",
                update_batch.rollup_id
            )));
        }
        let b = self.verify(update_batch)?;
        let height = b.height;
        let refuse = |reason: String| VerifyError::SetUpdate { height, reason };
        let update = match b.entries.as_slice() {
            [] => return Ok(None),
            [e] => SignedSetUpdate::decode(&e.data).map_err(|e| refuse(e.to_string()))?,
            more => {
                return Err(refuse(format!(
                    "{} entries; a block carries at most one update",
                    more.len()
                )))
            }
        };
        let latest = self.latest();
        if height < latest.from_height {
            return Err(refuse(format!(
                "included before set version {} is in force (height {})",
                latest.version, latest.from_height
            )));
        }
        let set = update
            .check(self.chain_id, latest.version, &latest.set)
            .map_err(|e| refuse(e.to_string()))?;
        let known = KnownSet {
            version: latest.version + 1,
            from_height: height + SET_UPDATE_DELAY,
            included_at: height,
            set,
        };
        self.sets.push(known);
        Ok(self.sets.last())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use lockstep_bundles::certificate::{vote_sign_bytes, VoteKind};
    use lockstep_bundles::rollup::RollupTree;
    use lockstep_bundles::{Address, Block, CommitSig, Hash, Validator};

    fn setup() -> (BatchVerifier, Block, Vec<Hash>, CommitCertificate) {
        let keys: Vec<SigningKey> = (1..=4u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]))
            .collect();
        let set = ValidatorSet::new(
            keys.iter()
                .map(|k| Validator::new(k.verifying_key().to_bytes(), 1))
                .collect(),
        )
        .unwrap();
        let user = SigningKey::from_bytes(&[9; 32]);
        let bundles = vec![
            crate::bundle::sign(&user, 5, 1, 10, vec![(1, vec![1, 1]), (2, vec![2, 2])]),
            crate::bundle::sign(&user, 5, 2, 10, vec![(1, vec![3])]),
        ];
        let hashes: Vec<Hash> = bundles.iter().map(|b| b.hash()).collect();
        let block = Block::build(
            5,
            3,
            1000,
            Address::default(),
            Hash::ZERO,
            set.hash(),
            bundles,
            &hashes,
        );
        let signatures = keys[..3]
            .iter()
            .map(|k| {
                let address = Address::from_public_key(&k.verifying_key().to_bytes());
                let msg =
                    vote_sign_bytes(5, VoteKind::Precommit, 3, 0, Some(&block.hash()), &address);
                CommitSig {
                    address,
                    signature: k.sign(&msg).to_bytes(),
                }
            })
            .collect();
        let cert = CommitCertificate {
            height: 3,
            round: 0,
            block_hash: block.hash(),
            signatures,
        };
        (BatchVerifier::new(5, set), block, hashes, cert)
    }

    fn json_for(
        block: &Block,
        hashes: &[Hash],
        cert: &CommitCertificate,
        rollup: u64,
    ) -> RollupBatchJson {
        let tree = RollupTree::from_block(block, hashes);
        to_json(&RollupBatch::from_block(
            block,
            hashes,
            &tree,
            cert.clone(),
            rollup,
        ))
    }

    #[test]
    fn honest_batches_verify_including_empty_ones() {
        let (v, block, hashes, cert) = setup();
        for rollup in [1, 2, 3] {
            let j = json_for(&block, &hashes, &cert, rollup);
            let b = v.verify(&j).unwrap();
            assert_eq!(b.entries.len(), [2, 1, 0][(rollup - 1) as usize]);
        }
    }

    #[test]
    fn a_batch_is_checked_against_its_height_and_the_followers_chain() {
        let (v, block, hashes, cert) = setup();
        let good = json_for(&block, &hashes, &cert, 1);
        assert!(v.verify(&good).is_ok());

        // The batch claims another height than its header's.
        let mut moved = good.clone();
        moved.height = 4;
        assert!(matches!(
            v.verify(&moved),
            Err(VerifyError::Invalid(BatchError::HeightMismatch {
                batch: 4,
                header: 3
            }))
        ));

        // A follower of another chain refuses it (same validators, chain 6).
        let other = BatchVerifier::new(6, v.set_at(1).clone());
        assert!(matches!(
            other.verify(&good),
            Err(VerifyError::Invalid(BatchError::WrongChain {
                expected: 6,
                got: 5
            }))
        ));

        // A certificate for another height, even with the right block hash, does not
        // certify this one.
        let mut other_height = cert.clone();
        other_height.height = 4;
        let mut relabelled = good;
        relabelled.certificate =
            lockstep_bundles::hash::encode_hex(&borsh::to_vec(&other_height).unwrap());
        assert!(matches!(
            v.verify(&relabelled),
            Err(VerifyError::Invalid(BatchError::Certificate(_)))
        ));
    }

    #[test]
    fn tampered_json_batches_are_rejected() {
        let (v, block, hashes, cert) = setup();
        let good = json_for(&block, &hashes, &cert, 1);

        let mut flipped = good.clone();
        flipped.entries[0].data = "0x0101ff".into();
        assert!(matches!(v.verify(&flipped), Err(VerifyError::Invalid(_))));

        let mut removed = good.clone();
        removed.entries.pop();
        assert!(matches!(v.verify(&removed), Err(VerifyError::Invalid(_))));

        let mut foreign = good.clone();
        foreign
            .entries
            .push(json_for(&block, &hashes, &cert, 2).entries[0].clone());
        assert!(v.verify(&foreign).is_err());

        let mut forged = good.clone();
        let mut cert2 = cert.clone();
        cert2.signatures[2].signature[7] ^= 1;
        forged.certificate = lockstep_bundles::hash::encode_hex(&borsh::to_vec(&cert2).unwrap());
        assert!(matches!(
            v.verify(&forged),
            Err(VerifyError::Invalid(BatchError::Certificate(_)))
        ));

        let mut short = good.clone();
        let mut cert3 = cert.clone();
        cert3.signatures.truncate(2);
        short.certificate = lockstep_bundles::hash::encode_hex(&borsh::to_vec(&cert3).unwrap());
        assert!(
            v.verify(&short).is_err(),
            "two of four signatures are not a quorum"
        );

        let mut relabelled = good.clone();
        relabelled.block_hash = Hash::ZERO;
        assert!(matches!(
            v.verify(&relabelled),
            Err(VerifyError::Mismatch { .. })
        ));

        let mut garbage = good;
        garbage.proof = "0x00".into();
        assert!(matches!(v.verify(&garbage), Err(VerifyError::Malformed(_))));
    }

    // -----------------------------------------------------------------------------------------
    // Learning validator set updates.

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&[i; 32])
    }

    fn set_of(keys: &[u8]) -> ValidatorSet {
        ValidatorSet::new(
            keys.iter()
                .map(|i| Validator::new(key(*i).verifying_key().to_bytes(), 1))
                .collect(),
        )
        .unwrap()
    }

    /// The batch of `rollup` at `height`, in a block of `bundles` decided by `set` and
    /// certified by `signers`.
    fn batch_at(
        height: u64,
        set: &ValidatorSet,
        signers: &[u8],
        bundles: Vec<lockstep_bundles::SignedBundle>,
        rollup: u64,
    ) -> RollupBatchJson {
        let hashes: Vec<Hash> = bundles.iter().map(|b| b.hash()).collect();
        let block = Block::build(
            5,
            height,
            1000 + height,
            set.proposer(height, 0).address,
            Hash::ZERO,
            set.hash(),
            bundles,
            &hashes,
        );
        let signatures = signers
            .iter()
            .map(|i| {
                let k = key(*i);
                let address = Address::from_public_key(&k.verifying_key().to_bytes());
                let msg = vote_sign_bytes(
                    5,
                    VoteKind::Precommit,
                    height,
                    0,
                    Some(&block.hash()),
                    &address,
                );
                CommitSig {
                    address,
                    signature: k.sign(&msg).to_bytes(),
                }
            })
            .collect::<Vec<_>>();
        let mut signatures = signatures;
        signatures.sort_by_key(|s| s.address);
        let cert = CommitCertificate {
            height,
            round: 0,
            block_hash: block.hash(),
            signatures,
        };
        json_for(&block, &hashes, &cert, rollup)
    }

    /// A bundle carrying `changes` to set version `version`, co-signed by `cosigners`.
    fn update(
        version: u64,
        changes: Vec<lockstep_bundles::SetChange>,
        cosigners: &[u8],
    ) -> lockstep_bundles::SignedBundle {
        let mut u = SignedSetUpdate::unsigned(lockstep_bundles::SetUpdate {
            chain_id: 5,
            version,
            changes,
        });
        for i in cosigners {
            u.sign(&key(*i));
        }
        crate::bundle::sign(&key(99), 5, version, 100, vec![(0, u.encode())])
    }

    fn add(ids: &[u8]) -> Vec<lockstep_bundles::SetChange> {
        ids.iter()
            .map(|i| lockstep_bundles::SetChange::Add {
                public_key: key(*i).verifying_key().to_bytes(),
                power: 1,
            })
            .collect()
    }

    fn remove(ids: &[u8]) -> Vec<lockstep_bundles::SetChange> {
        ids.iter()
            .map(|i| lockstep_bundles::SetChange::Remove {
                address: Address::from_public_key(&key(*i).verifying_key().to_bytes()),
            })
            .collect()
    }

    #[test]
    fn a_verifier_from_genesis_follows_updates_to_a_set_with_no_genesis_member() {
        let genesis = set_of(&[1, 2, 3, 4]);
        let mut v = BatchVerifier::new(5, genesis.clone());
        // v1 (from height 12): four more validators, authorized by three of genesis's four.
        let u1 = batch_at(
            10,
            &genesis,
            &[1, 2, 4],
            vec![update(0, add(&[5, 6, 7, 8]), &[1, 2, 3])],
            0,
        );
        let eight = set_of(&[1, 2, 3, 4, 5, 6, 7, 8]);
        // Until it has learned v1, a batch of v1's heights names a set it does not hold.
        let later = batch_at(12, &eight, &[5, 6, 7, 8, 1, 2], vec![], 7);
        assert!(matches!(
            v.verify(&later),
            Err(VerifyError::Invalid(BatchError::OtherValidatorSet { .. }))
        ));
        let learned = v.learn(&u1).unwrap().unwrap();
        assert_eq!((learned.version, learned.from_height), (1, 12));
        v.verify(&later).unwrap();
        // v2 (from height 22): genesis's four leave, authorized by six of the eight.
        let u2 = batch_at(
            20,
            &eight,
            &[1, 2, 5, 6, 7, 8],
            vec![update(1, remove(&[1, 2, 3, 4]), &[1, 2, 5, 6, 7, 8])],
            0,
        );
        v.learn(&u2).unwrap().unwrap();
        let fresh = set_of(&[5, 6, 7, 8]);
        v.verify(&batch_at(22, &fresh, &[5, 6, 8], vec![], 7))
            .unwrap();
        // Heights decided by older sets still verify with them.
        v.verify(&batch_at(11, &genesis, &[1, 2, 3], vec![], 7))
            .unwrap();
        // A batch at a v2 height certified by genesis's validators does not.
        assert!(v
            .verify(&batch_at(23, &genesis, &[1, 2, 3, 4], vec![], 7))
            .is_err());
        // A batch without an update learns nothing.
        assert!(v
            .learn(&batch_at(24, &fresh, &[5, 6, 7], vec![], 0))
            .unwrap()
            .is_none());
    }

    #[test]
    fn forged_under_signed_or_out_of_order_updates_are_refused() {
        let genesis = set_of(&[1, 2, 3, 4]);
        let learn = |b: RollupBatchJson| {
            BatchVerifier::new(5, genesis.clone())
                .learn(&b)
                .map(|k| k.cloned())
        };
        // Co-signed by two of four: no quorum.
        let under = batch_at(
            10,
            &genesis,
            &[1, 2, 3],
            vec![update(0, add(&[5]), &[1, 2])],
            0,
        );
        assert!(matches!(learn(under), Err(VerifyError::SetUpdate { .. })));
        // Co-signed by three outsiders.
        let outsiders = batch_at(
            10,
            &genesis,
            &[1, 2, 3],
            vec![update(0, add(&[5]), &[5, 6, 7])],
            0,
        );
        assert!(matches!(
            learn(outsiders),
            Err(VerifyError::SetUpdate { .. })
        ));
        // A version the verifier has not reached (an update in between was hidden).
        let skipped = batch_at(
            10,
            &genesis,
            &[1, 2, 3],
            vec![update(1, add(&[5]), &[1, 2, 3])],
            0,
        );
        assert!(matches!(learn(skipped), Err(VerifyError::SetUpdate { .. })));
        // A well-signed update in a block the chain did not decide (certified by outsiders).
        let undecided = batch_at(
            10,
            &set_of(&[5, 6, 7, 8]),
            &[5, 6, 7],
            vec![update(0, add(&[5]), &[1, 2, 3])],
            0,
        );
        assert!(learn(undecided).is_err());
        // An update whose signed changes were altered after signing.
        let mut u = SignedSetUpdate::unsigned(lockstep_bundles::SetUpdate {
            chain_id: 5,
            version: 0,
            changes: add(&[5]),
        });
        for i in [1, 2, 3] {
            u.sign(&key(i));
        }
        u.update.changes = add(&[6]);
        let altered = crate::bundle::sign(&key(99), 5, 1, 100, vec![(0, u.encode())]);
        let altered = batch_at(10, &genesis, &[1, 2, 3], vec![altered], 0);
        assert!(matches!(learn(altered), Err(VerifyError::SetUpdate { .. })));
        // Only rollup 0's batches carry updates.
        let wrong_rollup = batch_at(10, &genesis, &[1, 2, 3], vec![], 7);
        assert!(matches!(
            learn(wrong_rollup),
            Err(VerifyError::Malformed(_))
        ));
    }
}

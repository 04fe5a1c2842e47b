//! The validator set of every height: genesis, then each update the chain included, in force
//! [`SET_UPDATE_DELAY`] heights after its block (ADR-027).
//!
//! One [`Schedule`] is shared by the host (which answers Malachite with the set of each height
//! it starts, checks proposals' updates and records each new set in the commit of the block
//! that included it) and by the node's admission and RPC (which refuse an update that could
//! not be included, and answer what the set of a height is).

use crate::context::ValidatorSet as EngineSet;
use borsh::{BorshDeserialize, BorshSerialize};
use lockstep_bundles::{
    Hash, RollupBatch, SetUpdateError, SignedSetUpdate, Validator, ValidatorSet, SET_UPDATE_DELAY,
};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// A set as it is kept in the store: in force from `from_height`, made by the update included
/// at `included_at` (0 for genesis).
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SetRecord {
    pub version: u64,
    pub from_height: u64,
    pub included_at: u64,
    pub validators: Vec<Validator>,
    /// The proof of the update that made the set: rollup 0's batch at `included_at`, kept
    /// when that block is pruned, so a client or a node joining from a snapshot can learn
    /// every set from genesis.
    pub update: Option<RollupBatch>,
}

/// One set of the schedule, in both forms.
#[derive(Debug, Clone)]
pub struct ScheduledSet {
    pub version: u64,
    /// The first height this set decides.
    pub from_height: u64,
    /// The height of the block that included the update that made it (0: genesis).
    pub included_at: u64,
    pub set: ValidatorSet,
    /// `set.hash()`: every header of a height this set decides carries it.
    pub hash: Hash,
    /// The set as Malachite takes it.
    pub engine: EngineSet,
    /// The update's proof (see [`SetRecord::update`]); `None` for genesis, and until the
    /// block that includes the update is committed.
    pub update: Option<RollupBatch>,
}

impl ScheduledSet {
    fn new(
        version: u64,
        from_height: u64,
        included_at: u64,
        set: ValidatorSet,
    ) -> Result<ScheduledSet, String> {
        Ok(ScheduledSet {
            version,
            from_height,
            included_at,
            hash: set.hash(),
            engine: EngineSet::from_bundles(&set)?,
            set,
            update: None,
        })
    }

    /// A stored (or offered) set back as a schedule entry; checks the set is usable.
    pub fn from_record(r: SetRecord) -> Result<ScheduledSet, String> {
        let set = ValidatorSet::new(r.validators)
            .map_err(|e| format!("validator set version {}: {e}", r.version))?;
        let mut s = ScheduledSet::new(r.version, r.from_height, r.included_at, set)?;
        s.update = r.update;
        Ok(s)
    }

    pub fn record(&self) -> SetRecord {
        SetRecord {
            version: self.version,
            from_height: self.from_height,
            included_at: self.included_at,
            validators: self.set.validators().to_vec(),
            update: self.update.clone(),
        }
    }
}

/// Every set the chain has had or has scheduled, by the height it takes over from.
pub struct Schedule {
    chain_id: u64,
    sets: RwLock<BTreeMap<u64, Arc<ScheduledSet>>>,
}

impl Schedule {
    /// Genesis (version 0, from height 1) and the stored records, checked: versions one apart
    /// in height order, each set usable.
    pub fn load(
        chain_id: u64,
        genesis: &ValidatorSet,
        stored: Vec<SetRecord>,
    ) -> Result<Schedule, String> {
        let mut sets = BTreeMap::new();
        sets.insert(1, Arc::new(ScheduledSet::new(0, 1, 0, genesis.clone())?));
        let mut version = 0;
        let mut stored = stored;
        stored.sort_by_key(|r| r.from_height);
        for r in stored {
            if r.version != version + 1 || r.from_height <= 1 {
                return Err(format!(
                    "stored validator set version {} from height {} does not follow version {version}",
                    r.version, r.from_height
                ));
            }
            version = r.version;
            sets.insert(r.from_height, Arc::new(ScheduledSet::from_record(r)?));
        }
        Ok(Schedule {
            chain_id,
            sets: RwLock::new(sets),
        })
    }

    /// A schedule with the genesis set alone.
    pub fn genesis(chain_id: u64, genesis: &ValidatorSet) -> Result<Schedule, String> {
        Schedule::load(chain_id, genesis, Vec::new())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u64, Arc<ScheduledSet>>> {
        self.sets.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The set that decides `height` as far as this node knows: exact for every height up to
    /// the latest committed one plus [`SET_UPDATE_DELAY`] (an update not yet included takes
    /// effect later than that).
    pub fn at(&self, height: u64) -> Arc<ScheduledSet> {
        let sets = self.read();
        sets.range(..=height.max(1))
            .next_back()
            .or_else(|| sets.iter().next())
            .map(|(_, s)| s.clone())
            .expect("a schedule always holds the genesis set")
    }

    /// The newest set, in force or scheduled.
    pub fn latest(&self) -> Arc<ScheduledSet> {
        self.read()
            .values()
            .next_back()
            .cloned()
            .expect("a schedule always holds the genesis set")
    }

    /// Every set, oldest first.
    pub fn all(&self) -> Vec<Arc<ScheduledSet>> {
        self.read().values().cloned().collect()
    }

    /// The set `update` would make if block `height` included it: refused unless the set in
    /// force at `height` is the newest (one update at a time), the update names its version,
    /// more than two thirds of its power signed, and the changes fit it.
    pub fn check(
        &self,
        height: u64,
        update: &SignedSetUpdate,
    ) -> Result<ScheduledSet, SetUpdateError> {
        let latest = self.latest();
        if latest.from_height > height {
            return Err(SetUpdateError::Pending {
                activation: latest.from_height,
            });
        }
        let next = update.check(self.chain_id, latest.version, &latest.set)?;
        ScheduledSet::new(latest.version + 1, height + SET_UPDATE_DELAY, height, next)
            .map_err(SetUpdateError::BadKey)
    }

    /// Adds a set made by a committed block (after the store has it). Adding the same set
    /// again (a block committed twice after a replay) changes nothing.
    pub fn insert(&self, set: ScheduledSet) {
        let mut sets = self.sets.write().unwrap_or_else(|e| e.into_inner());
        sets.entry(set.from_height).or_insert_with(|| Arc::new(set));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use ed25519_dalek::SigningKey;
    use lockstep_bundles::{SetChange, SetUpdate};

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&[i; 32])
    }

    fn genesis() -> ValidatorSet {
        ValidatorSet::new(
            (1..=4)
                .map(|i| Validator::new(key(i).verifying_key().to_bytes(), 1))
                .collect(),
        )
        .unwrap()
    }

    fn add(version: u64, seed: u8, signers: &[u8]) -> SignedSetUpdate {
        let mut u = SignedSetUpdate::unsigned(SetUpdate {
            chain_id: 9,
            version,
            changes: vec![SetChange::Add {
                public_key: key(seed).verifying_key().to_bytes(),
                power: 1,
            }],
        });
        for s in signers {
            u.sign(&key(*s));
        }
        u
    }

    #[test]
    fn a_set_takes_over_after_the_delay_and_one_update_waits_for_the_other() {
        let schedule = Schedule::genesis(9, &genesis()).unwrap();
        let next = schedule.check(10, &add(0, 5, &[1, 2, 3])).unwrap();
        assert_eq!((next.version, next.from_height), (1, 10 + SET_UPDATE_DELAY));
        schedule.insert(next);
        assert_eq!(schedule.at(11).version, 0);
        assert_eq!(schedule.at(12).version, 1);
        assert_eq!(schedule.at(12).set.len(), 5);
        // Another update before the first is in force is refused, whatever it names…
        assert_eq!(
            schedule.check(11, &add(1, 6, &[1, 2, 3, 4])).err(),
            Some(SetUpdateError::Pending { activation: 12 })
        );
        // …and once it is, it must be signed by the new set's quorum (4 of 5).
        assert!(matches!(
            schedule.check(12, &add(1, 6, &[1, 2, 3])),
            Err(SetUpdateError::NoQuorum { .. })
        ));
        assert!(schedule.check(12, &add(1, 6, &[1, 2, 3, 5])).is_ok());
        // The update already applied cannot be applied again.
        assert!(matches!(
            schedule.check(12, &add(0, 5, &[1, 2, 3])),
            Err(SetUpdateError::WrongVersion { .. })
        ));
    }

    #[test]
    fn a_loaded_schedule_is_the_one_stored_and_refuses_gaps() {
        let schedule = Schedule::genesis(9, &genesis()).unwrap();
        let next = schedule.check(3, &add(0, 5, &[1, 2, 3])).unwrap();
        let record = next.record();
        let loaded = Schedule::load(9, &genesis(), vec![record.clone()]).unwrap();
        assert_eq!(loaded.at(5).hash, next.hash);
        assert_eq!(loaded.at(4).hash, genesis().hash());
        let gap = SetRecord {
            version: 2,
            ..record
        };
        assert!(Schedule::load(9, &genesis(), vec![gap]).is_err());
    }
}

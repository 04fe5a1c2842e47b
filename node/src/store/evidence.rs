//! The `evidence` family: every equivocation the node recorded (`seq_getEvidence`), so a
//! restart does not forget it. Keyed by validator (20) ++ height (8) ++ round (4) ++ kind, the
//! value when it was recorded (Unix ns, 8 bytes big-endian: the record is answered oldest
//! first, again after a restart) ++ the entry's Borsh encoding (both signed messages);
//! entries an eviction pushed out of the bounded record are deleted. Written as recorded, without a sync: evidence is rare,
//! and a crash may lose the last entries as it may lose the last unsynced writes of any
//! RocksDB write.

use super::{err, Store};
use borsh::BorshDeserialize;
use lockstep_consensus::evidence::{Evidence, EvidenceStore};
use lockstep_consensus::store::Result;
use rocksdb::IteratorMode;

fn key(e: &Evidence) -> Vec<u8> {
    let label = e.misbehaviour.label().as_bytes();
    let mut k = Vec::with_capacity(32 + label.len());
    k.extend_from_slice(&e.validator.0);
    k.extend_from_slice(&e.height.to_be_bytes());
    k.extend_from_slice(&e.round.to_be_bytes());
    k.extend_from_slice(label);
    k
}

impl Store {
    /// Every entry kept, oldest first.
    pub fn evidence(&self) -> Result<Vec<Evidence>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf("evidence")?, IteratorMode::Start)
        {
            let (_, v) = item.map_err(err)?;
            if v.len() < 8 {
                return Err(lockstep_consensus::store::StoreError(
                    "corrupt evidence record".into(),
                ));
            }
            let mut at = [0u8; 8];
            at.copy_from_slice(&v[..8]);
            out.push((
                u64::from_be_bytes(at),
                Evidence::try_from_slice(&v[8..]).map_err(err)?,
            ));
        }
        out.sort_by_key(|(at, _)| *at);
        Ok(out.into_iter().map(|(_, e)| e).collect())
    }
}

impl EvidenceStore for Store {
    fn keep(&self, e: &Evidence) -> std::result::Result<(), String> {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut value = at.to_be_bytes().to_vec();
        value.extend(borsh::to_vec(e).map_err(|e| e.to_string())?);
        let cf = self.cf("evidence").map_err(|e| e.to_string())?;
        self.db.put_cf(cf, key(e), value).map_err(|e| e.to_string())
    }

    fn forget(&self, e: &Evidence) -> std::result::Result<(), String> {
        let cf = self.cf("evidence").map_err(|e| e.to_string())?;
        self.db.delete_cf(cf, key(e)).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_bundles::{Address, Hash};
    use lockstep_consensus::evidence::{Misbehaviour, SignedValue, VoteKind};

    fn vote(validator: u8, height: u64) -> Evidence {
        let v = |b: u8| SignedValue {
            value: Some(Hash([b; 32])),
            signature: [b; 64],
        };
        Evidence {
            validator: Address([validator; 20]),
            height,
            round: 0,
            misbehaviour: Misbehaviour::Vote {
                kind: VoteKind::Prevote,
                first: v(1),
                second: v(2),
            },
        }
    }

    #[test]
    fn evidence_kept_survives_a_reopen_and_forgotten_entries_leave() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (vote(1, 5), vote(1, 6), vote(2, 5));
        {
            let s = Store::open(dir.path(), 0).unwrap();
            // Recorded in an order that is not the key order.
            for e in [&c, &a, &b] {
                s.keep(e).unwrap();
            }
            s.forget(&a).unwrap();
        }
        let s = Store::open(dir.path(), 0).unwrap();
        assert_eq!(s.evidence().unwrap(), vec![c, b], "oldest first");
    }
}

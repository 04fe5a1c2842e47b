//! The reads: decided headers, blocks, certificates and bundle hashes, the bundle index,
//! decided blocks decoded (through the decoded-block cache), and the undecided proposals
//! recorded for crash recovery.

use super::layout::{be, read_u64, StoredProposal, EARLIEST, LATEST};
use super::{err, Store};
use borsh::BorshDeserialize;
use lockstep_bundles::{Block, BlockHeader, CommitCertificate, Hash};
use lockstep_consensus::store::{ChainStore, Result, StoreError, UndecidedRecord};
use lockstep_consensus::validators::SetRecord;
use rocksdb::{Direction, IteratorMode, ReadOptions};
use std::sync::Arc;

/// A decided block, decoded, with what readers need.
pub(crate) struct Decided {
    pub(crate) block: Block,
    pub(crate) hashes: Vec<Hash>,
    pub(crate) certificate: CommitCertificate,
    pub(crate) tree: lockstep_bundles::rollup::RollupTree,
}

impl Store {
    /// A block body by block hash.
    pub(super) fn body(&self, hash: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf("bodies")?, hash).map_err(err)
    }

    pub(crate) fn latest_height(&self) -> Result<u64> {
        Ok(self.meta(LATEST)?.unwrap_or(0))
    }

    pub(crate) fn header(&self, height: u64) -> Result<Option<BlockHeader>> {
        match self
            .db
            .get_cf(self.cf("headers")?, be(height))
            .map_err(err)?
        {
            Some(v) => BlockHeader::decode(&v).map(Some).map_err(err),
            None => Ok(None),
        }
    }

    pub(crate) fn hashes(&self, height: u64) -> Result<Option<Vec<Hash>>> {
        self.hashes_with(height, &ReadOptions::default())
    }

    pub(super) fn hashes_with(&self, height: u64, read: &ReadOptions) -> Result<Option<Vec<Hash>>> {
        let Some(v) = self
            .db
            .get_cf_opt(self.cf("hashes")?, be(height), read)
            .map_err(err)?
        else {
            return Ok(None);
        };
        if v.len() % 32 != 0 {
            return Err(StoreError(format!(
                "corrupt bundle hashes at height {height}"
            )));
        }
        Ok(Some(
            v.chunks_exact(32)
                .map(|c| Hash(c.try_into().unwrap_or([0; 32])))
                .collect(),
        ))
    }

    /// Where a bundle was included: `(height, index)`.
    pub(crate) fn bundle_location(&self, hash: &Hash) -> Result<Option<(u64, u32)>> {
        let Some(v) = self.db.get_cf(self.cf("bundles")?, hash.0).map_err(err)? else {
            return Ok(None);
        };
        if v.len() != 12 {
            return Err(StoreError("corrupt bundle index entry".into()));
        }
        let height = read_u64(&v[..8])?;
        let index = u32::from_be_bytes(v[8..12].try_into().unwrap_or([0; 4]));
        Ok(Some((height, index)))
    }

    /// A decided block with its hashes, certificate and rollup tree (cached).
    pub(crate) fn decided(&self, height: u64) -> Result<Option<Arc<Decided>>> {
        if let Some(d) = self.cache.lock().get(&height) {
            return Ok(Some(d));
        }
        let (Some(bytes), Some(cert)) = (self.block_bytes(height)?, self.certificate(height)?)
        else {
            return Ok(None);
        };
        let block = Block::decode(&bytes).map_err(err)?;
        // The bundle hashes were stored with the block; recompute only if they are missing.
        let hashes = match self.hashes(height)? {
            Some(h) if h.len() == block.bundles.len() => h,
            _ => block.bundles.iter().map(|b| b.hash()).collect(),
        };
        let tree = lockstep_bundles::rollup::RollupTree::from_block(&block, &hashes);
        let d = Arc::new(Decided {
            block,
            hashes,
            certificate: cert,
            tree,
        });
        // Decoded bundles, hashes and tree take about twice the encoded size.
        self.cache.lock().insert(height, d.clone(), bytes.len() * 2);
        Ok(Some(d))
    }

    /// [`ChainStore::latest`].
    pub(super) fn read_latest(&self) -> Result<Option<BlockHeader>> {
        match self.meta(LATEST)? {
            Some(h) => self.header(h),
            None => Ok(None),
        }
    }

    /// [`ChainStore::earliest`].
    pub(super) fn read_earliest(&self) -> Result<u64> {
        Ok(self.meta(EARLIEST)?.unwrap_or(0))
    }

    /// [`ChainStore::block_bytes`].
    pub(super) fn read_block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>> {
        match self
            .db
            .get_cf(self.cf("blocks")?, be(height))
            .map_err(err)?
        {
            Some(hash) => match self.body(&hash)? {
                Some(body) => Ok(Some(body)),
                None => Err(StoreError(format!(
                    "missing body of decided height {height}"
                ))),
            },
            None => Ok(None),
        }
    }

    /// [`ChainStore::certificate`].
    pub(super) fn read_certificate(&self, height: u64) -> Result<Option<CommitCertificate>> {
        match self.db.get_cf(self.cf("certs")?, be(height)).map_err(err)? {
            Some(v) => CommitCertificate::try_from_slice(&v).map(Some).map_err(err),
            None => Ok(None),
        }
    }

    /// [`ChainStore::undecided`].
    pub(super) fn read_undecided(&self, height: u64) -> Result<Vec<UndecidedRecord>> {
        let cf = self.cf("undecided")?;
        let start = be(height);
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward))
        {
            let (k, v) = item.map_err(err)?;
            if k.len() < 8 || k[..8] != start {
                break;
            }
            let r = StoredProposal::try_from_slice(&v).map_err(err)?;
            let block = if r.valid {
                self.body(&r.block_hash.0)?.unwrap_or_default().into()
            } else {
                bytes::Bytes::new()
            };
            out.push(UndecidedRecord {
                height: r.height,
                round: r.round,
                valid_round: r.valid_round,
                proposer: r.proposer,
                block_hash: r.block_hash,
                valid: r.valid,
                block,
            });
        }
        Ok(out)
    }

    /// [`ChainStore::included_since`].
    pub(super) fn read_included_since(&self, from: u64) -> Result<Vec<(u64, Vec<Hash>)>> {
        let latest = self.latest_height()?;
        let mut out = Vec::new();
        for h in from.max(1)..=latest {
            if let Some(hs) = self.hashes(h)? {
                out.push((h, hs));
            }
        }
        Ok(out)
    }

    /// [`ChainStore::validator_sets`].
    pub(super) fn read_validator_sets(&self) -> Result<Vec<SetRecord>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf("validator_sets")?, IteratorMode::Start)
        {
            let (_, v) = item.map_err(err)?;
            out.push(
                SetRecord::try_from_slice(&v)
                    .map_err(|e| StoreError(format!("corrupt validator set record: {e}")))?,
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{block, cert};
    use super::*;
    use lockstep_bundles::Address;

    #[test]
    fn a_block_is_found_by_its_hash_while_proposed_and_once_decided() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 0).unwrap();
        let (won, lost) = (block(1, Hash::ZERO, 10), block(1, Hash::ZERO, 11));
        for (round, b) in [(0, &lost), (1, &won)] {
            s.put_undecided(&UndecidedRecord {
                height: 1,
                round,
                valid_round: -1,
                proposer: Address::default(),
                block_hash: b.hash(),
                valid: true,
                block: b.encode().into(),
            })
            .unwrap();
        }
        let by_hash = |b: &Block| s.block_by_hash(&b.hash()).unwrap().map(|x| x.to_vec());
        assert_eq!(by_hash(&won), Some(won.encode()), "a recorded proposal");
        assert_eq!(by_hash(&lost), Some(lost.encode()));
        s.commit(&won.header, &won.encode(), &[], &cert(&won), None)
            .unwrap();
        assert_eq!(by_hash(&won), Some(won.encode()), "a decided block");
        assert_eq!(by_hash(&lost), None, "a proposal that lost is gone");
        // A block that arrived by sync (never recorded as a proposal).
        let next = block(2, won.hash(), 12);
        s.commit(&next.header, &next.encode(), &[], &cert(&next), None)
            .unwrap();
        assert_eq!(by_hash(&next), Some(next.encode()));
        assert_eq!(s.block_by_hash(&Hash([7; 32])).unwrap(), None);
    }
}

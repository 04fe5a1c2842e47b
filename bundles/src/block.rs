//! Blocks and headers. The header commits to the ordered bundle list and to the per-rollup
//! tree from which every rollup's slice of the block is proven complete.

use crate::bundle::{SignedBundle, Window};
use crate::hash::Hash;
use crate::limits::Limits;
use crate::rollup_tree::{rollup_leaves, RollupTree};
use crate::validator::Address;
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::HashSet;

/// Domain tag of a block (header) hash.
pub const HEADER_TAG: &[u8] = b"lockstep:header:v1";
/// Domain tag of the bundle-list commitment.
pub const BUNDLES_TAG: &[u8] = b"lockstep:bundles:v1";

/// What the certificate signs (through its hash).
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockHeader {
    pub chain_id: u64,
    pub height: u64,
    /// Milliseconds since the Unix epoch, chosen by the proposer.
    pub timestamp: u64,
    pub proposer: Address,
    pub parent_hash: Hash,
    /// Number of bundles in the block.
    pub bundle_count: u32,
    /// Commitment to the ordered list of bundle hashes.
    pub bundles_root: Hash,
    /// Root of the sorted per-rollup tree (see `rollup_tree`).
    pub rollups_root: Hash,
    /// Hash of the validator set that decides this height ([`crate::ValidatorSet::hash`]):
    /// a client that follows the chain sees from the header alone when the set changed.
    pub validators_hash: Hash,
}

impl BlockHeader {
    /// The block hash: `SHA-256(b"lockstep:header:v1" ++ borsh(header))`.
    pub fn hash(&self) -> Hash {
        Hash::tagged(HEADER_TAG, &[&borsh::to_vec(self).unwrap_or_default()])
    }

    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<BlockHeader, String> {
        borsh::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// A header and its ordered bundles.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub bundles: Vec<SignedBundle>,
}

/// Why a block's body does not match its header or breaks a protocol rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("block is for chain {got}, expected {expected}")]
    WrongChain { expected: u64, got: u64 },
    #[error("block is for height {got}, expected {expected}")]
    WrongHeight { expected: u64, got: u64 },
    #[error("parent hash {got} does not match the previous block {expected}")]
    WrongParent { expected: Hash, got: Hash },
    #[error("header says {header} bundles, body has {body}")]
    CountMismatch { header: u32, body: usize },
    #[error("bundles root does not match the body")]
    BundlesRoot,
    #[error("rollups root does not match the body")]
    RollupsRoot,
    #[error("bundle {index} ({hash}) is invalid: {reason}")]
    InvalidBundle {
        index: usize,
        hash: Hash,
        reason: String,
    },
    #[error("bundle {hash} appears twice in the block")]
    DuplicateBundle { hash: Hash },
    #[error("bundles total {size} bytes, above max_block_bytes {max}")]
    TooLarge { size: usize, max: u32 },
    #[error("undecodable block: {0}")]
    Undecodable(String),
}

/// Commitment to the ordered bundle hashes.
pub fn bundles_root(hashes: &[Hash]) -> Hash {
    let count = (hashes.len() as u64).to_le_bytes();
    let mut parts: Vec<&[u8]> = Vec::with_capacity(hashes.len() + 1);
    parts.push(&count);
    parts.extend(hashes.iter().map(|h| &h.0[..]));
    Hash::tagged(BUNDLES_TAG, &parts)
}

impl Block {
    /// Assembles a block; computes both roots from the bundles. `hashes` are the bundles'
    /// hashes in the same order (already known to the caller, so not recomputed).
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        chain_id: u64,
        height: u64,
        timestamp: u64,
        proposer: Address,
        parent_hash: Hash,
        validators_hash: Hash,
        bundles: Vec<SignedBundle>,
        hashes: &[Hash],
    ) -> Block {
        let tree = RollupTree::new(&rollup_leaves(&bundles, hashes));
        let header = BlockHeader {
            chain_id,
            height,
            timestamp,
            proposer,
            parent_hash,
            bundle_count: bundles.len() as u32,
            bundles_root: bundles_root(hashes),
            rollups_root: tree.root(),
            validators_hash,
        };
        Block { header, bundles }
    }

    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    /// The encoding of the block with this header whose bundles have these canonical
    /// encodings, in order: the same bytes as [`Block::encode`], without re-encoding bundles.
    pub fn encode_from_parts<B: AsRef<[u8]>>(header: &BlockHeader, bundles: &[B]) -> Vec<u8> {
        let head = header.encode();
        let size = head.len() + 4 + bundles.iter().map(|b| b.as_ref().len()).sum::<usize>();
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&head);
        out.extend_from_slice(&(bundles.len() as u32).to_le_bytes());
        for b in bundles {
            out.extend_from_slice(b.as_ref());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Block, BlockError> {
        borsh::from_slice(bytes).map_err(|e| BlockError::Undecodable(e.to_string()))
    }

    /// Checks the body against the header and every bundle against the protocol rules,
    /// except signatures (checked by the caller, who may already have verified them).
    /// `hashes` are the bundles' hashes in block order.
    pub fn check_body(
        &self,
        hashes: &[Hash],
        encoded_sizes: &[usize],
        limits: &Limits,
    ) -> Result<(), BlockError> {
        let h = &self.header;
        if h.bundle_count as usize != self.bundles.len() {
            return Err(BlockError::CountMismatch {
                header: h.bundle_count,
                body: self.bundles.len(),
            });
        }
        let total: usize = encoded_sizes.iter().sum();
        if total > limits.max_block_bytes as usize {
            return Err(BlockError::TooLarge {
                size: total,
                max: limits.max_block_bytes,
            });
        }
        let window = Window::after(h.height.saturating_sub(1), limits);
        let mut seen = HashSet::with_capacity(hashes.len());
        for (index, ((b, hash), size)) in self
            .bundles
            .iter()
            .zip(hashes)
            .zip(encoded_sizes)
            .enumerate()
        {
            if !seen.insert(*hash) {
                return Err(BlockError::DuplicateBundle { hash: *hash });
            }
            b.check_static(*size, h.chain_id, &window, limits)
                .map_err(|e| BlockError::InvalidBundle {
                    index,
                    hash: *hash,
                    reason: e.to_string(),
                })?;
        }
        if bundles_root(hashes) != h.bundles_root {
            return Err(BlockError::BundlesRoot);
        }
        let tree = RollupTree::new(&rollup_leaves(&self.bundles, hashes));
        if tree.root() != h.rollups_root {
            return Err(BlockError::RollupsRoot);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{BundleBody, Leg};

    #[test]
    fn encoding_from_parts_is_the_block_encoding() {
        let bundles: Vec<SignedBundle> = (0..3u8)
            .map(|i| SignedBundle {
                body: BundleBody {
                    chain_id: 1,
                    signer: [i; 32],
                    nonce: i as u64,
                    valid_until: 9,
                    legs: vec![Leg {
                        rollup_id: 7,
                        data: vec![i; 10 + i as usize].into(),
                    }],
                },
                signature: [i; 64],
            })
            .collect();
        let hashes: Vec<Hash> = bundles.iter().map(SignedBundle::hash).collect();
        let block = Block::build(
            1,
            2,
            3,
            Address::default(),
            Hash::ZERO,
            Hash::ZERO,
            bundles,
            &hashes,
        );
        let parts: Vec<Vec<u8>> = block.bundles.iter().map(SignedBundle::encode).collect();
        assert_eq!(
            Block::encode_from_parts(&block.header, &parts),
            block.encode()
        );
        let empty = Block::build(
            1,
            2,
            3,
            Address::default(),
            Hash::ZERO,
            Hash::ZERO,
            vec![],
            &[],
        );
        assert_eq!(
            Block::encode_from_parts::<Vec<u8>>(&empty.header, &[]),
            empty.encode()
        );
    }
}

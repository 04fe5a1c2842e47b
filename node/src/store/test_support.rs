//! What the store's tests share: blocks on a chain and certificates for them.

use lockstep_bundles::{Address, Block, CommitCertificate, CommitSig, Hash};

pub(super) fn block(height: u64, parent: Hash, ts: u64) -> Block {
    Block::build(
        1,
        height,
        ts,
        Address::default(),
        parent,
        Hash::ZERO,
        vec![],
        &[],
    )
}

pub(super) fn cert(b: &Block) -> CommitCertificate {
    CommitCertificate {
        height: b.header.height,
        round: 0,
        block_hash: b.hash(),
        signatures: vec![CommitSig {
            address: Address::default(),
            signature: [1; 64],
        }],
    }
}

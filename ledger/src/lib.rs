//! An example rollup execution node: a token ledger on top of `lockstep-client`.
//!
//! What each step does, and nothing more:
//! - **follow**: receive this rollup's batch for every sequencer height, verified by the client
//!   library (commit certificate against the genesis validators, completeness proof against
//!   the header);
//! - **execute**: apply each leg, in batch order, to an in-memory balance table; a leg that is
//!   malformed or overdraws is recorded as failed and changes nothing;
//! - **state root**: SHA-256 over the sorted balance table — a fingerprint of this node's
//!   state, not a proof of anything;
//! - **settle**: append `(height, block hash, state root)` to a local settlement log file.
//!   Nothing is posted anywhere and nothing about the sequencer is proven by it.
//!
//! Cross-rollup transfers are atomic bundles: a `BridgeOut` leg on one rollup and a
//! `BridgeIn` leg on the other, included at the same sequencer height or not at all.

use borsh::{BorshDeserialize, BorshSerialize};
use lockstep_bundles::{Hash, RollupEntry};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A ledger transaction, carried Borsh-encoded in a leg's data.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum LedgerTx {
    Mint {
        to: String,
        amount: u64,
    },
    Transfer {
        from: String,
        to: String,
        amount: u64,
    },
    /// Burns here; the sibling leg mints on `to_rollup`.
    BridgeOut {
        from: String,
        amount: u64,
        to_rollup: u64,
    },
    /// Mints here; valid only if the same bundle carries the matching `BridgeOut`.
    BridgeIn {
        to: String,
        amount: u64,
        from_rollup: u64,
    },
}

impl LedgerTx {
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }
}

/// What happened to one leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Ok(LedgerTx),
    Failed(String),
}

/// The balance table of one rollup.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pub rollup_id: u64,
    pub balances: BTreeMap<String, u64>,
}

impl Ledger {
    pub fn new(rollup_id: u64) -> Ledger {
        Ledger {
            rollup_id,
            balances: BTreeMap::new(),
        }
    }

    /// Executes one entry (one leg of a bundle).
    pub fn execute(&mut self, e: &RollupEntry) -> Applied {
        let tx = match LedgerTx::try_from_slice(&e.data) {
            Ok(tx) => tx,
            Err(err) => return Applied::Failed(format!("not a ledger transaction: {err}")),
        };
        let res = match &tx {
            LedgerTx::Mint { to, amount } => self.credit(to, *amount),
            LedgerTx::Transfer { from, to, amount } => self
                .debit(from, *amount)
                .and_then(|_| self.credit(to, *amount)),
            LedgerTx::BridgeOut {
                from,
                amount,
                to_rollup,
            } => {
                if !e.rollups.contains(to_rollup) {
                    Err(format!("bundle has no leg on rollup {to_rollup}"))
                } else {
                    self.debit(from, *amount)
                }
            }
            LedgerTx::BridgeIn {
                to,
                amount,
                from_rollup,
            } => {
                if !e.rollups.contains(from_rollup) {
                    Err(format!("bundle has no leg on rollup {from_rollup}"))
                } else {
                    self.credit(to, *amount)
                }
            }
        };
        match res {
            Ok(()) => Applied::Ok(tx),
            Err(why) => Applied::Failed(why),
        }
    }

    fn credit(&mut self, who: &str, amount: u64) -> Result<(), String> {
        let b = self.balances.entry(who.to_string()).or_insert(0);
        *b = b.checked_add(amount).ok_or("balance overflow")?;
        Ok(())
    }

    fn debit(&mut self, who: &str, amount: u64) -> Result<(), String> {
        let b = self.balances.get(who).copied().unwrap_or(0);
        if b < amount {
            return Err(format!("{who} has {b}, cannot pay {amount}"));
        }
        self.balances.insert(who.to_string(), b - amount);
        Ok(())
    }

    /// SHA-256 over the sorted balance table.
    pub fn state_root(&self) -> Hash {
        let bytes = borsh::to_vec(&self.balances.iter().collect::<Vec<_>>()).unwrap_or_default();
        Hash::tagged(
            b"lockstep-ledger:state:v1",
            &[&self.rollup_id.to_le_bytes(), &bytes],
        )
    }
}

/// One settlement record: what this ledger's state was after a sequencer height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub height: u64,
    pub block_hash: Hash,
    pub state_root: Hash,
}

/// An append-only settlement log: one line `height block_hash state_root` per height.
pub struct SettlementLog {
    path: PathBuf,
}

impl SettlementLog {
    pub fn new(path: &Path) -> SettlementLog {
        SettlementLog {
            path: path.to_path_buf(),
        }
    }

    pub fn append(&self, s: &Settlement) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        writeln!(f, "{} {} {}", s.height, s.block_hash, s.state_root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tx: &LedgerTx, rollups: Vec<u64>) -> RollupEntry {
        RollupEntry {
            bundle_hash: Hash::ZERO,
            leg_index: 0,
            rollups,
            data: tx.encode(),
        }
    }

    #[test]
    fn executes_transfers_and_refuses_overdrafts_and_unpaired_bridges() {
        let mut l = Ledger::new(1);
        let r0 = l.state_root();
        assert!(matches!(
            l.execute(&entry(
                &LedgerTx::Mint {
                    to: "alice".into(),
                    amount: 10
                },
                vec![1]
            )),
            Applied::Ok(_)
        ));
        assert_ne!(l.state_root(), r0);
        let over = LedgerTx::Transfer {
            from: "alice".into(),
            to: "bob".into(),
            amount: 11,
        };
        assert!(matches!(
            l.execute(&entry(&over, vec![1])),
            Applied::Failed(_)
        ));
        let out = LedgerTx::BridgeOut {
            from: "alice".into(),
            amount: 4,
            to_rollup: 2,
        };
        assert!(
            matches!(l.execute(&entry(&out, vec![1])), Applied::Failed(_)),
            "no sibling leg"
        );
        assert!(matches!(
            l.execute(&entry(&out, vec![1, 2])),
            Applied::Ok(_)
        ));
        assert_eq!(l.balances["alice"], 6);
        let garbage = RollupEntry {
            bundle_hash: Hash::ZERO,
            leg_index: 0,
            rollups: vec![1],
            data: vec![9],
        };
        assert!(matches!(l.execute(&garbage), Applied::Failed(_)));
    }
}

//! A node's home directory: `config.toml`, `genesis.json`, `key.json`, `data/`.

use crate::config::Config;
use crate::genesis::Genesis;
use crate::keys::NodeKey;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.toml";
pub const GENESIS_FILE: &str = "genesis.json";
pub const KEY_FILE: &str = "key.json";
pub const DATA_DIR: &str = "data";
pub const SIGNED_HEIGHT_FILE: &str = "signed_height";
/// The log of signed consensus messages (`consensus.signed_log`).
pub const SIGNED_LOG_FILE: &str = "signed.jsonl";

pub struct Home {
    pub dir: PathBuf,
}

impl Home {
    pub fn new(dir: &Path) -> Home {
        Home {
            dir: dir.to_path_buf(),
        }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }
    pub fn genesis(&self) -> PathBuf {
        self.dir.join(GENESIS_FILE)
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }
    pub fn db(&self) -> PathBuf {
        self.dir.join(DATA_DIR).join("db")
    }
    pub fn wal(&self) -> PathBuf {
        self.dir.join(DATA_DIR).join("wal").join("consensus.wal")
    }
    /// The highest height this validator has signed at (`SignFloor`): kept outside `data/`,
    /// with the key, so losing the store and WAL does not lose it.
    pub fn signed_height(&self) -> PathBuf {
        self.dir.join(SIGNED_HEIGHT_FILE)
    }
    pub fn signed_log(&self) -> PathBuf {
        self.dir.join(SIGNED_LOG_FILE)
    }

    /// Writes whatever of key, config and genesis is missing; never overwrites.
    pub fn init(
        &self,
        config: &Config,
        key: Option<&NodeKey>,
        genesis: Option<&Genesis>,
    ) -> eyre::Result<()> {
        std::fs::create_dir_all(self.dir.join(DATA_DIR))?;
        let key = match key {
            Some(k) => k.clone(),
            None if self.key().exists() => NodeKey::load(&self.key())?,
            None => NodeKey::generate(),
        };
        if !self.key().exists() {
            key.save(&self.key())?;
        }
        if !self.config().exists() {
            config.save(&self.config())?;
        }
        if !self.genesis().exists() {
            let g = genesis
                .cloned()
                .unwrap_or_else(|| Genesis::new(1, &[key.public_key()]));
            g.save(&self.genesis())?;
        }
        Ok(())
    }
}

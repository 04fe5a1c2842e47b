//! Protocol limits, fixed in the genesis file, and the stateless validity rules of a bundle.

use serde::{Deserialize, Serialize};

/// Default maximum number of legs in one bundle.
pub const DEFAULT_MAX_LEGS: u32 = 16;
/// Default maximum encoded size of a `SignedBundle`, in bytes.
pub const DEFAULT_MAX_BUNDLE_BYTES: u32 = 131_072;
/// Default maximum total encoded size of the bundles in one block, in bytes.
pub const DEFAULT_MAX_BLOCK_BYTES: u32 = 4 * 1024 * 1024;
/// Default distance, in heights, that `valid_until` may lie ahead of the latest height.
pub const DEFAULT_MAX_TTL: u64 = 3600;

/// The protocol limits every validator enforces identically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_legs: u32,
    pub max_bundle_bytes: u32,
    pub max_block_bytes: u32,
    pub max_ttl: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_legs: DEFAULT_MAX_LEGS,
            max_bundle_bytes: DEFAULT_MAX_BUNDLE_BYTES,
            max_block_bytes: DEFAULT_MAX_BLOCK_BYTES,
            max_ttl: DEFAULT_MAX_TTL,
        }
    }
}

impl Limits {
    /// Checks the limits are usable; returns a message naming the bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_legs == 0 {
            return Err("max_legs must be at least 1".into());
        }
        if self.max_bundle_bytes < 128 {
            return Err("max_bundle_bytes must be at least 128".into());
        }
        if self.max_block_bytes < self.max_bundle_bytes {
            return Err("max_block_bytes must be at least max_bundle_bytes".into());
        }
        if self.max_ttl == 0 {
            return Err("max_ttl must be at least 1".into());
        }
        Ok(())
    }
}

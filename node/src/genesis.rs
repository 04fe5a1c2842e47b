//! The genesis file: chain id, validators and protocol limits, shared by every node.

use lockstep_bundles::hash::{decode_hex_array, encode_hex};
use lockstep_bundles::{Limits, Validator, ValidatorSet};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct GenesisValidator {
    /// `0x` + 32-byte ed25519 public key.
    pub public_key: String,
    pub voting_power: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub chain_id: u64,
    pub validators: Vec<GenesisValidator>,
    #[serde(default)]
    pub limits: Limits,
}

impl Genesis {
    pub fn new(chain_id: u64, keys: &[[u8; 32]]) -> Genesis {
        Genesis {
            chain_id,
            validators: keys
                .iter()
                .map(|k| GenesisValidator {
                    public_key: encode_hex(k),
                    voting_power: 1,
                })
                .collect(),
            limits: Limits::default(),
        }
    }

    /// The validator set, checked (keys well-formed, no duplicates, non-zero power).
    pub fn validator_set(&self) -> eyre::Result<ValidatorSet> {
        let vals = self
            .validators
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let pk = decode_hex_array::<32>(&v.public_key)
                    .map_err(|e| eyre::eyre!("genesis validators[{i}].public_key: {e}"))?;
                if ed25519_dalek::VerifyingKey::from_bytes(&pk).is_err() {
                    eyre::bail!("genesis validators[{i}].public_key is not an ed25519 public key");
                }
                Ok(Validator::new(pk, v.voting_power))
            })
            .collect::<eyre::Result<Vec<_>>>()?;
        ValidatorSet::new(vals).map_err(|e| eyre::eyre!("genesis validators: {e}"))
    }

    pub fn load(path: &Path) -> eyre::Result<Genesis> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| eyre::eyre!("cannot read genesis {}: {e}", path.display()))?;
        let g: Genesis = serde_json::from_str(&text)
            .map_err(|e| eyre::eyre!("genesis {} is malformed: {e}", path.display()))?;
        g.limits
            .validate()
            .map_err(|e| eyre::eyre!("genesis limits: {e}"))?;
        g.validator_set()?;
        Ok(g)
    }

    pub fn save(&self, path: &Path) -> eyre::Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)? + "\n")?;
        Ok(())
    }
}

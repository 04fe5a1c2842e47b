//! The validator key file: one ed25519 secret, the consensus key and the libp2p identity of
//! both swarms (consensus and gossip), so every validator's peer id follows from the genesis
//! file.

use lockstep_bundles::hash::{decode_hex_array, encode_hex};
use lockstep_bundles::Address;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone)]
pub struct NodeKey {
    pub secret: [u8; 32],
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeyFile {
    address: String,
    public_key: String,
    secret_key: String,
}

impl NodeKey {
    pub fn generate() -> NodeKey {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        NodeKey { secret }
    }

    pub fn signing_key(&self) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&self.secret)
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.signing_key().verifying_key().to_bytes()
    }

    pub fn address(&self) -> Address {
        Address::from_public_key(&self.public_key())
    }

    pub fn load(path: &Path) -> eyre::Result<NodeKey> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| eyre::eyre!("cannot read key file {}: {e}", path.display()))?;
        let f: KeyFile = serde_json::from_str(&text)
            .map_err(|e| eyre::eyre!("key file {} is malformed: {e}", path.display()))?;
        let secret = decode_hex_array::<32>(&f.secret_key)
            .map_err(|e| eyre::eyre!("key file {}: secretKey: {e}", path.display()))?;
        let key = NodeKey { secret };
        if encode_hex(&key.public_key()) != f.public_key.to_lowercase() {
            eyre::bail!(
                "key file {}: publicKey does not match secretKey",
                path.display()
            );
        }
        Ok(key)
    }

    pub fn save(&self, path: &Path) -> eyre::Result<()> {
        let f = KeyFile {
            address: self.address().to_hex(),
            public_key: encode_hex(&self.public_key()),
            secret_key: encode_hex(&self.secret),
        };
        std::fs::write(path, serde_json::to_string_pretty(&f)? + "\n")?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }
}

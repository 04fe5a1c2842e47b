//! The client-side commands of the `lockstep` binary: `rollup follow` and `bundle send`.

use crate::genesis::Genesis;
use crate::keys::NodeKey;
use lockstep_bundles::hash::{decode_hex, encode_hex};
use lockstep_client::follower::Follower;
use lockstep_client::tracker::{send_and_wait, Outcome};
use lockstep_client::verify::BatchVerifier;
use lockstep_client::SeqApiClient;
use std::path::Path;
use std::time::Duration;

fn ws_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        url.to_string()
    }
}

/// Parses `ROLLUP_ID:0xHEX`.
pub fn parse_leg(s: &str) -> eyre::Result<(u64, Vec<u8>)> {
    let (id, data) = s
        .split_once(':')
        .ok_or_else(|| eyre::eyre!("leg `{s}`: expected ROLLUP_ID:0xHEX"))?;
    let id = id
        .parse()
        .map_err(|e| eyre::eyre!("leg `{s}`: rollup id: {e}"))?;
    let data = decode_hex(data).map_err(|e| eyre::eyre!("leg `{s}`: data: {e}"))?;
    Ok((id, data))
}

/// `lockstep rollup follow`: prints verified batches until interrupted.
pub async fn follow(
    rollup: u64,
    rpc: Vec<String>,
    genesis: &Path,
    from: Option<u64>,
) -> eyre::Result<()> {
    let g = Genesis::load(genesis)?;
    let verifier = BatchVerifier::new(g.chain_id, g.validator_set()?);
    let urls: Vec<String> = rpc.iter().map(|u| ws_url(u)).collect();
    let mut follower = Follower::new(urls, rollup, from, verifier, 20);
    loop {
        let v = tokio::select! {
            v = follower.next() => v?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        println!(
            "height {} block {} entries {} (verified via {})",
            v.batch.height,
            v.json.block_hash,
            v.batch.entries.len(),
            follower.node()
        );
        for e in &v.batch.entries {
            println!(
                "  bundle {} leg {} rollups {:?} data {}",
                e.bundle_hash,
                e.leg_index,
                e.rollups,
                encode_hex(&e.data)
            );
        }
    }
}

/// `lockstep bundle send`: signs, sends and waits for the outcome.
pub async fn send(
    key: &Path,
    legs: &[String],
    rpc: &str,
    valid_for: u64,
    nonce: Option<u64>,
    timeout_secs: u64,
) -> eyre::Result<()> {
    let key = NodeKey::load(key)?;
    let legs = legs
        .iter()
        .map(|l| parse_leg(l))
        .collect::<eyre::Result<Vec<_>>>()?;
    let client = jsonrpsee::http_client::HttpClientBuilder::default().build(rpc)?;
    let chain_id = client.chain_id().await?;
    let height = client.block_number().await?;
    let nonce = nonce.unwrap_or_else(rand::random);
    let bundle = lockstep_client::bundle::sign(
        &key.signing_key(),
        chain_id,
        nonce,
        height + valid_for,
        legs,
    );
    println!("sending bundle {}", bundle.hash());
    let (hash, outcome) =
        send_and_wait(&client, &bundle, Duration::from_secs(timeout_secs)).await?;
    match outcome {
        Outcome::Included { height, index } => {
            println!("bundle {hash} included at height {height}, index {index}")
        }
        Outcome::Dropped { reason } => eyre::bail!("bundle {hash} dropped: {reason}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legs_parse_and_errors_are_named() {
        assert_eq!(parse_leg("7:0x0102").unwrap(), (7, vec![1, 2]));
        assert!(parse_leg("7")
            .unwrap_err()
            .to_string()
            .contains("ROLLUP_ID:0xHEX"));
        assert!(parse_leg("x:0x01")
            .unwrap_err()
            .to_string()
            .contains("rollup id"));
        assert!(parse_leg("1:zz").unwrap_err().to_string().contains("data"));
    }
}

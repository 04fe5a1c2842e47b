//! The JSON-RPC v1 API (protocol §3): methods, JSON shapes and error codes.

use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::types::ErrorObjectOwned;
use lockstep_bundles::{Address, Hash};
use serde::{Deserialize, Serialize};

/// Error codes for rejected bundles and refused subscriptions (protocol §3).
pub mod codes {
    pub const BAD_SIGNATURE: i32 = 4001;
    pub const WRONG_CHAIN: i32 = 4002;
    pub const EXPIRED: i32 = 4003;
    pub const TOO_LARGE: i32 = 4004;
    pub const UNDECODABLE: i32 = 4005;
    pub const BUSY: i32 = 4006;
    pub const SUBSCRIPTION_REFUSED: i32 = 4007;
    pub const SET_UPDATE_REFUSED: i32 = 4008;
    pub const INVALID_PARAMS: i32 = -32602;
    pub const METHOD_NOT_FOUND: i32 = -32601;
}

/// An error object with a code and a readable message.
pub fn error(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message, None::<()>)
}

/// One leg, as `seq_sendBundle` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LegJson {
    pub rollup_id: u64,
    /// `0x` hex.
    pub data: String,
}

/// A signed bundle as a JSON object (`seq_sendBundle`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleJson {
    pub chain_id: u64,
    /// `0x` + 32-byte ed25519 public key.
    pub signer: String,
    pub nonce: u64,
    pub valid_until: u64,
    pub legs: Vec<LegJson>,
    /// `0x` + 64-byte signature over the bundle hash.
    pub signature: String,
}

/// `seq_getBundleStatus` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleStatusJson {
    /// `pending`, `included`, `dropped` or `unknown`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `seq_getBlock` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockJson {
    pub height: u64,
    pub hash: Hash,
    pub parent_hash: Hash,
    pub timestamp: u64,
    pub proposer: Address,
    pub bundles: Vec<Hash>,
}

/// One entry of a rollup batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryJson {
    pub bundle_hash: Hash,
    pub leg_index: u32,
    pub rollups: Vec<u64>,
    /// `0x` hex.
    pub data: String,
}

/// What one rollup receives for one height (protocol §2).
///
/// `proof` is `0x` + hex of `borsh(BatchProof { header, rollup })` and `certificate` is `0x` +
/// hex of `borsh(CommitCertificate)`; see `docs/batches.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollupBatchJson {
    pub rollup_id: u64,
    pub height: u64,
    pub block_hash: Hash,
    pub timestamp: u64,
    pub entries: Vec<EntryJson>,
    pub proof: String,
    pub certificate: String,
}

/// `seq_health` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthJson {
    pub height: u64,
    pub peers: u64,
    pub syncing: bool,
    pub validator: bool,
    /// When this node committed its latest height (its own wall clock, Unix ms); `null` until
    /// it has committed one since it started.
    #[serde(default)]
    pub last_decided_at: Option<u64>,
    /// No height committed here for longer than the stall bound (protocol §3.2, `seq_health`).
    #[serde(default)]
    pub stalled: bool,
}

/// One entry of `seq_validators`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidatorJson {
    pub address: Address,
    /// `0x` + 32-byte ed25519 public key.
    pub public_key: String,
    pub voting_power: u64,
}

/// One validator set of `seq_getValidatorSets`: what the serving node says; a client checks
/// it against the update it names (the rollup-0 batch of height `includedAt`), never trusts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidatorSetJson {
    /// 0 for genesis; each update adds one.
    pub version: u64,
    /// The first height this set decides.
    pub from_height: u64,
    /// The height of the block that included the update making this set (0 for genesis).
    pub included_at: u64,
    /// The set's hash, as headers of the heights it decides carry it.
    pub validators_hash: Hash,
    pub validators: Vec<ValidatorJson>,
}

/// One message of a pair a validator signed where it may sign one (`seq_getEvidence`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedMessageJson {
    /// The block hash (a proposal's header hash, a proposal message's or a vote's block id);
    /// `null` for a nil vote.
    pub value: Option<Hash>,
    /// `0x` + 64-byte ed25519 signature over the message (protocol §5.2).
    pub signature: String,
    /// For a proposal seen as a stream: its proof-of-lock round and `0x` + the Borsh-encoded
    /// block header whose hash is `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pol_round: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

/// One entry of `seq_getEvidence`: two conflicting messages one validator signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceJson {
    pub validator: Address,
    pub height: u64,
    pub round: u32,
    /// `proposal` (two proposal streams), `proposal-message` (two proposal messages),
    /// `prevote` or `precommit`.
    pub kind: String,
    pub first: SignedMessageJson,
    pub second: SignedMessageJson,
}

/// The Lockstep JSON-RPC API, namespace `seq`.
#[rpc(server, client, namespace = "seq")]
pub trait SeqApi {
    #[method(name = "chainId")]
    async fn chain_id(&self) -> RpcResult<u64>;

    #[method(name = "blockNumber")]
    async fn block_number(&self) -> RpcResult<u64>;

    #[method(name = "sendRawBundle")]
    async fn send_raw_bundle(&self, raw: String) -> RpcResult<Hash>;

    #[method(name = "sendBundle")]
    async fn send_bundle(&self, bundle: BundleJson) -> RpcResult<Hash>;

    #[method(name = "getBundleStatus")]
    async fn get_bundle_status(&self, hash: Hash) -> RpcResult<BundleStatusJson>;

    #[method(name = "getBlock")]
    async fn get_block(&self, height: u64) -> RpcResult<Option<BlockJson>>;

    #[method(name = "getRollupBatch")]
    async fn get_rollup_batch(
        &self,
        rollup_id: u64,
        height: u64,
    ) -> RpcResult<Option<RollupBatchJson>>;

    #[subscription(name = "subscribeRollup" => "rollupBatch", unsubscribe = "unsubscribeRollup", item = RollupBatchJson)]
    async fn subscribe_rollup(
        &self,
        rollup_id: u64,
        from_height: Option<u64>,
    ) -> SubscriptionResult;

    #[method(name = "health")]
    async fn health(&self) -> RpcResult<HealthJson>;

    /// The validator set deciding `height` (default: the next height), as far as the node
    /// knows it (exact up to its latest height plus the update delay).
    #[method(name = "validators")]
    async fn validators(&self, height: Option<u64>) -> RpcResult<Vec<ValidatorJson>>;

    /// Every validator set from version `from_version` (default 0, genesis) on, oldest first,
    /// at most 256: those in force and the one scheduled, if any.
    #[method(name = "getValidatorSets")]
    async fn get_validator_sets(
        &self,
        from_version: Option<u64>,
    ) -> RpcResult<Vec<ValidatorSetJson>>;

    /// The equivocations this node has seen (at most 32 per validator, oldest first), each
    /// with both signed messages.
    #[method(name = "getEvidence")]
    async fn get_evidence(&self) -> RpcResult<Vec<EvidenceJson>>;
}

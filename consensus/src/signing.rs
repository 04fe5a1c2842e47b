//! Signing and verification of votes, proposals and proposal parts.
//!
//! The signed bytes are defined in `lockstep_bundles::certificate`, so a rollup client can
//! check a commit certificate with nothing but the validator set.

use crate::context::{BlockId, LockstepContext, Proposal, ValidatorAddress, Vote};
use async_trait::async_trait;
use bytes::Bytes;
use lockstep_bundles::certificate::{proposal_sign_bytes, vote_sign_bytes, VoteKind};
use lockstep_bundles::Hash;
use malachitebft_app_channel::app::types::core::{
    NilOrVal, SignedExtension, SignedMessage, SignedProposal, SignedVote, ValidatorProof,
    VoteExtensionScope, VoteType,
};
use malachitebft_app_channel::{Signer, Verifier};
use malachitebft_signing::{Error as SigningError, VerificationResult};
use malachitebft_signing_ed25519::{PrivateKey, PublicKey, Signature};
use parking_lot::Mutex;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A log of every consensus message this node signs, one JSON line each, for checking a run
/// for faults afterwards (two conflicting votes or proposals for the same height and round):
///
/// ```text
/// {"height":u64,"round":i64,"kind":"prevote"|"precommit"|"proposal","value":"<64 hex>"|null}
/// ```
///
/// `value` is the block hash (lowercase hex, no `0x`), `null` for a nil vote. A line is
/// appended (`O_APPEND`, one `write` per line) before the signature is handed out, so it
/// survives the process being killed (the page cache holds it; there is no `fsync`, so a
/// machine crash can lose the tail). A proposal appears when Malachite signs it and when the
/// host signs its stream (the same signed bytes with no POL round), so usually twice. A
/// write that fails is logged once and never fails the signing.
pub struct SignedLog {
    file: Mutex<File>,
    path: PathBuf,
    failed: AtomicBool,
}

impl SignedLog {
    /// Opens `path` for appending, creating it if needed.
    pub fn open(path: &Path) -> std::io::Result<SignedLog> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)?;
        Ok(SignedLog {
            file: Mutex::new(file),
            path: path.to_path_buf(),
            failed: AtomicBool::new(false),
        })
    }

    /// The line for one signed message.
    fn line(height: u64, round: i64, kind: &str, value: Option<&Hash>) -> String {
        let value = match value {
            Some(h) => format!("\"{}\"", hex::encode(h.0)),
            None => "null".to_string(),
        };
        format!("{{\"height\":{height},\"round\":{round},\"kind\":\"{kind}\",\"value\":{value}}}\n")
    }

    fn append(&self, height: u64, round: i64, kind: &str, value: Option<&Hash>) {
        let line = Self::line(height, round, kind, value);
        if let Err(e) = self.file.lock().write_all(line.as_bytes()) {
            if !self.failed.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    "cannot append to the signed-message log {}: {e} (logged once; signing goes on)",
                    self.path.display()
                );
            }
        }
    }

    fn vote(&self, vote: &Vote) {
        let kind = match vote.vote_type {
            VoteType::Prevote => "prevote",
            VoteType::Precommit => "precommit",
        };
        let value = match &vote.value {
            NilOrVal::Nil => None,
            NilOrVal::Val(id) => Some(&id.0),
        };
        self.append(vote.height.0, vote.round.as_i64(), kind, value);
    }
}

/// The highest height this validator has signed a vote or proposal at, and the blocks it
/// proposed at that height, kept in a small file beside its key — outside `data/`, so a
/// validator whose store and consensus WAL are lost (deleted, restored from an old backup, or
/// a disk replaced or full) still knows where it stopped, as CometBFT's
/// `priv_validator_state.json` does.
///
/// It guards against double signing after such a loss:
///
/// - the signer refuses every height below the highest it has signed (Malachite's WAL covers
///   the height in progress; heights below it were decided by the network, which this node had
///   left behind, and a vote there could contradict one it gave). The node uses it at start: a
///   validator whose store ends below that height follows the chain without voting until it
///   has caught up past it (`node/src/run.rs`), so the refusal is a last resort that stops the
///   node;
/// - a proposal for a (height, round) this validator already proposed a block at is refused
///   unless it is the same block; the host asks [`SignFloor::proposed`] first, and re-announces
///   the block it proposed (the proposal record with the block itself may have been lost with
///   the store: a full disk, a crash before the write) instead of building another.
///
/// Records are written in place (one `pwrite` of a fixed-size file) and synced before the
/// signature is handed out: once per height and once per own proposal, not per signature.
pub struct SignFloor {
    state: Mutex<(File, FloorState)>,
    at_start: u64,
    path: PathBuf,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FloorState {
    height: u64,
    /// (round, block) of this validator's proposals at `height`, oldest first.
    proposed: Vec<(u32, Hash)>,
}

/// Own proposals kept for the floor height: one per round this validator led (it leads one
/// round in `n`, so 16 cover 64 rounds of a 4-validator set); beyond, the oldest is forgotten.
const FLOOR_PROPOSALS: usize = 16;
/// `{height:020}\n`, then per proposal `{round:010} {64 hex}\n`, padded with spaces.
const FLOOR_HEIGHT_LINE: usize = 21;
const FLOOR_PROPOSAL_LINE: usize = 76;
const FLOOR_FILE: usize = FLOOR_HEIGHT_LINE + FLOOR_PROPOSALS * FLOOR_PROPOSAL_LINE;

impl FloorState {
    fn encode(&self) -> Vec<u8> {
        let mut out = format!("{:020}\n", self.height);
        for (r, h) in &self.proposed {
            out.push_str(&format!("{r:010} {}\n", hex::encode(h.0)));
        }
        let mut bytes = out.into_bytes();
        bytes.resize(FLOOR_FILE, b' ');
        bytes
    }

    fn decode(text: &str) -> Option<FloorState> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let height = lines.next()?.parse().ok()?;
        let mut proposed = Vec::new();
        for l in lines {
            let (r, h) = l.split_once(' ')?;
            let mut hash = [0u8; 32];
            hex::decode_to_slice(h, &mut hash).ok()?;
            proposed.push((r.parse().ok()?, Hash(hash)));
        }
        Some(FloorState { height, proposed })
    }
}

impl SignFloor {
    /// Opens (or creates) the floor file. A file that does not hold a height is an error:
    /// starting with a floor of 0 could let the validator sign again where it already did.
    pub fn open(path: &Path) -> std::io::Result<SignFloor> {
        let existing = match std::fs::read_to_string(path) {
            Ok(s) => Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let state = match existing {
            None => FloorState::default(),
            Some(s) => FloorState::decode(&s).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} does not hold a height ({:?}); it records the highest height this \
                         validator signed: restore it, or remove it only if this key has never \
                         signed on this chain",
                        path.display(),
                        s.chars().take(40).collect::<String>()
                    ),
                )
            })?,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let at_start = state.height;
        let fresh = state == FloorState::default();
        let floor = SignFloor {
            state: Mutex::new((file, state)),
            at_start,
            path: path.to_path_buf(),
        };
        if fresh {
            let guard = floor.state.lock();
            Self::write(&guard.0, &guard.1)?;
        }
        Ok(floor)
    }

    /// The highest height signed before this process started (0 for none).
    pub fn at_start(&self) -> u64 {
        self.at_start
    }

    /// The block this validator proposed at `(height, round)`, if it did.
    pub fn proposed(&self, height: u64, round: u32) -> Option<Hash> {
        let guard = self.state.lock();
        if guard.1.height != height {
            return None;
        }
        guard
            .1
            .proposed
            .iter()
            .find(|(r, _)| *r == round)
            .map(|(_, h)| *h)
    }

    fn write(file: &File, state: &FloorState) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt as _;
        file.write_all_at(&state.encode(), 0)?;
        file.sync_data()
    }

    /// Lets a signature at `height` go out — for a proposal of `block` at `round`, when
    /// `proposal` is given: refuses a height below the highest signed, and a proposal for a
    /// round this validator already proposed another block at; records what is new (synced)
    /// first.
    pub fn admit(&self, height: u64, proposal: Option<(u32, &Hash)>) -> Result<(), String> {
        let mut guard = self.state.lock();
        let (file, state) = &mut *guard;
        if height < state.height {
            return Err(format!(
                "refusing to sign at height {height}: this validator has signed at height {} \
                 ({}); a signature below it could contradict one it already gave",
                state.height,
                self.path.display()
            ));
        }
        let mut next = state.clone();
        if height > next.height {
            next = FloorState {
                height,
                proposed: Vec::new(),
            };
        }
        if let Some((round, block)) = proposal {
            match next.proposed.iter().find(|(r, _)| *r == round) {
                Some((_, b)) if b != block => {
                    return Err(format!(
                        "refusing to propose block {block} at height {height} round {round}: \
                         this validator proposed block {b} there ({})",
                        self.path.display()
                    ))
                }
                Some(_) => {}
                None => {
                    if next.proposed.len() == FLOOR_PROPOSALS {
                        next.proposed.remove(0);
                    }
                    next.proposed.push((round, *block));
                }
            }
        }
        if next != *state {
            Self::write(file, &next).map_err(|e| {
                format!(
                    "refusing to sign at height {height}: cannot record it in {}: {e}",
                    self.path.display()
                )
            })?;
            *state = next;
        }
        Ok(())
    }
}

/// Domain tag of vote-extension signing bytes (extensions are disabled; kept distinct anyway).
const EXTENSION_TAG: &[u8] = b"lockstep:vote-extension:v1";

fn kind(t: VoteType) -> VoteKind {
    match t {
        VoteType::Prevote => VoteKind::Prevote,
        VoteType::Precommit => VoteKind::Precommit,
    }
}

/// The bytes signed for a vote.
pub fn vote_bytes(chain_id: u64, vote: &Vote) -> Vec<u8> {
    let value = match &vote.value {
        NilOrVal::Nil => None,
        NilOrVal::Val(id) => Some(&id.0),
    };
    vote_sign_bytes(
        chain_id,
        kind(vote.vote_type),
        vote.height.0,
        vote.round.as_i64(),
        value,
        &vote.validator.0,
    )
}

/// The bytes signed for a proposal.
pub fn proposal_bytes(chain_id: u64, p: &Proposal) -> Vec<u8> {
    proposal_sign_bytes(
        chain_id,
        p.height.0,
        p.round.as_i64(),
        p.pol_round.as_i64(),
        &p.value.0,
        &p.proposer.0,
    )
}

/// The bytes signed in the `Fin` part of a streamed block: a proposal with no POL round.
pub fn part_bytes(
    chain_id: u64,
    height: u64,
    round: u32,
    block: &Hash,
    proposer: &ValidatorAddress,
) -> Vec<u8> {
    proposal_sign_bytes(chain_id, height, i64::from(round), -1, block, &proposer.0)
}

fn extension_bytes(
    chain_id: u64,
    scope: &VoteExtensionScope<LockstepContext>,
    ext: &Bytes,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(EXTENSION_TAG.len() + 80 + ext.len());
    v.extend_from_slice(EXTENSION_TAG);
    v.extend_from_slice(&chain_id.to_le_bytes());
    v.extend_from_slice(&scope.height.0.to_le_bytes());
    v.extend_from_slice(&scope.round.as_i64().to_le_bytes());
    v.extend_from_slice(&scope.value_id.0 .0);
    v.extend_from_slice(&scope.validator_address.0 .0);
    v.extend_from_slice(&(ext.len() as u64).to_le_bytes());
    v.extend_from_slice(ext);
    v
}

/// Signs with the validator's consensus key.
pub struct LockstepSigner {
    key: PrivateKey,
    chain_id: u64,
    log: Option<Arc<SignedLog>>,
    floor: Option<Arc<SignFloor>>,
}

impl LockstepSigner {
    pub fn new(key: PrivateKey, chain_id: u64) -> Self {
        LockstepSigner {
            key,
            chain_id,
            log: None,
            floor: None,
        }
    }

    /// Refuses heights below `floor`'s, and raises it as this signer signs higher.
    pub fn with_floor(mut self, floor: Arc<SignFloor>) -> Self {
        self.floor = Some(floor);
        self
    }

    fn admit(&self, height: u64, proposal: Option<(u32, &Hash)>) -> Result<(), String> {
        match &self.floor {
            Some(f) => f.admit(height, proposal),
            None => Ok(()),
        }
    }

    /// The block this validator proposed at `(height, round)` according to its floor (it may
    /// have lost the proposal's record with its store).
    pub fn proposed(&self, height: u64, round: u32) -> Option<BlockId> {
        self.floor
            .as_ref()
            .and_then(|f| f.proposed(height, round))
            .map(BlockId)
    }

    /// Appends every vote and proposal this signer signs to `log`.
    pub fn with_log(mut self, log: Arc<SignedLog>) -> Self {
        self.log = Some(log);
        self
    }

    /// Signs a proposal stream; refused below the signer's floor ([`SignFloor`]).
    pub fn sign_part(
        &self,
        height: u64,
        round: u32,
        block: &BlockId,
        proposer: &ValidatorAddress,
    ) -> Result<[u8; 64], String> {
        self.admit(height, Some((round, &block.0)))?;
        Ok(self.part_signature(height, round, block, proposer))
    }

    /// Signs a proposal stream without asking the floor (which would take it as this
    /// validator's proposal for the round), logged like any other: the junk a flooding
    /// Byzantine validator publishes. Test build only.
    #[cfg(feature = "byzantine")]
    pub fn sign_part_unguarded(
        &self,
        height: u64,
        round: u32,
        block: &BlockId,
        proposer: &ValidatorAddress,
    ) -> [u8; 64] {
        self.part_signature(height, round, block, proposer)
    }

    /// The signature over a proposal stream's bytes, appended to the signed-message log.
    fn part_signature(
        &self,
        height: u64,
        round: u32,
        block: &BlockId,
        proposer: &ValidatorAddress,
    ) -> [u8; 64] {
        let bytes = part_bytes(self.chain_id, height, round, &block.0, proposer);
        let sig = self.key.sign(&bytes).to_bytes();
        if let Some(log) = &self.log {
            log.append(height, i64::from(round), "proposal", Some(&block.0));
        }
        sig
    }
}

/// A refusal by the floor, as the engine's signing error (the engine then stops: the node
/// exits rather than sign).
fn refused(why: String) -> SigningError {
    tracing::error!("{why}");
    SigningError::from_source(std::io::Error::other(why))
}

#[async_trait]
impl Signer<LockstepContext> for LockstepSigner {
    async fn sign_vote(&self, vote: Vote) -> Result<SignedVote<LockstepContext>, SigningError> {
        self.admit(vote.height.0, None).map_err(refused)?;
        let sig = self.key.sign(&vote_bytes(self.chain_id, &vote));
        if let Some(log) = &self.log {
            log.vote(&vote);
        }
        Ok(SignedVote::new(vote, sig))
    }

    async fn sign_proposal(
        &self,
        proposal: Proposal,
    ) -> Result<SignedProposal<LockstepContext>, SigningError> {
        let round = proposal.round.as_u32().unwrap_or(0);
        self.admit(proposal.height.0, Some((round, &proposal.value.0)))
            .map_err(refused)?;
        let sig = self.key.sign(&proposal_bytes(self.chain_id, &proposal));
        if let Some(log) = &self.log {
            log.append(
                proposal.height.0,
                proposal.round.as_i64(),
                "proposal",
                Some(&proposal.value.0),
            );
        }
        Ok(SignedProposal::new(proposal, sig))
    }

    async fn sign_vote_extension(
        &self,
        scope: VoteExtensionScope<LockstepContext>,
        extension: Bytes,
    ) -> Result<SignedExtension<LockstepContext>, SigningError> {
        let sig = self
            .key
            .sign(&extension_bytes(self.chain_id, &scope, &extension));
        Ok(SignedMessage::new(extension, sig))
    }

    async fn sign_validator_proof(
        &self,
        public_key: Vec<u8>,
        peer_id: Vec<u8>,
    ) -> Result<ValidatorProof<LockstepContext>, SigningError> {
        let pre = ValidatorProof::<LockstepContext>::signing_bytes(&public_key, &peer_id);
        Ok(ValidatorProof::new(
            public_key,
            peer_id,
            self.key.sign(&pre),
        ))
    }
}

/// Verifies with validators' public keys (ZIP-215 rules, via Malachite's keys, which use `ed25519-consensus`).
pub struct LockstepVerifier {
    chain_id: u64,
}

impl LockstepVerifier {
    pub fn new(chain_id: u64) -> Self {
        LockstepVerifier { chain_id }
    }

    pub fn verify_part(
        &self,
        height: u64,
        round: u32,
        block: &Hash,
        proposer: &ValidatorAddress,
        signature: &[u8; 64],
        public_key: &PublicKey,
    ) -> bool {
        public_key
            .verify(
                &part_bytes(self.chain_id, height, round, block, proposer),
                &Signature::from_bytes(*signature),
            )
            .is_ok()
    }
}

#[async_trait]
impl Verifier<LockstepContext> for LockstepVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        let ok = public_key
            .verify(&vote_bytes(self.chain_id, vote), signature)
            .is_ok();
        Ok(VerificationResult::from_bool(ok))
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        let ok = public_key
            .verify(&proposal_bytes(self.chain_id, proposal), signature)
            .is_ok();
        Ok(VerificationResult::from_bool(ok))
    }

    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<LockstepContext>,
        extension: &Bytes,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, SigningError> {
        let ok = public_key
            .verify(&extension_bytes(self.chain_id, scope, extension), signature)
            .is_ok();
        Ok(VerificationResult::from_bool(ok))
    }

    async fn verify_validator_proof(
        &self,
        proof: &ValidatorProof<LockstepContext>,
    ) -> Result<VerificationResult, SigningError> {
        match proof.decoded_public_key() {
            Ok(pk) => Ok(VerificationResult::from_bool(
                pk.verify(&proof.preimage(), &proof.signature).is_ok(),
            )),
            Err(_) => Ok(VerificationResult::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Height;
    use malachitebft_app_channel::app::types::core::{Context as _, Round};

    fn signer() -> LockstepSigner {
        LockstepSigner::new(PrivateKey::from([5u8; 32]), 9)
    }

    /// A fresh path in the temporary directory, removed when dropped.
    struct TempPath(PathBuf);

    impl TempPath {
        fn new(name: &str) -> TempPath {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            TempPath(std::env::temp_dir().join(format!(
                "lockstep-{name}-{}-{nanos}.jsonl",
                std::process::id()
            )))
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[tokio::test]
    async fn the_floor_refuses_heights_below_the_highest_signed_and_survives_a_restart() {
        let path = TempPath::new("floor");
        let ctx = LockstepContext { chain_id: 9 };
        let me = ValidatorAddress(lockstep_bundles::Address::default());
        let block = BlockId(Hash([3; 32]));
        let floor = Arc::new(SignFloor::open(&path.0).unwrap());
        assert_eq!(floor.at_start(), 0);
        let s = signer().with_floor(floor);
        let vote = |h: u64| ctx.new_prevote(Height(h), Round::new(0), NilOrVal::Val(block), me);
        s.sign_vote(vote(5)).await.unwrap();
        // The same height again (the round goes on, or the WAL replays) is fine.
        s.sign_vote(vote(5)).await.unwrap();
        s.sign_part(9, 0, &block, &me).unwrap();
        assert!(
            s.sign_vote(vote(8)).await.is_err(),
            "below the highest signed"
        );
        assert!(s.sign_part(4, 0, &block, &me).is_err());
        drop(s);
        // A new process (the store and WAL may be gone): the floor is still 9.
        let floor = Arc::new(SignFloor::open(&path.0).unwrap());
        assert_eq!(floor.at_start(), 9);
        let s = signer().with_floor(floor);
        assert!(s.sign_vote(vote(3)).await.is_err());
        s.sign_vote(vote(9)).await.unwrap();
        s.sign_vote(vote(10)).await.unwrap();
        assert_eq!(SignFloor::open(&path.0).unwrap().at_start(), 10);
        // A proposal is recorded; another block for the same round is refused, the same
        // block (a restream) is not, and the record survives a restart.
        let floor = Arc::new(SignFloor::open(&path.0).unwrap());
        let s = signer().with_floor(floor.clone());
        let other = BlockId(Hash([4; 32]));
        s.sign_part(11, 2, &block, &me).unwrap();
        s.sign_part(11, 2, &block, &me).unwrap();
        assert!(s.sign_part(11, 2, &other, &me).is_err());
        s.sign_part(11, 3, &other, &me).unwrap();
        assert_eq!(floor.proposed(11, 2), Some(block.0));
        drop(s);
        let floor = SignFloor::open(&path.0).unwrap();
        assert_eq!(floor.at_start(), 11);
        assert_eq!(floor.proposed(11, 2), Some(block.0));
        assert_eq!(floor.proposed(11, 3), Some(other.0));
        assert_eq!(floor.proposed(11, 4), None);
        let s = signer().with_floor(Arc::new(floor));
        assert!(s
            .sign_proposal(ctx.new_proposal(Height(11), Round::new(2), other, Round::Nil, me))
            .await
            .is_err());
        // A file that holds no height is refused, never read as 0.
        std::fs::write(&path.0, "garbage").unwrap();
        let err = SignFloor::open(&path.0).err().expect("refused").to_string();
        assert!(err.contains("does not hold a height"), "{err}");
    }

    #[tokio::test]
    async fn every_vote_and_proposal_signed_is_appended_as_one_json_line() {
        let path = TempPath::new("signed");
        // An existing file is appended to, not truncated.
        std::fs::write(&path.0, "{\"earlier\":true}\n").unwrap();
        let s = signer().with_log(Arc::new(SignedLog::open(&path.0).unwrap()));
        let ctx = LockstepContext { chain_id: 9 };
        let me = ValidatorAddress(lockstep_bundles::Address::default());
        let block = BlockId(Hash([0xab; 32]));
        let (h, r) = (Height(7), Round::new(2));
        s.sign_proposal(ctx.new_proposal(h, r, block, Round::new(1), me))
            .await
            .unwrap();
        s.sign_part(7, 2, &block, &me).unwrap();
        s.sign_vote(ctx.new_prevote(h, r, NilOrVal::Val(block), me))
            .await
            .unwrap();
        s.sign_vote(ctx.new_precommit(h, r, NilOrVal::Nil, me))
            .await
            .unwrap();
        let hex = "ab".repeat(32);
        let text = std::fs::read_to_string(&path.0).unwrap();
        let want = [
            "{\"earlier\":true}".to_string(),
            format!("{{\"height\":7,\"round\":2,\"kind\":\"proposal\",\"value\":\"{hex}\"}}"),
            format!("{{\"height\":7,\"round\":2,\"kind\":\"proposal\",\"value\":\"{hex}\"}}"),
            format!("{{\"height\":7,\"round\":2,\"kind\":\"prevote\",\"value\":\"{hex}\"}}"),
            "{\"height\":7,\"round\":2,\"kind\":\"precommit\",\"value\":null}".to_string(),
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), want);
        // Without a log, signing writes nothing.
        signer()
            .sign_vote(ctx.new_prevote(h, r, NilOrVal::Nil, me))
            .await
            .unwrap();
        assert_eq!(std::fs::read_to_string(&path.0).unwrap(), text);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_log_that_cannot_be_written_never_fails_signing() {
        // Every write to /dev/full fails (no space left on device).
        let s = signer().with_log(Arc::new(SignedLog::open(Path::new("/dev/full")).unwrap()));
        let ctx = LockstepContext { chain_id: 9 };
        let me = ValidatorAddress(lockstep_bundles::Address::default());
        for _ in 0..2 {
            let v = ctx.new_precommit(Height(1), Round::new(0), NilOrVal::Nil, me);
            assert!(s.sign_vote(v).await.is_ok());
        }
        assert!(s
            .log
            .as_ref()
            .is_some_and(|l| l.failed.load(Ordering::Relaxed)));
    }
}

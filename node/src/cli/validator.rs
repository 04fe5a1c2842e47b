//! `lockstep validator …`: the operator's side of a validator set update (ADR-027): propose
//! one, co-sign it, submit it, and see the set in force and the one scheduled.
//!
//! The update travels between co-signers as a JSON file. Its `update` field is authoritative:
//! `0x` + hex of `borsh(SignedSetUpdate)`, signatures included. Its `summary` is the same
//! update made readable (chain, version, changes, signing hash, signers), written afresh from
//! `update` every time the file is written; a file whose summary does not describe its update
//! is refused, so what an operator reads in the file is what they sign.

use crate::home::Home;
use crate::keys::NodeKey;
use clap::{Args, Subcommand};
use jsonrpsee::core::ClientError;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use lockstep_bundles::hash::{decode_hex, decode_hex_array, encode_hex};
use lockstep_bundles::{
    sig, Address, Hash, SetChange, SetUpdate, SignedSetUpdate, Validator, ValidatorSet,
    SET_UPDATE_DELAY, SET_UPDATE_ROLLUP,
};
use lockstep_client::api::{BundleStatusJson, ValidatorSetJson};
use lockstep_client::SeqApiClient;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Subcommand)]
pub(crate) enum ValidatorCmd {
    /// Write a validator set update, not yet signed, to a file for the validators to sign;
    /// the changes are checked against the node's newest set first.
    ProposeUpdate {
        /// The node to ask for the chain id and the newest validator set.
        #[arg(long)]
        rpc: String,
        /// The version of the set the update changes (default: the node's newest set; any
        /// other version is refused, the node would refuse it too).
        #[arg(long)]
        version: Option<u64>,
        /// Add a validator: its ed25519 public key (0x + 64 hex digits) and voting power.
        #[arg(long = "add", value_name = "PUBKEY_HEX:POWER")]
        add: Vec<String>,
        /// Remove a validator.
        #[arg(long = "remove", value_name = "ADDRESS")]
        remove: Vec<String>,
        /// Change a validator's voting power.
        #[arg(long = "set-power", value_name = "ADDRESS:POWER")]
        set_power: Vec<String>,
        /// The update file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Overwrite FILE if it exists (its signatures are lost).
        #[arg(long)]
        force: bool,
    },
    /// Add this validator's signature to an update file (replacing its earlier one).
    Sign {
        #[command(flatten)]
        key: KeyArg,
        /// The update file, rewritten with the signature.
        #[arg(long, value_name = "FILE")]
        update: PathBuf,
        /// A node of the network: refuses to sign unless this key is in the set the update
        /// changes, and prints the power signed so far against that set's total.
        #[arg(long)]
        rpc: Option<String>,
    },
    /// Send a signed update to the chain, as the one leg of a bundle for rollup 0 signed by
    /// this key, and print the bundle's hash.
    Submit {
        /// The node to send the update to (HTTP or WebSocket URL).
        #[arg(long)]
        rpc: String,
        /// The update file.
        #[arg(long, value_name = "FILE")]
        update: PathBuf,
        #[command(flatten)]
        key: KeyArg,
        /// Wait until the bundle is included (or dropped, an error) and print the height the
        /// new set is in force from.
        #[arg(long)]
        wait: bool,
        /// The bundle may be included up to this many heights past the node's latest one
        /// (at most the genesis `max_ttl`).
        #[arg(long, default_value_t = DEFAULT_VALID_FOR)]
        valid_for: u64,
        /// With --wait: give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
    /// Print the validator set in force at the next height and the one scheduled, if any.
    Status {
        /// The node to ask (HTTP or WebSocket URL).
        #[arg(long)]
        rpc: String,
    },
}

/// Whose key: a validator's home directory or a key file.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub(crate) struct KeyArg {
    /// The validator's home directory (its key.json is used).
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,
    /// A key file as `lockstep init` writes it (key.json).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
}

/// Heights an update bundle stays includable: well inside the default `max_ttl` (3600).
const DEFAULT_VALID_FOR: u64 = 50;

/// How often `submit --wait` asks for the bundle's status.
const POLL: Duration = Duration::from_millis(250);

/// Runs one `lockstep validator` command.
pub(crate) fn run(cmd: ValidatorCmd) -> eyre::Result<()> {
    let rt = super::runtime()?;
    match cmd {
        ValidatorCmd::ProposeUpdate {
            rpc,
            version,
            add,
            remove,
            set_power,
            out,
            force,
        } => {
            let changes = parse_changes(&add, &remove, &set_power)?;
            rt.block_on(propose(&rpc, version, changes, &out, force))
        }
        ValidatorCmd::Sign { key, update, rpc } => {
            rt.block_on(sign(&key.load()?, &update, rpc.as_deref()))
        }
        ValidatorCmd::Submit {
            rpc,
            update,
            key,
            wait,
            valid_for,
            timeout_secs,
        } => rt.block_on(submit(
            &rpc,
            &update,
            &key.load()?,
            wait,
            valid_for,
            Duration::from_secs(timeout_secs),
        )),
        ValidatorCmd::Status { rpc } => rt.block_on(status(&rpc)),
    }
}

impl KeyArg {
    fn load(&self) -> eyre::Result<NodeKey> {
        match (&self.home, &self.key) {
            (Some(home), _) => NodeKey::load(&Home::new(home).key()),
            (None, Some(file)) => NodeKey::load(file),
            (None, None) => eyre::bail!("give --home DIR or --key FILE"),
        }
    }
}

// ---- The update file ----

/// The update file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateFile {
    /// `0x` + hex of `borsh(SignedSetUpdate)`: what is signed and submitted.
    update: String,
    /// `update`, readable; never read for anything but checking that it describes `update`.
    summary: Summary,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Summary {
    chain_id: u64,
    /// The version of the set the update changes.
    version: u64,
    changes: Vec<ChangeJson>,
    /// What every co-signer signs.
    signing_hash: Hash,
    /// The validators that have signed, by address.
    signers: Vec<Address>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "op",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
enum ChangeJson {
    Add {
        address: Address,
        public_key: String,
        power: u64,
    },
    Remove {
        address: Address,
    },
    SetPower {
        address: Address,
        power: u64,
    },
}

fn summary(u: &SignedSetUpdate) -> Summary {
    Summary {
        chain_id: u.update.chain_id,
        version: u.update.version,
        changes: u
            .update
            .changes
            .iter()
            .map(|c| match c {
                SetChange::Add { public_key, power } => ChangeJson::Add {
                    address: Address::from_public_key(public_key),
                    public_key: encode_hex(public_key),
                    power: *power,
                },
                SetChange::Remove { address } => ChangeJson::Remove { address: *address },
                SetChange::SetPower { address, power } => ChangeJson::SetPower {
                    address: *address,
                    power: *power,
                },
            })
            .collect(),
        signing_hash: u.update.signing_hash(),
        signers: u.signatures.iter().map(|s| s.address).collect(),
    }
}

fn to_file_text(u: &SignedSetUpdate) -> String {
    let file = UpdateFile {
        update: encode_hex(&u.encode()),
        summary: summary(u),
    };
    serde_json::to_string_pretty(&file).unwrap_or_default() + "\n"
}

fn from_file_text(text: &str) -> Result<SignedSetUpdate, String> {
    let file: UpdateFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let bytes = decode_hex(&file.update).map_err(|e| format!("update: {e}"))?;
    let u = SignedSetUpdate::decode(&bytes).map_err(|e| format!("update: {e}"))?;
    if file.summary != summary(&u) {
        return Err(
            "its summary does not describe its update (was it edited by hand?); \
                    the update is what counts: propose it again"
                .into(),
        );
    }
    Ok(u)
}

/// Reads and checks an update file.
fn read_update(path: &Path) -> eyre::Result<SignedSetUpdate> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| eyre::eyre!("cannot read update file {}: {e}", path.display()))?;
    from_file_text(&text)
        .map_err(|e| eyre::eyre!("update file {} is unusable: {e}", path.display()))
}

/// Writes an update file: whole or not at all (a temporary file renamed over it).
fn write_update(path: &Path, u: &SignedSetUpdate) -> eyre::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| eyre::eyre!("{} is not a file name", path.display()))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, to_file_text(u))
        .map_err(|e| eyre::eyre!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| eyre::eyre!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

// ---- Parsing the changes ----

fn parse_power(flag: &str, s: &str, power: &str) -> eyre::Result<u64> {
    let p: u64 = power
        .parse()
        .map_err(|e| eyre::eyre!("{flag} `{s}`: power `{power}`: {e}"))?;
    if p == 0 {
        eyre::bail!("{flag} `{s}`: power 0 (use --remove to take a validator out)");
    }
    Ok(p)
}

fn parse_address(flag: &str, s: &str, address: &str) -> eyre::Result<Address> {
    address
        .parse()
        .map_err(|e| eyre::eyre!("{flag} `{s}`: address: {e} (expected 0x + 40 hex digits)"))
}

/// Parses `--add PUBKEY_HEX:POWER`.
fn parse_add(s: &str) -> eyre::Result<SetChange> {
    let (key, power) = s
        .split_once(':')
        .ok_or_else(|| eyre::eyre!("--add `{s}`: expected PUBKEY_HEX:POWER"))?;
    let public_key = decode_hex_array::<32>(key)
        .map_err(|e| eyre::eyre!("--add `{s}`: public key: {e} (expected 0x + 64 hex digits)"))?;
    ed25519_dalek::VerifyingKey::from_bytes(&public_key)
        .map_err(|e| eyre::eyre!("--add `{s}`: public key: not an ed25519 public key: {e}"))?;
    Ok(SetChange::Add {
        public_key,
        power: parse_power("--add", s, power)?,
    })
}

/// Parses `--remove ADDRESS`.
fn parse_remove(s: &str) -> eyre::Result<SetChange> {
    Ok(SetChange::Remove {
        address: parse_address("--remove", s, s)?,
    })
}

/// Parses `--set-power ADDRESS:POWER`.
fn parse_set_power(s: &str) -> eyre::Result<SetChange> {
    let (address, power) = s
        .split_once(':')
        .ok_or_else(|| eyre::eyre!("--set-power `{s}`: expected ADDRESS:POWER"))?;
    Ok(SetChange::SetPower {
        address: parse_address("--set-power", s, address)?,
        power: parse_power("--set-power", s, power)?,
    })
}

/// The changes the flags give: additions, then removals, then new powers.
fn parse_changes(
    add: &[String],
    remove: &[String],
    set_power: &[String],
) -> eyre::Result<Vec<SetChange>> {
    let mut changes = Vec::new();
    for s in add {
        changes.push(parse_add(s)?);
    }
    for s in remove {
        changes.push(parse_remove(s)?);
    }
    for s in set_power {
        changes.push(parse_set_power(s)?);
    }
    if changes.is_empty() {
        eyre::bail!("no changes: give --add, --remove or --set-power");
    }
    Ok(changes)
}

// ---- The node's sets ----

/// A validator set as the node reports it, checked for consistency (keys, addresses, hash).
#[derive(Debug, Clone)]
struct NodeSet {
    version: u64,
    from_height: u64,
    included_at: u64,
    hash: Hash,
    set: ValidatorSet,
}

impl NodeSet {
    fn from_json(j: &ValidatorSetJson) -> eyre::Result<NodeSet> {
        let bad =
            |what: String| eyre::eyre!("the node's validator set version {}: {what}", j.version);
        let validators = j
            .validators
            .iter()
            .map(|v| {
                let pk = decode_hex_array::<32>(&v.public_key)
                    .map_err(|e| bad(format!("public key of {}: {e}", v.address)))?;
                let validator = Validator::new(pk, v.voting_power);
                if validator.address != v.address {
                    return Err(bad(format!("{} is not the address of its key", v.address)));
                }
                Ok(validator)
            })
            .collect::<eyre::Result<Vec<_>>>()?;
        let set = ValidatorSet::new(validators).map_err(|e| bad(e.to_string()))?;
        if set.hash() != j.validators_hash {
            return Err(bad("its validators do not match its hash".into()));
        }
        Ok(NodeSet {
            version: j.version,
            from_height: j.from_height,
            included_at: j.included_at,
            hash: j.validators_hash,
            set,
        })
    }
}

/// A node's error, with its code and message when the node answered one.
fn node_err(what: &'static str) -> impl FnOnce(ClientError) -> eyre::Report {
    move |e| match e {
        ClientError::Call(c) => match c.code() {
            code if code > 0 => {
                eyre::eyre!("{what}: refused by the node ({code}): {}", c.message())
            }
            code => eyre::eyre!("{what}: the node answered error {code}: {}", c.message()),
        },
        other => eyre::eyre!("{what}: {other}"),
    }
}

fn http_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("ws://") {
        format!("http://{rest}")
    } else if let Some(rest) = url.strip_prefix("wss://") {
        format!("https://{rest}")
    } else {
        url.to_string()
    }
}

/// A client of the node at `rpc`, and the node's chain id (which tells that it answers).
async fn connect(rpc: &str) -> eyre::Result<(HttpClient, u64)> {
    let client = HttpClientBuilder::default()
        .build(http_url(rpc))
        .map_err(|e| eyre::eyre!("--rpc {rpc}: {e}"))?;
    let chain_id = match client.chain_id().await {
        Ok(id) => id,
        Err(e @ ClientError::Call(_)) => return Err(node_err("seq_chainId")(e)),
        Err(e) => eyre::bail!("cannot reach the node at {rpc}: {e}"),
    };
    Ok((client, chain_id))
}

/// Every set the node knows, oldest first (the newest last, in force or scheduled).
async fn all_sets(client: &HttpClient) -> eyre::Result<Vec<NodeSet>> {
    let mut sets: Vec<NodeSet> = Vec::new();
    let mut from = 0;
    loop {
        let page = client
            .get_validator_sets(Some(from))
            .await
            .map_err(node_err("seq_getValidatorSets"))?;
        let mut advanced = false;
        let start = from;
        for j in page.iter().filter(|j| j.version >= start) {
            sets.push(NodeSet::from_json(j)?);
            advanced = true;
            match j.version.checked_add(1) {
                Some(next) => from = next,
                None => return Ok(sets),
            }
        }
        if !advanced {
            break;
        }
    }
    if sets.is_empty() {
        eyre::bail!("the node reported no validator set");
    }
    Ok(sets)
}

fn newest(sets: &[NodeSet]) -> eyre::Result<&NodeSet> {
    sets.last()
        .ok_or_else(|| eyre::eyre!("the node reported no validator set"))
}

/// The set `update` makes of the newest set; refuses an update of another version, or whose
/// changes the newest set refuses (as the node would).
fn check_fits(update: &SetUpdate, newest: &NodeSet) -> eyre::Result<ValidatorSet> {
    if update.version < newest.version {
        eyre::bail!(
            "the update changes validator set version {}, which has been changed already: the \
             newest set is version {} (propose a new update)",
            update.version,
            newest.version
        );
    }
    if update.version > newest.version {
        eyre::bail!(
            "the update changes validator set version {}, which does not exist: the newest set \
             is version {}",
            update.version,
            newest.version
        );
    }
    update.apply(&newest.set).map_err(|e| {
        eyre::eyre!(
            "the changes do not fit validator set version {}: {e}",
            newest.version
        )
    })
}

// ---- Signatures and power ----

/// The least power that is more than two thirds of `total`.
fn quorum_power(total: u64) -> u64 {
    total.saturating_mul(2) / 3 + 1
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Signer {
    /// A member of the set, with its power, whose signature verifies.
    Counted(u64),
    NotInSet,
    BadSignature,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Tally {
    signers: Vec<(Address, Signer)>,
    signed: u64,
    total: u64,
}

/// Each signature of `u` checked against `set`, the set it changes.
fn tally(u: &SignedSetUpdate, set: &ValidatorSet) -> Tally {
    let msg = u.update.signing_hash();
    let mut signed: u64 = 0;
    let signers = u
        .signatures
        .iter()
        .map(|s| {
            let state = match set.get(&s.address) {
                None => Signer::NotInSet,
                Some(v) if !sig::verify(&v.public_key, msg.as_bytes(), &s.signature) => {
                    Signer::BadSignature
                }
                Some(v) => {
                    signed = signed.saturating_add(v.voting_power);
                    Signer::Counted(v.voting_power)
                }
            };
            (s.address, state)
        })
        .collect();
    Tally {
        signers,
        signed,
        total: set.total_power(),
    }
}

fn print_update(u: &SetUpdate) {
    println!(
        "validator set update for chain {}, changing set version {} (signing hash {}):",
        u.chain_id,
        u.version,
        u.signing_hash()
    );
    for c in &u.changes {
        match c {
            SetChange::Add { public_key, power } => println!(
                "  add {} (public key {}) with power {power}",
                Address::from_public_key(public_key),
                encode_hex(public_key)
            ),
            SetChange::Remove { address } => println!("  remove {address}"),
            SetChange::SetPower { address, power } => {
                println!("  set the power of {address} to {power}")
            }
        }
    }
}

fn print_signers(u: &SignedSetUpdate, set: Option<&NodeSet>) {
    let Some(set) = set else {
        println!("signed by {} validator(s):", u.signatures.len());
        for s in &u.signatures {
            println!("  {}", s.address);
        }
        println!("(with --rpc URL: their power against the set's total)");
        return;
    };
    let t = tally(u, &set.set);
    println!(
        "signed by {} validator(s) of set version {}:",
        u.signatures.len(),
        set.version
    );
    for (address, state) in &t.signers {
        match state {
            Signer::Counted(p) => println!("  {address} power {p}"),
            Signer::NotInSet => {
                println!("  {address} NOT IN THE SET (the node will refuse the update)")
            }
            Signer::BadSignature => {
                println!("  {address} SIGNATURE DOES NOT VERIFY (the node will refuse the update)")
            }
        }
    }
    let quorum = quorum_power(t.total);
    if t.signed >= quorum {
        println!(
            "signed power {} of {} (more than 2/3: at least {quorum}): enough, ready to submit",
            t.signed, t.total
        );
    } else {
        println!(
            "signed power {} of {} (more than 2/3: at least {quorum}): {} more needed",
            t.signed,
            t.total,
            quorum - t.signed
        );
    }
}

fn print_set(s: &NodeSet) {
    let origin = if s.version == 0 {
        "genesis".to_string()
    } else {
        format!("update included at height {}", s.included_at)
    };
    println!(
        "  version {}, from height {} ({origin}), hash {}",
        s.version, s.from_height, s.hash
    );
    for v in s.set.validators() {
        println!(
            "  {}  {}  power {}",
            v.address,
            encode_hex(&v.public_key),
            v.voting_power
        );
    }
    let total = s.set.total_power();
    println!(
        "  {} validator(s), total power {total}, quorum power {} (more than 2/3)",
        s.set.len(),
        quorum_power(total)
    );
}

// ---- The commands ----

/// `lockstep validator propose-update`.
async fn propose(
    rpc: &str,
    version: Option<u64>,
    changes: Vec<SetChange>,
    out: &Path,
    force: bool,
) -> eyre::Result<()> {
    if out.exists() && !force {
        eyre::bail!(
            "{} exists (it may hold signatures): choose another --out, or pass --force",
            out.display()
        );
    }
    let (client, chain_id) = connect(rpc).await?;
    let sets = all_sets(&client).await?;
    let newest = newest(&sets)?;
    let update = SetUpdate {
        chain_id,
        version: version.unwrap_or(newest.version),
        changes,
    };
    let next = check_fits(&update, newest)?;
    let signed = SignedSetUpdate::unsigned(update);
    write_update(out, &signed)?;
    print_update(&signed.update);
    println!(
        "the new set: {} validator(s), total power {}",
        next.len(),
        next.total_power()
    );
    let total = newest.set.total_power();
    println!(
        "wrote {}: to be signed by validators of set version {} holding more than 2/3 of its \
         power {total} (at least {})",
        out.display(),
        newest.version,
        quorum_power(total)
    );
    Ok(())
}

/// `lockstep validator sign`.
async fn sign(key: &NodeKey, path: &Path, rpc: Option<&str>) -> eyre::Result<()> {
    let mut u = read_update(path)?;
    let address = key.address();
    let set = match rpc {
        None => None,
        Some(rpc) => {
            let (client, chain_id) = connect(rpc).await?;
            if u.update.chain_id != chain_id {
                eyre::bail!(
                    "the update is for chain {}, the node at {rpc} is chain {chain_id}",
                    u.update.chain_id
                );
            }
            let sets = all_sets(&client).await?;
            check_fits(&u.update, newest(&sets)?)?;
            let base = sets
                .iter()
                .find(|s| s.version == u.update.version)
                .ok_or_else(|| {
                    eyre::eyre!("the node does not know set version {}", u.update.version)
                })?;
            if base.set.get(&address).is_none() {
                eyre::bail!(
                    "this key ({address}) is not a validator of set version {}, which the update \
                     changes: its signature would not count",
                    u.update.version
                );
            }
            Some(base.clone())
        }
    };
    print_update(&u.update);
    u.sign(&key.signing_key());
    write_update(path, &u)?;
    println!("signed by {address}; wrote {}", path.display());
    print_signers(&u, set.as_ref());
    Ok(())
}

/// `lockstep validator submit`.
async fn submit(
    rpc: &str,
    path: &Path,
    key: &NodeKey,
    wait: bool,
    valid_for: u64,
    timeout: Duration,
) -> eyre::Result<()> {
    let u = read_update(path)?;
    let (client, chain_id) = connect(rpc).await?;
    let latest = client
        .block_number()
        .await
        .map_err(node_err("seq_blockNumber"))?;
    let valid_until = latest.saturating_add(valid_for);
    let bundle = lockstep_client::bundle::sign(
        &key.signing_key(),
        chain_id,
        crate::rpc::now_ms(),
        valid_until,
        vec![(SET_UPDATE_ROLLUP, u.encode())],
    );
    let hash = client
        .send_raw_bundle(lockstep_client::bundle::to_raw_hex(&bundle))
        .await
        .map_err(node_err("the update was not accepted"))?;
    println!(
        "sent bundle {hash}: the update of validator set version {} ({} signature(s)), valid \
         until height {valid_until}",
        u.update.version,
        u.signatures.len()
    );
    if !wait {
        return Ok(());
    }
    let height = wait_included(&client, hash, valid_until, timeout).await?;
    let from = height + SET_UPDATE_DELAY;
    println!(
        "included at height {height}: validator set version {} is in force from height {from}",
        u.update.version + 1
    );
    // What the node scheduled, as a check.
    let scheduled = client
        .get_validator_sets(Some(u.update.version + 1))
        .await
        .map_err(node_err("seq_getValidatorSets"))?;
    match scheduled.first() {
        Some(s) if s.included_at == height && s.from_height == from => {
            println!("the node has it: hash {}", s.validators_hash)
        }
        Some(s) => eyre::bail!(
            "the node's set version {} is from height {} (included at {}), not from {from}",
            s.version,
            s.from_height,
            s.included_at
        ),
        None => eyre::bail!(
            "the node reports no set version {} although the update was included",
            u.update.version + 1
        ),
    }
    Ok(())
}

/// Waits until the bundle `hash` is included: its height. An error when it is dropped, when
/// the chain passes `valid_until` without it, or after `timeout`.
async fn wait_included(
    client: &HttpClient,
    hash: Hash,
    valid_until: u64,
    timeout: Duration,
) -> eyre::Result<u64> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // The latest height before the status: a bundle included by then is in the status.
        let latest = client
            .block_number()
            .await
            .map_err(node_err("seq_blockNumber"))?;
        let s: BundleStatusJson = client
            .get_bundle_status(hash)
            .await
            .map_err(node_err("seq_getBundleStatus"))?;
        match s.status.as_str() {
            "included" => {
                return s.height.ok_or_else(|| {
                    eyre::eyre!("the node says bundle {hash} is included, at no height")
                })
            }
            "dropped" => eyre::bail!(
                "bundle {hash} was dropped: {}",
                s.reason.as_deref().unwrap_or("no reason given")
            ),
            _ if latest > valid_until => eyre::bail!(
                "bundle {hash} was not included by height {valid_until}, its last (status {})",
                s.status
            ),
            _ if tokio::time::Instant::now() >= deadline => eyre::bail!(
                "bundle {hash} still {} after {}s",
                s.status,
                timeout.as_secs()
            ),
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

/// `lockstep validator status`.
async fn status(rpc: &str) -> eyre::Result<()> {
    let (client, chain_id) = connect(rpc).await?;
    let latest = client
        .block_number()
        .await
        .map_err(node_err("seq_blockNumber"))?;
    let sets = all_sets(&client).await?;
    let next = latest + 1;
    let in_force = sets
        .iter()
        .rev()
        .find(|s| s.from_height <= next)
        .unwrap_or(&sets[0]);
    println!("chain {chain_id}, latest height {latest}");
    println!("validator set in force at height {next}:");
    print_set(in_force);
    let newest = newest(&sets)?;
    if newest.from_height > next {
        println!("scheduled from height {}:", newest.from_height);
        print_set(newest);
    } else {
        println!("no change scheduled");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&[i; 32])
    }

    fn pk(i: u8) -> [u8; 32] {
        key(i).verifying_key().to_bytes()
    }

    fn addr(i: u8) -> Address {
        Address::from_public_key(&pk(i))
    }

    /// Version 3 of a set of keys 1..=4, power 1 each.
    fn node_set() -> NodeSet {
        let set = ValidatorSet::new((1..=4).map(|i| Validator::new(pk(i), 1)).collect()).unwrap();
        NodeSet {
            version: 3,
            from_height: 10,
            included_at: 8,
            hash: set.hash(),
            set,
        }
    }

    fn update(changes: Vec<SetChange>) -> SetUpdate {
        SetUpdate {
            chain_id: 7,
            version: 3,
            changes,
        }
    }

    fn err<T: std::fmt::Debug>(r: eyre::Result<T>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn validator_update_file_round_trips_and_refuses_an_edited_summary() {
        let mut u = SignedSetUpdate::unsigned(update(vec![
            SetChange::Add {
                public_key: pk(9),
                power: 2,
            },
            SetChange::Remove { address: addr(1) },
            SetChange::SetPower {
                address: addr(2),
                power: 5,
            },
        ]));
        u.sign(&key(3));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("update.json");
        write_update(&path, &u).unwrap();
        assert_eq!(read_update(&path).unwrap(), u);
        assert!(!dir.path().join("update.json.tmp").exists());

        let text = std::fs::read_to_string(&path).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["update"], serde_json::json!(encode_hex(&u.encode())));
        let s = &json["summary"];
        assert_eq!(s["chainId"], 7);
        assert_eq!(s["version"], 3);
        assert_eq!(s["changes"][0]["op"], "add");
        assert_eq!(s["changes"][0]["publicKey"], encode_hex(&pk(9)));
        assert_eq!(s["changes"][0]["address"], addr(9).to_hex());
        assert_eq!(s["changes"][1]["op"], "remove");
        assert_eq!(s["changes"][2]["op"], "setPower");
        assert_eq!(s["changes"][2]["power"], 5);
        assert_eq!(s["signers"], serde_json::json!([addr(3).to_hex()]));
        assert_eq!(s["signingHash"], u.update.signing_hash().to_hex());

        // A summary that says something else than the update is refused.
        let edited = text.replace("\"power\": 5", "\"power\": 6");
        assert_ne!(edited, text);
        std::fs::write(&path, edited).unwrap();
        assert!(err(read_update(&path)).contains("summary does not describe"));
        // So is an update that does not decode.
        let mut broken = json.clone();
        broken["update"] = serde_json::json!("0x0102");
        assert!(from_file_text(&broken.to_string())
            .unwrap_err()
            .starts_with("update:"));
        assert!(err(read_update(&dir.path().join("missing.json"))).contains("cannot read"));
    }

    #[test]
    fn validator_changes_parse_and_errors_are_named() {
        let k = encode_hex(&pk(9));
        assert_eq!(
            parse_add(&format!("{k}:3")).unwrap(),
            SetChange::Add {
                public_key: pk(9),
                power: 3
            }
        );
        assert_eq!(
            parse_remove(&addr(1).to_hex()).unwrap(),
            SetChange::Remove { address: addr(1) }
        );
        assert_eq!(
            parse_set_power(&format!("{}:7", addr(2))).unwrap(),
            SetChange::SetPower {
                address: addr(2),
                power: 7
            }
        );
        let cases = [
            (err(parse_add(&k)), "--add", "PUBKEY_HEX:POWER"),
            (err(parse_add("0x0102:1")), "--add", "public key"),
            (err(parse_add(&format!("{k}:x"))), "--add", "power `x`"),
            (err(parse_add(&format!("{k}:0"))), "--add", "power 0"),
            (err(parse_remove("0x12")), "--remove", "address"),
            (err(parse_remove(&k)), "--remove", "address"),
            (
                err(parse_set_power(&addr(1).to_hex())),
                "--set-power",
                "ADDRESS:POWER",
            ),
            (err(parse_set_power("zz:1")), "--set-power", "address"),
            (
                err(parse_set_power(&format!("{}:-1", addr(1)))),
                "--set-power",
                "power `-1`",
            ),
        ];
        for (got, flag, what) in cases {
            assert!(got.starts_with(flag), "{got}");
            assert!(got.contains(what), "{got}");
        }
        // 32 bytes that are not an ed25519 public key.
        let off = (0u8..=255)
            .map(|i| {
                let mut b = [0u8; 32];
                b[0] = i;
                b
            })
            .find(|b| ed25519_dalek::VerifyingKey::from_bytes(b).is_err())
            .unwrap();
        let e = err(parse_add(&format!("{}:1", encode_hex(&off))));
        assert!(
            e.starts_with("--add") && e.contains("not an ed25519 public key"),
            "{e}"
        );
        let changes = parse_changes(
            &[format!("{k}:1")],
            &[addr(1).to_hex()],
            &[format!("{}:2", addr(2))],
        )
        .unwrap();
        assert_eq!(changes.len(), 3);
        assert!(err(parse_changes(&[], &[], &[])).contains("no changes"));
    }

    #[test]
    fn validator_signing_twice_with_one_key_keeps_one_signature() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("update.json");
        write_update(
            &path,
            &SignedSetUpdate::unsigned(update(vec![SetChange::Remove { address: addr(4) }])),
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let node_key = |i: u8| NodeKey { secret: [i; 32] };
        rt.block_on(sign(&node_key(2), &path, None)).unwrap();
        rt.block_on(sign(&node_key(1), &path, None)).unwrap();
        rt.block_on(sign(&node_key(2), &path, None)).unwrap();
        let u = read_update(&path).unwrap();
        let mut want = vec![addr(1), addr(2)];
        want.sort();
        let got: Vec<Address> = u.signatures.iter().map(|s| s.address).collect();
        assert_eq!(got, want);

        let t = tally(&u, &node_set().set);
        assert_eq!((t.signed, t.total), (2, 4));
        assert!(t.signers.iter().all(|(_, s)| *s == Signer::Counted(1)));
        // A third signer reaches the quorum; a stranger counts for nothing.
        let mut more = u.clone();
        more.sign(&key(3));
        more.sign(&key(42));
        let t = tally(&more, &node_set().set);
        assert_eq!(t.signed, 3);
        assert!(t.signed >= quorum_power(t.total));
        assert!(t
            .signers
            .contains(&(Address::from_public_key(&pk(42)), Signer::NotInSet)));
        assert!(more.check(7, 3, &node_set().set).is_err());
        more.signatures
            .retain(|s| s.address != Address::from_public_key(&pk(42)));
        assert!(more.check(7, 3, &node_set().set).is_ok());
        // A signature over another update does not count.
        let mut forged = u.clone();
        forged.signatures[0].signature = [1; 64];
        assert_eq!(tally(&forged, &node_set().set).signed, 1);
    }

    #[test]
    fn validator_changes_that_do_not_fit_are_refused_locally() {
        let set = node_set();
        let remove_one = update(vec![SetChange::Remove { address: addr(1) }]);
        assert_eq!(check_fits(&remove_one, &set).unwrap().len(), 3);
        let cases = [
            (
                update(vec![SetChange::Remove { address: addr(9) }]),
                "not in the set",
            ),
            (
                update(vec![SetChange::Add {
                    public_key: pk(2),
                    power: 1,
                }]),
                "already in the set",
            ),
            (
                update(vec![
                    SetChange::Remove { address: addr(1) },
                    SetChange::SetPower {
                        address: addr(1),
                        power: 2,
                    },
                ]),
                "changed twice",
            ),
            (
                update(
                    (1..=4)
                        .map(|i| SetChange::Remove { address: addr(i) })
                        .collect(),
                ),
                "empty",
            ),
            (
                SetUpdate {
                    version: 2,
                    ..remove_one.clone()
                },
                "changed already",
            ),
            (
                SetUpdate {
                    version: 4,
                    ..remove_one.clone()
                },
                "does not exist",
            ),
        ];
        for (u, want) in cases {
            let e = err(check_fits(&u, &set));
            assert!(e.contains(want), "{e}");
        }
        assert!(err(check_fits(
            &update(vec![SetChange::Remove { address: addr(9) }]),
            &set
        ))
        .contains("do not fit validator set version 3"));
    }

    #[test]
    fn validator_quorum_power_is_more_than_two_thirds() {
        for total in 1..200u64 {
            let q = quorum_power(total);
            assert!(q * 3 > total * 2 && (q - 1) * 3 <= total * 2, "{total}");
        }
    }

    #[test]
    fn validator_node_sets_are_checked() {
        let s = node_set();
        let json = |s: &NodeSet| ValidatorSetJson {
            version: s.version,
            from_height: s.from_height,
            included_at: s.included_at,
            validators_hash: s.hash,
            validators: s
                .set
                .validators()
                .iter()
                .map(|v| lockstep_client::api::ValidatorJson {
                    address: v.address,
                    public_key: encode_hex(&v.public_key),
                    voting_power: v.voting_power,
                })
                .collect(),
        };
        let j = json(&s);
        assert_eq!(NodeSet::from_json(&j).unwrap().set, s.set);
        let mut wrong_hash = j.clone();
        wrong_hash.validators[0].voting_power = 2;
        assert!(err(NodeSet::from_json(&wrong_hash)).contains("hash"));
        let mut wrong_address = j;
        wrong_address.validators[0].address = addr(9);
        assert!(err(NodeSet::from_json(&wrong_address)).contains("address"));
    }
}

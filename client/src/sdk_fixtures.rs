//! The test vectors of the TypeScript SDK (`sdk/typescript/test/fixtures/vectors.json`), made
//! by this crate's own code: bundles (encoding, hash, signature, JSON form), undecodable
//! bundles, ZIP-215 signature verdicts, public keys, vote sign bytes, addresses, a genesis
//! file, and decided blocks' rollup batches, honest and tampered, each with this crate's
//! verdict.
//!
//! The test below fails when the committed file is not what this code produces, so the SDK's
//! vectors cannot drift from the Rust side. After a deliberate change, regenerate it with
//! `LOCKSTEP_UPDATE_SDK_FIXTURES=1 cargo test --workspace --features lockstep-node/byzantine
//! --lib sdk_fixtures`, then run the SDK's tests (`npm test` in `sdk/typescript`).

use crate::api::RollupBatchJson;
use crate::verify::{to_json, BatchVerifier, VerifyError};
use ed25519_dalek::{Signer, SigningKey};
use lockstep_bundles::certificate::{vote_sign_bytes, VoteKind};
use lockstep_bundles::hash::encode_hex;
use lockstep_bundles::rollup::{BatchProof, RollupTree, Witness};
use lockstep_bundles::{
    Address, BatchError, Block, CertificateError, CommitCertificate, CommitSig, Hash, Limits,
    RollupBatch, SignedBundle, Validator, ValidatorSet,
};
use serde_json::{json, Value};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../sdk/typescript/test/fixtures/vectors.json"
);
const UPDATE_ENV: &str = "LOCKSTEP_UPDATE_SDK_FIXTURES";
const CHAIN: u64 = 1337;
/// Rollups probed at every height: before, at and between the leaves, and beyond 2^53.
const PROBES: [u64; 9] = [1, 3, 5, 7, 8, 9, 12, 20, BIG_ROLLUP];
/// A rollup id a JavaScript number cannot hold exactly.
const BIG_ROLLUP: u64 = (1 << 60) + 1;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn bundle_case(
    name: &str,
    seed: [u8; 32],
    chain_id: u64,
    nonce: u64,
    valid_until: u64,
    legs: Vec<(u64, Vec<u8>)>,
) -> Value {
    let k = SigningKey::from_bytes(&seed);
    let b = crate::bundle::sign(&k, chain_id, nonce, valid_until, legs.clone());
    let encoding = b.encode();
    let body = &encoding[..encoding.len() - 64];
    json!({
        "name": name,
        "seed": encode_hex(&seed),
        "chainId": chain_id,
        "nonce": nonce,
        "validUntil": valid_until,
        "legs": legs.iter().map(|(r, d)| json!({"rollupId": r, "data": encode_hex(d)})).collect::<Vec<_>>(),
        "signer": encode_hex(&b.body.signer),
        "body": encode_hex(body),
        "hash": b.hash().to_hex(),
        "signature": encode_hex(&b.signature),
        "encoding": encode_hex(&encoding),
        "json": crate::bundle::to_json(&b),
    })
}

fn bundles() -> Vec<Value> {
    let mut seed4 = [0u8; 32];
    for (i, b) in seed4.iter_mut().enumerate() {
        *b = i as u8;
    }
    vec![
        // protocol.md §1.2's example.
        bundle_case(
            "protocol example",
            [1; 32],
            1337,
            1,
            900,
            vec![(1, vec![1]), (2, vec![2, 3])],
        ),
        bundle_case(
            "empty data and one rollup twice",
            [2; 32],
            7,
            0,
            1,
            vec![(5, vec![]), (5, vec![0xff]), (0, vec![0])],
        ),
        bundle_case(
            "u64 fields beyond 2^53",
            [3; 32],
            u64::MAX,
            u64::MAX,
            (1 << 53) + 1,
            vec![(u64::MAX, vec![0xab; 5]), (BIG_ROLLUP, vec![1])],
        ),
        bundle_case(
            "sixteen legs of 64 bytes",
            seed4,
            1337,
            42,
            3600,
            (0..16u64)
                .map(|i| (i * 3 + 1, (0..64).map(|j| (i as u8) ^ (j as u8)).collect()))
                .collect(),
        ),
        bundle_case("no legs", [5; 32], 1337, 9, 10, vec![]),
    ]
}

fn undecodable() -> Vec<Value> {
    let example =
        crate::bundle::sign(&key(1), 1337, 1, 900, vec![(1, vec![1]), (2, vec![2, 3])]).encode();
    let mut truncated = example.clone();
    truncated.pop();
    let mut trailing = example.clone();
    trailing.push(0);
    let mut count = example.clone();
    count[56..60].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut long_leg = example.clone();
    long_leg[68..72].copy_from_slice(&1000u32.to_le_bytes());
    let cases: Vec<(&str, Vec<u8>, Limits)> = vec![
        ("empty", vec![], Limits::default()),
        ("truncated by one byte", truncated, Limits::default()),
        ("one byte left over", trailing, Limits::default()),
        ("impossible leg count", count, Limits::default()),
        ("leg longer than the input", long_leg, Limits::default()),
        (
            "above max_bundle_bytes",
            example,
            Limits {
                max_bundle_bytes: 128,
                ..Limits::default()
            },
        ),
    ];
    cases
        .into_iter()
        .map(|(name, bytes, limits)| {
            let code = match SignedBundle::decode(&bytes, &limits) {
                Ok(_) => 0,
                Err(e) => e.code(),
            };
            assert_ne!(code, 0, "{name} decodes");
            json!({"name": name, "encoding": encode_hex(&bytes), "maxBundleBytes": limits.max_bundle_bytes, "code": code})
        })
        .collect()
}

/// The small-order point encodings, canonical and not, of ZIP-215's test vectors (the same
/// list as `lockstep_bundles::sig`'s tests).
const SMALL_ORDER: [&str; 14] = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "0100000000000000000000000000000000000000000000000000000000000080",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
];

fn point(h: &str) -> [u8; 32] {
    let mut b = [0u8; 32];
    hex::decode_to_slice(h, &mut b).unwrap();
    b
}

/// A signature case: name, public key, message, signature.
type SigCase = (String, [u8; 32], Vec<u8>, [u8; 64]);

fn signatures() -> Vec<Value> {
    let mut cases: Vec<SigCase> = Vec::new();
    let msg = [7u8; 32];
    for (i, a) in SMALL_ORDER.iter().enumerate() {
        for (j, r) in SMALL_ORDER.iter().enumerate() {
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&point(r));
            cases.push((
                format!("small order A[{i}] R[{j}] s=0"),
                point(a),
                msg.to_vec(),
                sig,
            ));
        }
    }
    let k = key(4);
    let pk = k.verifying_key().to_bytes();
    let good = k.sign(&msg).to_bytes();
    cases.push(("good".into(), pk, msg.to_vec(), good));
    let long = vec![0x5a; 94];
    cases.push((
        "good, 94-byte message".into(),
        pk,
        long.clone(),
        k.sign(&long).to_bytes(),
    ));
    let mut flipped = good;
    flipped[10] ^= 1;
    cases.push(("R bit flipped".into(), pk, msg.to_vec(), flipped));
    let mut other_msg = msg;
    other_msg[0] ^= 1;
    cases.push(("other message".into(), pk, other_msg.to_vec(), good));
    let mut high_s = good;
    high_s[63] |= 0xf0;
    cases.push(("non-canonical s".into(), pk, msg.to_vec(), high_s));
    // s + l: the same scalar, not reduced.
    let l: [u8; 32] = point("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
    let mut s_plus_l = good;
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(good[32 + i]) + u16::from(l[i]) + carry;
        s_plus_l[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    cases.push(("s + l".into(), pk, msg.to_vec(), s_plus_l));
    cases.push((
        "public key not a point".into(),
        not_a_point(),
        msg.to_vec(),
        good,
    ));
    cases
        .into_iter()
        .map(|(name, pk, m, sig)| {
            json!({
                "name": name,
                "publicKey": encode_hex(&pk),
                "message": encode_hex(&m),
                "signature": encode_hex(&sig),
                "valid": lockstep_bundles::sig::verify(&pk, &m, &sig),
            })
        })
        .collect()
}

/// 32 bytes that decode to no curve point (y = 2 is not on the curve).
fn not_a_point() -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0] = 2;
    b
}

/// Whether 32 bytes are an ed25519 public key, as a node checks its genesis file.
fn public_keys() -> Vec<Value> {
    let mut keys: Vec<[u8; 32]> = SMALL_ORDER.iter().map(|h| point(h)).collect();
    keys.push(key(4).verifying_key().to_bytes());
    keys.push([0xff; 32]);
    keys.push(not_a_point());
    let mut seven = [0u8; 32];
    seven[0] = 7;
    keys.push(seven);
    keys.iter()
        .map(|k| {
            json!({
                "publicKey": encode_hex(k),
                "valid": ed25519_dalek::VerifyingKey::from_bytes(k).is_ok(),
            })
        })
        .collect()
}

fn votes() -> Vec<Value> {
    let addr = Address::from_public_key(&key(1).verifying_key().to_bytes());
    let value = Hash::tagged(b"block", &[]);
    let cases = [
        (CHAIN, VoteKind::Precommit, 5u64, 0i64, Some(value)),
        (CHAIN, VoteKind::Prevote, 5, -1, None),
        (
            u64::MAX,
            VoteKind::Precommit,
            u64::MAX,
            i64::from(u32::MAX),
            Some(value),
        ),
    ];
    cases
        .iter()
        .map(|(chain, kind, height, round, v)| {
            json!({
                "chainId": chain,
                "kind": *kind as u8,
                "height": height,
                "round": round,
                "value": v.map(|h| h.to_hex()),
                "validator": addr.to_hex(),
                "bytes": encode_hex(&vote_sign_bytes(*chain, *kind, *height, *round, v.as_ref(), &addr)),
            })
        })
        .collect()
}

/// The network: validators with seeds 1..=4, of voting power 1, 1, 1 and 2: a quorum is more
/// than two thirds of 5, so at least 4.
fn validator_keys() -> Vec<SigningKey> {
    (1..=4).map(key).collect()
}

fn powers() -> [u64; 4] {
    [1, 1, 1, 2]
}

fn validator_set() -> ValidatorSet {
    ValidatorSet::new(
        validator_keys()
            .iter()
            .zip(powers())
            .map(|(k, p)| Validator::new(k.verifying_key().to_bytes(), p))
            .collect(),
    )
    .unwrap()
}

fn genesis() -> Value {
    json!({
        "chain_id": CHAIN,
        "validators": validator_keys().iter().zip(powers()).map(|(k, p)| json!({
            "public_key": encode_hex(&k.verifying_key().to_bytes()),
            "voting_power": p,
        })).collect::<Vec<_>>(),
        "limits": Limits::default(),
    })
}

fn certify(
    chain_id: u64,
    signers: &[&SigningKey],
    height: u64,
    round: u32,
    block_hash: Hash,
) -> CommitCertificate {
    let signatures = signers
        .iter()
        .map(|k| {
            let address = Address::from_public_key(&k.verifying_key().to_bytes());
            let msg = vote_sign_bytes(
                chain_id,
                VoteKind::Precommit,
                height,
                i64::from(round),
                Some(&block_hash),
                &address,
            );
            CommitSig {
                address,
                signature: k.sign(&msg).to_bytes(),
            }
        })
        .collect();
    CommitCertificate {
        height,
        round,
        block_hash,
        signatures,
    }
}

/// Four decided blocks: empty; rollups 3, 7, 9, 12 (rollup 7 three times, twice in one
/// bundle); five leaves up to a rollup id beyond 2^53; one large leg for rollup 7.
fn chain() -> Vec<(Block, Vec<Hash>, CommitCertificate)> {
    let user = key(9);
    let other = key(10);
    let sign = crate::bundle::sign;
    let bodies: Vec<Vec<SignedBundle>> = vec![
        vec![],
        vec![
            sign(&user, CHAIN, 1, 100, vec![(3, vec![3, 3]), (7, vec![7, 1])]),
            sign(
                &other,
                CHAIN,
                1,
                100,
                vec![(7, vec![7, 2]), (9, vec![9]), (7, vec![])],
            ),
            sign(&user, CHAIN, 2, 100, vec![(12, vec![12; 40])]),
        ],
        vec![
            sign(
                &user,
                CHAIN,
                3,
                100,
                vec![(2, vec![2]), (BIG_ROLLUP, vec![0xbb; 3])],
            ),
            sign(
                &other,
                CHAIN,
                2,
                100,
                vec![(5, vec![5]), (11, vec![11]), (3, vec![3])],
            ),
        ],
        vec![sign(
            &other,
            CHAIN,
            3,
            100,
            vec![(7, (0..1000).map(|i| i as u8).collect())],
        )],
    ];
    let keys = validator_keys();
    let set = validator_set();
    // Quorum: 4 of the 5 power, so the heavy validator and two others, or all four; in
    // varying order and rounds.
    let signers: [(Vec<usize>, u32); 4] = [
        (vec![0, 1, 3], 0),
        (vec![3, 0, 2], 1),
        (vec![1, 3, 0, 2], 0),
        (vec![2, 3, 1], 7),
    ];
    let mut parent = Hash::ZERO;
    let mut out = Vec::new();
    for (i, bundles) in bodies.into_iter().enumerate() {
        let height = i as u64 + 1;
        let hashes: Vec<Hash> = bundles.iter().map(SignedBundle::hash).collect();
        let proposer = set.proposer(height, signers[i].1).address;
        let block = Block::build(
            CHAIN,
            height,
            1_763_700_000_000 + 250 * height,
            proposer,
            parent,
            set.hash(),
            bundles,
            &hashes,
        );
        let who: Vec<&SigningKey> = signers[i].0.iter().map(|&k| &keys[k]).collect();
        let cert = certify(CHAIN, &who, height, signers[i].1, block.hash());
        parent = block.hash();
        out.push((block, hashes, cert));
    }
    out
}

fn batch_json(
    block: &Block,
    hashes: &[Hash],
    cert: &CommitCertificate,
    rollup: u64,
) -> RollupBatchJson {
    let tree = RollupTree::from_block(block, hashes);
    to_json(&RollupBatch::from_block(
        block,
        hashes,
        &tree,
        cert.clone(),
        rollup,
    ))
}

fn verdict(r: Result<RollupBatch, VerifyError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(VerifyError::Malformed(_)) => "malformed".into(),
        Err(VerifyError::Mismatch { field, .. }) => format!("mismatch:{field}"),
        Err(VerifyError::SetUpdate { .. }) => "setUpdate".into(),
        Err(VerifyError::Invalid(e)) => match e {
            BatchError::HeightMismatch { .. } => "heightMismatch".into(),
            BatchError::WrongChain { .. } => "wrongChain".into(),
            BatchError::BlockHashMismatch { .. } => "blockHashMismatch".into(),
            BatchError::OtherValidatorSet { .. } => "otherValidatorSet".into(),
            BatchError::ForeignEntry(_) => "foreignEntry".into(),
            BatchError::Proof(_) => "proof".into(),
            BatchError::Certificate(c) => format!(
                "certificate:{}",
                match c {
                    CertificateError::UnknownValidator(_) => "unknownValidator",
                    CertificateError::DuplicateSigner(_) => "duplicateSigner",
                    CertificateError::BadSignature(_) => "badSignature",
                    CertificateError::NoQuorum { .. } => "noQuorum",
                    CertificateError::WrongHeight { .. } => "wrongHeight",
                    CertificateError::WrongBlock { .. } => "wrongBlock",
                }
            ),
        },
    }
}

fn cert_hex(c: &CommitCertificate) -> String {
    encode_hex(&borsh::to_vec(c).unwrap())
}

fn proof_hex(p: &BatchProof) -> String {
    encode_hex(&borsh::to_vec(p).unwrap())
}

fn decode_proof(j: &RollupBatchJson) -> BatchProof {
    borsh::from_slice(&lockstep_bundles::hash::decode_hex(&j.proof).unwrap()).unwrap()
}

fn decode_cert(j: &RollupBatchJson) -> CommitCertificate {
    borsh::from_slice(&lockstep_bundles::hash::decode_hex(&j.certificate).unwrap()).unwrap()
}

/// The tampered batches of `verify.rs`'s and `lockstep_bundles::rollup`'s tests, and more,
/// all made from height 2's batch of rollup 7 (three entries) or rollup 8 (none).
fn tampered(
    blocks: &[(Block, Vec<Hash>, CommitCertificate)],
) -> Vec<(String, u64, RollupBatchJson)> {
    let (block, hashes, cert) = &blocks[1];
    let good = batch_json(block, hashes, cert, 7);
    let absent = batch_json(block, hashes, cert, 8);
    let keys = validator_keys();
    let mut out: Vec<(String, u64, RollupBatchJson)> = Vec::new();
    let mut add =
        |name: &str, chain: u64, j: RollupBatchJson| out.push((name.to_string(), chain, j));
    let with_cert = |f: &dyn Fn(&mut CommitCertificate)| {
        let mut j = good.clone();
        let mut c = decode_cert(&j);
        f(&mut c);
        j.certificate = cert_hex(&c);
        j
    };
    let with_proof = |base: &RollupBatchJson, f: &dyn Fn(&mut BatchProof)| {
        let mut j = base.clone();
        let mut p = decode_proof(&j);
        f(&mut p);
        j.proof = proof_hex(&p);
        j
    };

    let mut j = good.clone();
    j.height = 3;
    add("claims another height than its header's", CHAIN, j);
    add("for a follower of another chain", CHAIN + 1, good.clone());
    add(
        "certificate for another height",
        CHAIN,
        with_cert(&|c| c.height = 3),
    );
    add(
        "certificate for another block",
        CHAIN,
        with_cert(&|c| c.block_hash = Hash::tagged(b"other", &[])),
    );
    add(
        "certificate of another round",
        CHAIN,
        with_cert(&|c| c.round += 1),
    );
    // A header naming another validator set (its block hash claimed to match): the verifier
    // holds the genesis set, so it must learn the updates rather than try its set.
    let mut j = with_proof(&good, &|p| {
        p.header.validators_hash = Hash::tagged(b"other", &[])
    });
    j.block_hash = decode_proof(&j).header.hash();
    add("a header decided by another validator set", CHAIN, j);
    let mut j = good.clone();
    j.entries[0].data = "0x0701ff".into();
    add("entry data changed", CHAIN, j);
    let mut j = good.clone();
    j.entries.pop();
    add("entry removed", CHAIN, j);
    let mut j = good.clone();
    j.entries.swap(0, 1);
    add("entries reordered", CHAIN, j);
    let mut j = good.clone();
    j.entries
        .push(batch_json(block, hashes, cert, 9).entries[0].clone());
    add("another rollup's entry added", CHAIN, j);
    let mut j = good.clone();
    j.entries[0].leg_index = 0;
    add("entry's leg index moved to another rollup's leg", CHAIN, j);
    let mut j = good.clone();
    j.entries[1].bundle_hash = j.entries[0].bundle_hash;
    add("entry's bundle hash changed", CHAIN, j);
    add(
        "one signature forged",
        CHAIN,
        with_cert(&|c| c.signatures[2].signature[7] ^= 1),
    );
    add(
        "signatures short of a quorum",
        CHAIN,
        with_cert(&|c| c.signatures.truncate(2)),
    );
    add(
        "a signer twice",
        CHAIN,
        with_cert(&|c| {
            let first = c.signatures[0].clone();
            c.signatures.push(first)
        }),
    );
    let outsider = key(5);
    let height = cert.height;
    let block_hash = cert.block_hash;
    let round = cert.round;
    add(
        "a signer outside the validator set",
        CHAIN,
        with_cert(&|c| {
            c.signatures
                .extend(certify(CHAIN, &[&outsider], height, round, block_hash).signatures)
        }),
    );
    add(
        "signed for another chain",
        CHAIN,
        with_cert(&|c| {
            let signers = [&keys[0], &keys[1], &keys[3]];
            *c = certify(CHAIN + 1, &signers, height, round, block_hash);
        }),
    );
    let mut j = good.clone();
    j.block_hash = Hash::ZERO;
    add("block hash relabelled", CHAIN, j);
    let mut j = good.clone();
    j.timestamp += 1;
    add("timestamp relabelled", CHAIN, j);
    add(
        "header changed, JSON left as it was",
        CHAIN,
        with_proof(&good, &|p| p.header.timestamp += 1),
    );
    let mut j = with_proof(&good, &|p| p.header.timestamp += 1);
    let header = decode_proof(&j).header;
    j.block_hash = header.hash();
    j.timestamp = header.timestamp;
    add("header changed, JSON made to match it", CHAIN, j);
    let mut j = good.clone();
    j.entries.clear();
    j.proof = absent.proof.clone();
    add(
        "entries hidden behind another rollup's absence proof",
        CHAIN,
        j,
    );
    // Rollup 7's entries hidden behind absence proofs built from real leaves (3, 7, 9, 12)
    // that each break one rule: the neighbour is not the first leaf, not the last, or the two
    // are not adjacent.
    let tree = RollupTree::from_block(block, hashes);
    let neighbours = |r: u64| match tree.prove(r).witness {
        Witness::Between(a, b) => (a, b),
        other => panic!("rollup {r}: expected a between witness, got {other:?}"),
    };
    let (leaf3, _) = neighbours(5);
    let (_, leaf9) = neighbours(8);
    let hidden: [(&str, Witness); 3] = [
        (
            "entries hidden behind a later leaf passed off as the first",
            Witness::Before(leaf9.clone()),
        ),
        (
            "entries hidden behind an earlier leaf passed off as the last",
            Witness::After(leaf3.clone()),
        ),
        (
            "entries hidden between two leaves that are not adjacent",
            Witness::Between(leaf3, leaf9),
        ),
    ];
    for (name, witness) in hidden {
        let mut j = with_proof(&good, &|p| p.rollup.witness = witness.clone());
        j.entries.clear();
        add(name, CHAIN, j);
    }
    let mut j = with_proof(&good, &|p| p.rollup.witness = Witness::Empty);
    j.entries.clear();
    add("entries hidden behind an empty-block witness", CHAIN, j);
    let mut j = good.clone();
    j.entries.clear();
    add("entries dropped, presence proof kept", CHAIN, j);
    let mut j = absent.clone();
    j.entries = good.entries.clone();
    add("entries given with an absence proof", CHAIN, j);
    let mut j = good.clone();
    j.proof = absent.proof.clone();
    add("absence proof for a rollup with entries", CHAIN, j);
    let mut j = absent.clone();
    j.rollup_id = 5;
    add("absence proof of rollup 8 for rollup 5", CHAIN, j);
    add(
        "absence proof claims an empty block",
        CHAIN,
        with_proof(&absent, &|p| {
            p.rollup.leaf_count = 0;
            p.rollup.witness = Witness::Empty;
        }),
    );
    add(
        "presence proof with another leaf count",
        CHAIN,
        with_proof(&good, &|p| p.rollup.leaf_count += 1),
    );
    add(
        "presence proof at another index",
        CHAIN,
        with_proof(&good, &|p| {
            if let Witness::Present { index, .. } = &mut p.rollup.witness {
                *index += 1;
            }
        }),
    );
    let mut j = good.clone();
    j.proof = "0x00".into();
    add("proof is garbage", CHAIN, j);
    let mut j = good.clone();
    j.proof.push_str("00");
    add("proof has a byte left over", CHAIN, j);
    let mut j = good.clone();
    j.certificate.truncate(j.certificate.len() - 2);
    add("certificate is a byte short", CHAIN, j);
    let mut j = good.clone();
    // The witness tag follows the 144-byte header and the u64 leaf count.
    let tag_at = 2 + 2 * (144 + 8);
    j.proof.replace_range(tag_at..tag_at + 2, "05");
    add("witness tag out of range", CHAIN, j);
    let mut j = good.clone();
    j.proof = j.proof.trim_start_matches("0x").to_string();
    add("proof without its 0x", CHAIN, j);
    let mut j = good.clone();
    j.entries[0].data = "0x0".into();
    add("entry data odd-length hex", CHAIN, j);
    let mut j = good.clone();
    j.entries[0].data = "0xzz".into();
    add("entry data not hex", CHAIN, j);
    out
}

fn batches() -> Value {
    let blocks = chain();
    let verifier = BatchVerifier::new(CHAIN, validator_set());
    let mut valid = Vec::new();
    for (block, hashes, cert) in &blocks {
        for rollup in PROBES {
            let j = batch_json(block, hashes, cert, rollup);
            assert_eq!(
                verdict(verifier.verify(&j)),
                "ok",
                "height {} rollup {rollup}",
                block.header.height
            );
            let witness = match decode_proof(&j).rollup.witness {
                Witness::Present { .. } => "present",
                Witness::Empty => "empty",
                Witness::Before(_) => "before",
                Witness::After(_) => "after",
                Witness::Between(..) => "between",
            };
            valid.push(json!({"witness": witness, "batch": j}));
        }
    }
    let tampered: Vec<Value> = tampered(&blocks)
        .into_iter()
        .map(|(name, chain, j)| {
            let v = verdict(BatchVerifier::new(chain, validator_set()).verify(&j));
            assert_ne!(v, "ok", "tampered batch accepted: {name}");
            json!({"name": name, "verifierChainId": chain, "batch": j, "error": v})
        })
        .collect();
    json!({"valid": valid, "tampered": tampered})
}

fn addresses() -> Vec<Value> {
    validator_keys()
        .iter()
        .map(|k| {
            let pk = k.verifying_key().to_bytes();
            json!({"publicKey": encode_hex(&pk), "address": Address::from_public_key(&pk).to_hex()})
        })
        .collect()
}

fn vectors() -> String {
    let v = json!({
        "about": "Test vectors of the Lockstep TypeScript SDK, written by lockstep-client's sdk_fixtures test (client/src/sdk_fixtures.rs) from the Rust code; regenerate with LOCKSTEP_UPDATE_SDK_FIXTURES=1 cargo test --workspace --features lockstep-node/byzantine --lib sdk_fixtures",
        "bundles": bundles(),
        "undecodableBundles": undecodable(),
        "signatures": signatures(),
        "publicKeys": public_keys(),
        "votes": votes(),
        "addresses": addresses(),
        "genesis": genesis(),
        "batches": batches(),
    });
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}

#[test]
fn sdk_typescript_vectors_are_what_the_rust_code_produces() {
    let produced = vectors();
    if std::env::var_os(UPDATE_ENV).is_some() {
        std::fs::write(FIXTURE, &produced).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(FIXTURE).unwrap_or_default();
    assert!(
        committed == produced,
        "{FIXTURE} is not what the Rust code produces; if the change is deliberate, regenerate it \
         with {UPDATE_ENV}=1 cargo test --workspace --features lockstep-node/byzantine --lib \
         sdk_fixtures, and run the SDK's tests (npm test in sdk/typescript)"
    );
}

#[test]
fn the_protocol_example_bundle_hashes_as_protocol_md_says() {
    let b = &bundles()[0];
    assert_eq!(
        b["hash"],
        "0x4f58b7685839203baf12198a924525d0413ac282fe6c0dded6ef48f143d8ec2d"
    );
    assert_eq!(b["encoding"].as_str().map(str::len), Some(2 + 2 * 151));
}

// The explorer page: the node's own JSON-RPC API (same origin), live heights over the
// WebSocket, and rollup batches verified here with the SDK (lockstep-sdk.js, the TypeScript
// SDK's browser build). Everything from the node is shown with textContent, never as HTML.
import {
  BatchVerifier,
  LockstepClient,
  ValidatorSet,
  WsConnection,
  addressOf,
  blockHash,
  decodeBatchProof,
  fromHex,
  parseGenesis,
  toHex,
} from './lockstep-sdk.js';
import { drawChart } from './chart.js';

const POLL_MS = 400;
const HEALTH_MS = 2_000;
const RECONNECT_MS = 1_000;
/** Blocks kept for the charts and the recent list. */
const KEEP = 120;
/** Blocks per point of the bundles-per-second chart. */
const RATE_WINDOW = 5;

const $ = (id) => document.getElementById(id);
const http = new LockstepClient(location.origin);
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
const params = new URLSearchParams(location.search);

let live = null; // a LockstepClient over the WebSocket, while it is open
let chainId = null;
let pinned = null; // a BatchVerifier from a pinned genesis.json, else each batch's height's set as the node reports it
let nodeValidators = [];
const blocks = []; // {height, timestamp, bundles, proposer}, ascending, consecutive at the end
let selectedBundle = null;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function row(cells, cls) {
  const tr = el('tr', undefined, cls);
  for (const c of cells) tr.append(c instanceof Node ? wrapTd(c) : el('td', c));
  return tr;
}
function wrapTd(node) {
  const td = el('td');
  td.append(node);
  return td;
}
function link(text, onClick) {
  const a = el('a', text);
  a.href = '#';
  a.addEventListener('click', (ev) => {
    ev.preventDefault();
    onClick();
  });
  return a;
}
const short = (h) => (h.length > 20 ? `${h.slice(0, 10)}…${h.slice(-6)}` : h);
const errText = (e) => (e instanceof Error ? e.message : String(e));
const time = (ms) => new Date(Number(ms)).toISOString().slice(11, 23);

function setStatus(text, cls) {
  const s = $('live-status');
  s.textContent = text;
  s.className = `badge ${cls}`;
}

// ---- trust root: the validator set the batches are verified against ----
/** The node's validator list as a set, each address checked against its key. */
function setOf(vals) {
  for (const v of vals) {
    if (toHex(addressOf(fromHex(v.publicKey))) !== v.address) throw new Error(`validator ${v.address}: address is not its key's`);
  }
  return new ValidatorSet(vals.map((v) => ({ publicKey: fromHex(v.publicKey), votingPower: v.votingPower })));
}

async function loadValidators() {
  const [id, vals] = await Promise.all([http.chainId(), http.validators()]);
  const set = setOf(vals);
  nodeValidators = vals;
  chainId = id;
  $('chain').textContent = `chain ${chainId}`;
  $('trust-note').textContent =
    `Batches are verified against the validators this node reports for their height (seq_validators; ${set.size} ` +
    'decide the next height). Pin your genesis.json below to verify against your own trust root instead.';
  renderValidators();
}

/** The verifier for a batch at `height`: the pinned genesis, else the set the node reports for that height. */
async function verifierAt(height) {
  if (pinned) return pinned;
  if (chainId === null) return null;
  return new BatchVerifier(chainId, setOf(await http.validators(height)));
}

function pinGenesis() {
  try {
    const g = parseGenesis($('genesis-text').value);
    pinned = BatchVerifier.fromGenesis(g);
    const same =
      g.validators.size === nodeValidators.length &&
      g.validators.validators.every((v, i) => toHex(v.publicKey) === nodeValidators[i]?.publicKey);
    $('trust-note').textContent =
      `Pinned genesis.json: chain ${g.chainId}, ${g.validators.size} validators` +
      (same ? ' (the same as this node reports).' : ' — NOT the set this node reports.');
  } catch (e) {
    $('trust-note').textContent = `genesis.json refused: ${errText(e)}`;
  }
}

function renderValidators() {
  const counts = new Map();
  for (const b of blocks) counts.set(b.proposer, (counts.get(b.proposer) ?? 0) + 1);
  const body = $('validators').tBodies[0];
  body.replaceChildren(
    ...nodeValidators.map((v) => {
      const r = row([v.address, short(v.publicKey), v.votingPower, counts.get(v.address) ?? 0]);
      r.cells[0].className = 'hash';
      return r;
    }),
  );
}

async function refreshHealth() {
  try {
    const h = await (live ?? http).health();
    const last = h.lastDecidedAt === null ? 'none yet' : `${Date.now() - Number(h.lastDecidedAt)} ms ago`;
    $('health').textContent =
      `This node: height ${h.height}, ${h.peers} gossip peers, ${h.validator ? 'validator' : 'full node'}` +
      `${h.syncing ? ', syncing' : ''}, ${h.stalled ? 'STALLED' : 'not stalled'}; last commit ${last}.`;
  } catch (e) {
    $('health').textContent = `health unavailable: ${errText(e)}`;
  }
}

// ---- live heights over the WebSocket ----
async function follow() {
  for (;;) {
    try {
      if (!live) {
        setStatus('connecting…', '');
        live = new LockstepClient(await WsConnection.connect(wsUrl));
        setStatus('live (WebSocket)', 'live');
      }
      const height = await live.blockNumber();
      await addBlocksUpTo(height);
      await sleep(POLL_MS);
    } catch (e) {
      live = null;
      setStatus(`reconnecting: ${errText(e)}`, 'down');
      await sleep(RECONNECT_MS);
    }
  }
}

async function addBlocksUpTo(height) {
  const last = blocks.length ? blocks[blocks.length - 1].height : 0n;
  if (height <= last) return;
  let from = last + 1n;
  if (height - from >= BigInt(KEEP)) {
    from = height - BigInt(KEEP) + 1n;
    blocks.length = 0;
  }
  for (let h = from; h <= height; h++) {
    const b = await live.getBlock(h);
    if (!b) break; // pruned, or not decided here yet
    blocks.push({ height: b.height, timestamp: b.timestamp, bundles: b.bundles.length, proposer: b.proposer });
  }
  if (blocks.length > KEEP) blocks.splice(0, blocks.length - KEEP);
  renderLatest();
}

function renderLatest() {
  const top = blocks[blocks.length - 1];
  if (!top) return;
  $('latest-height').textContent = String(top.height);
  $('latest-info').textContent = `decided at ${time(top.timestamp)} UTC (proposer's clock)`;
  $('recent').tBodies[0].replaceChildren(
    ...blocks
      .slice(-8)
      .reverse()
      .map((b) => {
        const r = row([link(b.height, () => showBlock(b.height)), time(b.timestamp), b.bundles, short(b.proposer)]);
        r.cells[3].className = 'hash';
        return r;
      }),
  );
  const times = [];
  const rates = [];
  for (let i = 1; i < blocks.length; i++) {
    const a = blocks[i - 1], b = blocks[i];
    if (b.height !== a.height + 1n) continue;
    times.push([Number(b.height), Number(b.timestamp - a.timestamp)]);
    if (i >= RATE_WINDOW) {
      const first = blocks[i - RATE_WINDOW];
      const span = Number(b.timestamp - first.timestamp) / 1000;
      let n = 0;
      for (let j = i - RATE_WINDOW + 1; j <= i; j++) n += blocks[j].bundles;
      if (span > 0) rates.push([Number(b.height), n / span]);
    }
  }
  drawChart($('chart-block-time'), times, { color: '#1f6feb', unit: '' });
  drawChart($('chart-bundles'), rates, { color: '#bf8700', unit: '' });
  renderValidators();
}

// ---- lookups (HTTP) ----
/**
 * The validator set row of a block: the signed header's `validatorsHash` (seq_getBlock does not
 * carry the header; every rollup's batch does, rollup 0's included), checked to be the block's
 * header, and the version of that set as the node lists it (seq_getValidatorSets).
 */
async function validatorsOfBlock(height, hash) {
  try {
    const [batch, sets] = await Promise.all([http.getRollupBatch(0n, height), http.getValidatorSets()]);
    if (!batch) return 'unknown (no batch at this height on this node)';
    const header = decodeBatchProof(fromHex(batch.proof)).header;
    if (toHex(blockHash(header)) !== hash) return `unknown: the batch's header is not this block's (${short(batch.blockHash)})`;
    const vh = toHex(header.validatorsHash);
    const s = sets.find((x) => x.validatorsHash === vh);
    return `${vh} (${s ? `set version ${s.version}, from height ${s.fromHeight}` : 'a set this node does not list'})`;
  } catch (e) {
    return `unknown: ${errText(e)}`;
  }
}

async function showBlock(height) {
  const out = $('block-result');
  $('block-height').value = String(height);
  out.replaceChildren(el('span', 'loading…', 'muted'));
  try {
    const b = await http.getBlock(BigInt(height));
    if (!b) {
      out.replaceChildren(el('span', `no block at ${height} on this node (not decided yet, or pruned)`, 'muted'));
      return;
    }
    const t = el('table');
    const validators = row(['validators', await validatorsOfBlock(b.height, b.hash)]);
    validators.id = 'block-validators';
    t.append(
      row(['hash', b.hash]),
      row(['parent', b.parentHash]),
      row(['time', `${time(b.timestamp)} UTC (${b.timestamp})`]),
      row(['proposer', b.proposer]),
      validators,
      row(['bundles', b.bundles.length]),
    );
    for (const r of t.rows) r.cells[1].className = 'hash';
    const list = el('table', undefined, 'bundles');
    b.bundles.forEach((h, i) => list.append(row([i, link(h, () => findBundle(h))])));
    out.replaceChildren(t, list);
  } catch (e) {
    out.replaceChildren(el('span', `error: ${errText(e)}`, 'not-verified'));
  }
}

async function findBundle(hash) {
  hash = hash.trim().toLowerCase();
  $('bundle-hash').value = hash;
  const out = $('bundle-result');
  out.replaceChildren(el('span', 'loading…', 'muted'));
  try {
    const s = await http.getBundleStatus(hash);
    selectedBundle = hash;
    const status = el('span', s.status, s.status === 'included' ? 'verified' : s.status === 'dropped' ? 'not-verified' : '');
    status.id = 'bundle-status';
    const parts = [el('span', 'status: '), status];
    if (s.status === 'included') {
      parts.push(el('span', ` at height `), link(s.height, () => showBlock(s.height)), el('span', `, position ${s.index}`));
      $('batch-height').value = String(s.height);
      await showBlock(s.height);
    }
    if (s.reason) parts.push(el('span', ` (${s.reason})`));
    out.replaceChildren(...parts);
  } catch (e) {
    out.replaceChildren(el('span', `error: ${errText(e)}`, 'not-verified'));
  }
}

async function verifyBatch() {
  const verdict = $('batch-verdict');
  const out = $('batch-result');
  verdict.className = 'muted';
  verdict.textContent = 'verifying…';
  out.replaceChildren();
  let json;
  let height;
  try {
    const rollup = BigInt($('batch-rollup').value.trim());
    height = BigInt($('batch-height').value.trim());
    json = await http.getRollupBatch(rollup, height);
    if (json === null) {
      verdict.textContent = `no batch for rollup ${rollup} at height ${height} on this node`;
      return;
    }
  } catch (e) {
    verdict.textContent = `error: ${errText(e)}`;
    return;
  }
  let verifier;
  try {
    verifier = await verifierAt(height);
  } catch (e) {
    verdict.className = 'not-verified';
    verdict.textContent = `NOT verified: no validator set for height ${height}: ${errText(e)}`;
    return;
  }
  if (!verifier) {
    verdict.className = 'not-verified';
    verdict.textContent = 'NOT verified: no validator set loaded';
    return;
  }
  try {
    const batch = verifier.verify(json);
    verdict.className = 'verified';
    verdict.textContent =
      `verified: certificate (${batch.certificate.signatures.length} of ${verifier.validators.size} validators, ` +
      `round ${batch.certificate.round}) and completeness proof for ${batch.entries.length} entries`;
  } catch (e) {
    verdict.className = 'not-verified';
    verdict.textContent = `NOT verified: ${e?.kind ? `${e.kind}: ` : ''}${errText(e)}`;
  }
  const t = el('table');
  t.append(row(['bundle', 'leg', 'rollups', 'data bytes']));
  for (const e of json.entries) {
    const r = row([e.bundleHash, e.legIndex, e.rollups.join(','), (e.data.length - 2) / 2], e.bundleHash === selectedBundle ? 'match' : '');
    r.cells[0].className = 'hash';
    t.append(r);
  }
  const info = el('div', `block ${json.blockHash} at ${time(json.timestamp)} UTC`, 'muted hash');
  out.replaceChildren(info, t);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function bind(formId, fn) {
  $(formId).addEventListener('submit', (ev) => {
    ev.preventDefault();
    fn();
  });
}

bind('bundle-form', () => findBundle($('bundle-hash').value));
bind('block-form', () => showBlock($('block-height').value.trim()));
bind('batch-form', () => verifyBatch());
$('genesis-pin').addEventListener('click', pinGenesis);

(async () => {
  if (params.get('rollup')) $('batch-rollup').value = params.get('rollup');
  try {
    await loadValidators();
  } catch (e) {
    $('trust-note').textContent = `cannot load the validator set: ${errText(e)}`;
  }
  refreshHealth();
  setInterval(refreshHealth, HEALTH_MS);
  if (params.get('bundle')) {
    await findBundle(params.get('bundle'));
    if ($('batch-height').value) await verifyBatch();
  }
  document.body.dataset.ready = 'true';
})();
follow();

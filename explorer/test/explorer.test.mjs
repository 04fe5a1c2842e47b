// The node's explorer page in a real Chromium (Debian's `chromium`, driven by playwright-core;
// no browser download). tests/tests/explorer.rs starts a live network, sends a bundle, and
// runs this with:
//   EXPLORER_URL        a node's RPC address (http://127.0.0.1:port), which serves the page
//   EXPLORER_BUNDLE     the hash of an included bundle
//   EXPLORER_ROLLUP     a rollup that bundle has a leg for
//   EXPLORER_SCREENSHOT where to save a screenshot (optional)
//   CHROMIUM            the browser (default: chromium on PATH, /usr/bin/chromium)
// It checks: the page loads under its Content-Security-Policy with no errors, new heights
// arrive live, the bundle is found by its hash, its rollup batch is verified in the browser,
// the block names the validator set that decided it, and a batch altered in one byte on its way
// to the page is shown as NOT verified.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';

const need = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set: this suite runs against a live node (tests/tests/explorer.rs)`);
  return v;
};
const URL_ = need('EXPLORER_URL');
const BUNDLE = need('EXPLORER_BUNDLE').toLowerCase();
const ROLLUP = need('EXPLORER_ROLLUP');
const SCREENSHOT = process.env.EXPLORER_SCREENSHOT;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT = 15_000;

let browser;
let page;
const problems = [];

before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: install it (Debian: apt-get install chromium; scripts/deps.sh does) or set CHROMIUM`);
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
});

after(async () => {
  await browser?.close();
});

const text = (sel) => page.locator(sel).innerText();

/** Answers the page's seq_getRollupBatch calls from the node, with `alter` applied to the batch. */
async function tamperBatches(alter) {
  await page.route(URL_ + '/', async (route) => {
    const req = route.request();
    if (req.method() !== 'POST' || !(req.postData() ?? '').includes('"seq_getRollupBatch"')) return route.continue();
    const res = await route.fetch();
    const body = await res.json();
    assert.ok(body.result, `the node returned no batch: ${JSON.stringify(body)}`);
    alter(body.result);
    await route.fulfill({ response: res, body: JSON.stringify(body) });
  });
}

/** The header's bytes in a batch's `proof` (borsh: the header comes first, 176 bytes). */
const HEADER_BYTES = 176;

/** `0x…` hex of the block hash of the header at the start of a batch's `proof`. */
function headerHash(proof) {
  const header = Buffer.from(proof.slice(2), 'hex').subarray(0, HEADER_BYTES);
  return '0x' + createHash('sha256').update('lockstep:header:v1').update(header).digest('hex');
}

/** `0x…` hex with the byte at `i` (from the end when negative) xored with 1. */
function flipByte(hex, i) {
  const bytes = Buffer.from(hex.slice(2), 'hex');
  const at = i < 0 ? bytes.length + i : i;
  bytes[at] ^= 1;
  return '0x' + bytes.toString('hex');
}

test('the page loads from the node with its security headers', async () => {
  const res = await page.goto(URL_ + '/');
  assert.equal(res.status(), 200);
  const headers = res.headers();
  assert.match(headers['content-type'], /^text\/html/);
  assert.match(headers['content-security-policy'], /default-src 'none'/);
  assert.match(headers['content-security-policy'], /connect-src 'self'/);
  assert.equal(await page.title(), 'Lockstep explorer');
});

test('new heights arrive live over the WebSocket', async () => {
  await page.locator('#live-status.live').waitFor({ timeout: WAIT });
  assert.equal(await text('#live-status'), 'live (WebSocket)');
  await page.waitForFunction(() => /^\d+$/.test(document.getElementById('latest-height').textContent), null, { timeout: WAIT });
  const first = BigInt(await text('#latest-height'));
  await page.waitForFunction(
    (h) => BigInt(document.getElementById('latest-height').textContent) > BigInt(h),
    String(first),
    { timeout: WAIT },
  );
  const later = BigInt(await text('#latest-height'));
  assert.ok(later > first, `${later} > ${first}`);
  // The validators and health came in too.
  await page.locator('#validators tbody tr').nth(3).waitFor({ timeout: WAIT });
  assert.equal(await page.locator('#validators tbody tr').count(), 4);
  await page.waitForFunction(() => document.getElementById('health').textContent.startsWith('This node: height'), null, { timeout: WAIT });
});

test('the bundle is found by its hash and its rollup batch is verified in the browser', async () => {
  await page.fill('#batch-rollup', ROLLUP);
  await page.fill('#bundle-hash', BUNDLE);
  await page.click('#bundle-form button');
  await page.locator('#bundle-status').waitFor({ timeout: WAIT });
  assert.equal(await text('#bundle-status'), 'included');
  const height = await page.inputValue('#batch-height');
  assert.match(height, /^\d+$/);
  // The block it is in lists it, and names the set that decided it (the genesis set: no update was sent).
  await page.locator('#block-result .bundles').getByText(BUNDLE).waitFor({ timeout: WAIT });
  const validators = await text('#block-validators');
  assert.match(validators, /^validators\s+0x[0-9a-f]{64} \(set version 0, from height 1\)$/, validators);
  await page.click('#batch-form button');
  await page.waitForFunction(() => !document.getElementById('batch-verdict').textContent.startsWith('verifying'), null, { timeout: WAIT });
  const verdict = await text('#batch-verdict');
  assert.match(verdict, /^verified: certificate/, verdict);
  assert.equal(await page.locator('#batch-verdict.verified').count(), 1);
  // Its leg is in the batch, marked.
  assert.equal(await page.locator('#batch-result tr.match').count(), 1);
  await page.locator('canvas#chart-block-time').scrollIntoViewIfNeeded();
  if (SCREENSHOT) {
    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  }
});

test('a batch altered in one byte is shown as NOT verified', async (t) => {
  const cases = [
    // The leg's data: what the rollup would execute. The completeness proof no longer holds.
    ['entry data', (b) => (b.entries[0].data = flipByte(b.entries[0].data, -1)), /^NOT verified: proof/],
    // A precommit signature in the certificate.
    ['certificate signature', (b) => (b.certificate = flipByte(b.certificate, -1)), /^NOT verified: certificate:badSignature/],
    // The header's validator set hash (its last byte), the block hash made to match: the
    // header names another set than the one the batch is verified against.
    [
      'header validator set',
      (b) => {
        b.proof = flipByte(b.proof, HEADER_BYTES - 1);
        b.blockHash = headerHash(b.proof);
      },
      /^NOT verified: otherValidatorSet/,
    ],
  ];
  for (const [what, alter, expected] of cases) {
    await t.test(what, async () => {
      await tamperBatches(alter);
      await page.click('#batch-form button');
      await page.waitForFunction(() => document.getElementById('batch-verdict').textContent.startsWith('NOT'), null, { timeout: WAIT });
      const verdict = await text('#batch-verdict');
      assert.match(verdict, expected, verdict);
      assert.equal(await page.locator('#batch-verdict.not-verified').count(), 1);
      await page.unrouteAll();
      // The untouched batch verifies again.
      await page.click('#batch-form button');
      await page.waitForFunction(() => document.getElementById('batch-verdict').textContent.startsWith('verified'), null, { timeout: WAIT });
    });
  }
});

test('the page raised no errors (CSP refusals included)', () => {
  assert.deepEqual(problems, []);
});

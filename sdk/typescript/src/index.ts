/**
 * Lockstep TypeScript SDK: build, sign and send atomic cross-rollup bundles; follow a rollup
 * and verify every batch against the genesis validator set. The same protocol rules as the
 * Rust client (`client/`, `bundles/`); see docs/protocol.md.
 *
 * Everything here runs in browsers and Node alike; the Node-only WebSocket factory is in
 * `@lockstep/sdk/node`.
 */

export * from './batch.js';
export * from './block.js';
export { BorshError, Reader, Writer, decodeAll } from './borsh.js';
export * from './bundle.js';
export * from './certificate.js';
export { isValidPublicKey, publicKeyOf, verifySignature } from './ed25519.js';
export * from './follower.js';
export { ascii, sha256, taggedHash, ZERO_HASH } from './hash.js';
export * from './hex.js';
export * from './ints.js';
export { parseJson, stringifyJson } from './json.js';
export * from './limits.js';
export * from './merkle.js';
export * from './rollup.js';
export * from './rpc.js';
export * from './tracker.js';
export * from './types.js';
export * from './validators.js';
export * from './ws.js';

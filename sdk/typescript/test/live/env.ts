// What the live suite runs against, from the environment. tests/tests/sdk_typescript.rs starts
// a 4-validator network and sets these; without them the suite fails (it never skips).
import { readFileSync } from 'node:fs';
import { parseGenesis, parseJson } from '../../src/index.js';

function need(name: string): string {
  const v = process.env[name];
  if (!v) {
    throw new Error(
      `${name} is not set: the live suite runs against a network; run it through ` +
        '`cargo test --workspace --features lockstep-node/byzantine --test sdk_typescript`, which starts one',
    );
  }
  return v;
}

/** `endpoints.json` of the network (protocol §4.2). */
export const endpointsPath = need('LOCKSTEP_ENDPOINTS');
/** The network's `genesis.json`. */
export const genesisPath = need('LOCKSTEP_GENESIS');
/** Where the suite writes what it did, for the Rust test to check against the Rust client. */
export const reportPath = need('LOCKSTEP_SDK_REPORT');

export const endpoints = parseJson(readFileSync(endpointsPath, 'utf8')) as {
  chainId: bigint;
  nodes: { name: string; rpc: string; ws: string; pid: bigint | null }[];
};
export const genesis = parseGenesis(readFileSync(genesisPath, 'utf8'));

if (endpoints.nodes.length < 4) throw new Error(`${endpointsPath} lists ${endpoints.nodes.length} nodes; the live suite needs 4`);

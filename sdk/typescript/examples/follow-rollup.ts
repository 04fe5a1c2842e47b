import { readFileSync } from 'node:fs';
import { BatchVerifier, Follower, parseGenesis, toHex } from '@lockstep/sdk';
import { nodeWebSocket } from '@lockstep/sdk/node'; // in a browser, leave `webSocket` out

const genesis = parseGenesis(readFileSync(process.env.LOCKSTEP_GENESIS ?? 'genesis.json', 'utf8')); // the trust root
const follower = new Follower({
  urls: (process.env.LOCKSTEP_WS ?? 'ws://127.0.0.1:8545,ws://127.0.0.1:8546').split(','), // tried in turn
  rollupId: 1n, // fromHeight: 42n to start (or resume) at a height; default: the node's next one
  verifier: BatchVerifier.fromGenesis(genesis),
  webSocket: nodeWebSocket,
});
for await (const { batch } of follower) // certificate + completeness proof verified, every height once, in order
  for (const e of batch.entries) console.log(batch.height, toHex(e.bundleHash), e.legIndex, toHex(e.data));

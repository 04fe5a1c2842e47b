import { LockstepClient, sendAndWait, signBundle, Signer } from '@lockstep/sdk';

const client = new LockstepClient(process.env.LOCKSTEP_RPC ?? 'http://127.0.0.1:8545');
const signer = Signer.fromSeed(process.env.LOCKSTEP_SEED ?? '0x' + '01'.repeat(32)); // 32-byte secret seed
const bundle = signBundle(signer, {
  chainId: await client.chainId(),
  nonce: BigInt(Date.now()), // any u64: makes otherwise identical bundles distinct
  validUntil: (await client.blockNumber()) + 100n, // the last height it may be included at
  legs: [{ rollupId: 1n, data: '0x01' }, { rollupId: 2n, data: '0x0203' }], // atomic: all legs or none
});
const { hash, outcome } = await sendAndWait(client, bundle); // RpcError with code 4001…4006 if refused
console.log(hash, outcome); // { status: 'included', height, index } or { status: 'dropped', reason }

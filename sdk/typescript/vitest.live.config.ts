import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// The live suite (`npm run test:live`): against a running network, given by environment
// variables (see test/live/env.ts); tests/tests/sdk_typescript.rs starts the network and runs
// it. One file at a time, tests in order: a later test kills a node. The examples import the
// package by its name, resolved here to the sources.
export default defineConfig({
  resolve: {
    alias: [
      { find: /^@lockstep\/sdk\/node$/, replacement: fileURLToPath(new URL('./src/node.ts', import.meta.url)) },
      { find: /^@lockstep\/sdk$/, replacement: fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
    ],
  },
  test: {
    include: ['test/live/**/*.test.ts'],
    fileParallelism: false,
    sequence: { concurrent: false },
    testTimeout: 180_000,
    hookTimeout: 60_000,
  },
});

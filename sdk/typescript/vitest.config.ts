import { defineConfig } from 'vitest/config';

// Unit tests (`npm test`): no network, no node processes. The live suite (test/live) runs
// only with `npm run test:live`, against a network whose addresses it is given.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/live/**', 'node_modules/**'],
  },
});

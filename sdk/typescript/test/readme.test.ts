import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// The README's examples are the example files (which `npm test` type-checks), so they cannot rot.
const read = (p: string) => readFileSync(new URL(p, import.meta.url), 'utf8');

describe('README', () => {
  const readme = read('../README.md');
  for (const file of ['send-bundle.ts', 'follow-rollup.ts']) {
    it(`shows examples/${file} as it is`, () => {
      const at = readme.indexOf(`(examples/${file}):`);
      expect(at).toBeGreaterThan(0);
      const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
      expect(block?.[1]).toBe(read(`../examples/${file}`));
    });
  }
});

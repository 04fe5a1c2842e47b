import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module script without types
import { BROWSER_BUILD, buildBrowser } from '../browser-build.mjs';

describe('the browser build the node embeds (explorer/www/lockstep-sdk.js)', () => {
  it('is what the current sources build (else: npm run build:browser)', async () => {
    const built: string = await buildBrowser();
    const committed = readFileSync(BROWSER_BUILD as string, 'utf8');
    expect(committed === built, 'explorer/www/lockstep-sdk.js is stale: run `npm run build:browser` in sdk/typescript').toBe(true);
  });

  it('uses no Node-only module', async () => {
    const built: string = await buildBrowser();
    expect(built).not.toMatch(/from ["']node:|require\(["']/);
  });
});

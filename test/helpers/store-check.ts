import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';

/** What a store holds, by name: packages and blobs a later run could trust, and staging litter. */
export interface StoreContents {
  packages: string[];
  blobs: string[];
  tmp: string[];
}

export function storeContents(store: string): StoreContents {
  const list = (...p: string[]) => (existsSync(join(store, ...p)) ? readdirSync(join(store, ...p)).sort() : []);
  return { packages: list('packages', 'sha256'), blobs: list('blobs', 'sha256'), tmp: list('tmp') };
}

/**
 * Fails the test unless everything a later run would trust is sound: every blob hashes to its
 * name, and every package directory is complete (package.json there, its manifest blob present,
 * every layer the manifest lists present and verified).
 */
export function expectStoreVerified(store: string): StoreContents {
  const contents = storeContents(store);
  for (const hex of contents.blobs) {
    const found = createHash('sha256').update(readFileSync(join(store, 'blobs', 'sha256', hex))).digest('hex');
    expect(found, `blob ${hex}`).toBe(hex);
  }
  for (const hex of contents.packages) {
    const info = JSON.parse(readFileSync(join(store, 'packages', 'sha256', hex, 'package.json'), 'utf8')) as {
      manifest: { layers: { digest: string }[] };
    };
    expect(contents.blobs, `manifest of package ${hex}`).toContain(hex);
    for (const layer of info.manifest.layers) expect(contents.blobs, `layer of package ${hex}`).toContain(layer.digest.slice('sha256:'.length));
  }
  return contents;
}

/**
 * After a refused fetch: no package, no blob, and no staging left behind; only, after a transfer
 * that failed midway, the partial downloads of `partials` (digests) that the next run continues.
 */
export function expectNothingInstalled(store: string, partials: string[] = []): void {
  expect(storeContents(store)).toEqual({ packages: [], blobs: [], tmp: partials.map((d) => `partial-${d.slice('sha256:'.length)}`).sort() });
}

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { LayoutDirectory } from '../src/layout/directory.js';
import { installPackage } from '../src/store/install.js';
import { verifyStore } from '../src/store/maintenance.js';
import { tempDir } from './helpers/cli.js';
import { buildImage, writeImage } from './helpers/layers.js';

/**
 * `ocipkg store verify` finds links that leave a package in packages installed before install
 * checked links across layers: such a store is made here by an install whose cross-layer check is
 * switched off, as an older ocipkg's was.
 */
const installChecksLinks = { on: true };
vi.mock('../src/fs/extract.js', async (original) => {
  const actual = await original<typeof import('../src/fs/extract.js')>();
  return { ...actual, badLink: (root: string) => (installChecksLinks.on ? actual.badLink(root) : Promise.resolve(undefined)) };
});

describe('store verify', () => {
  it('reports a symlink that leads outside an installed package', async () => {
    const work = await tempDir('verify-links');
    const store = join(work, 'store');
    const source = new LayoutDirectory(join(work, 'source'));
    const img = buildImage([
      [{ path: 'lib/libz.a', body: readFileSync('/usr/lib/x86_64-linux-gnu/libz.a') }, { path: 'lib/libsecret.so', type: 'SymbolicLink', linkpath: 's/s/s/s/../../../..' }],
      [{ path: 'lib/s', type: 'SymbolicLink', linkpath: '.' }],
    ]);
    await writeImage(source, img, '1');
    installChecksLinks.on = false;
    await installPackage(store, source, img.manifestDesc, img.manifestBytes);
    installChecksLinks.on = true;

    const result = await verifyStore(store);
    expect(result.problems).toEqual([{ kind: 'package', digest: img.manifestDesc.digest, reason: 'lib/libsecret.so is a symlink that leads outside the package' }]);
  });
});

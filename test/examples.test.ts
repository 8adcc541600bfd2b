import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildExample,
  buildGreetLibrary,
  callExample,
  installExample,
  packOcipkg,
  publish,
  run,
} from '../scripts/examples.mjs';
import { ocipkgLink, tempDir } from './helpers/cli.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

/**
 * The example addons as their users build them: ocipkg installed from its npm tarball, libgreet
 * (examples/c-library) pulled from a real registry, a cmake-js and a node-gyp build, each linked
 * statically and shared, then loaded with require() in a fresh Node process. One registry, one
 * tarball and one npm install per example serve every test here: the builds are what takes time.
 */
let registry: TestRegistry;
let work: string;
let image: string;
const installed: Record<string, string> = {};

beforeAll(async () => {
  registry = await startRegistry();
  work = await tempDir('examples');
  image = `${registry.host}/examples/greet:1.2.0`;
  const [prefix, tarball] = await Promise.all([buildGreetLibrary(work), packOcipkg(work)]);
  await publish(prefix, image, join(work, 'greet.tar'));
  for (const name of ['cmake-js-addon', 'node-gyp-addon']) installed[name] = await installExample(name, work, tarball);
}, 240_000);

afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** A fresh directory inside this file's work directory, which afterAll removes. */
function scratch(name: string): Promise<string> {
  return mkdtemp(join(work, `${name}-`));
}

function needed(file: string): string[] {
  const dynamic = execFileSync('readelf', ['-d', file], { encoding: 'utf8' });
  return [...dynamic.matchAll(/\(NEEDED\).*\[(.+)\]/g)].map((m) => m[1]!);
}

describe.each(['cmake-js-addon', 'node-gyp-addon'])('examples/%s', (name) => {
  it('links libgreet statically: nothing to ship beside the addon', async () => {
    const dir = installed[name]!;
    const store = await scratch('store');
    await buildExample(dir, { image, linkage: 'static', env: { OCIPKG_DATA_DIR: store } });
    const addon = join(dir, 'build', 'Release', 'greet_addon.node');
    expect(needed(addon)).not.toContain('libgreet.so.1');
    expect(readdirSync(join(dir, 'build', 'Release')).filter((f) => f.startsWith('libgreet'))).toEqual([]);
    expect(await callExample(dir)).toEqual({ sum: 5, version: '1.2.0 (static)' });
  });

  it('links libgreet shared and still loads once the ocipkg store is deleted', async () => {
    const dir = installed[name]!;
    const store = await scratch('store');
    await buildExample(dir, { image, linkage: 'shared', env: { OCIPKG_DATA_DIR: store } });
    const release = join(dir, 'build', 'Release');
    expect(needed(join(release, 'greet_addon.node'))).toContain('libgreet.so.1');
    expect(existsSync(join(release, 'libgreet.so.1'))).toBe(true);

    await rm(store, { recursive: true, force: true });
    expect(await callExample(dir)).toEqual({ sum: 5, version: '1.2.0 (shared)' });
  });
});

describe('a tag that does not exist', () => {
  it('fails the cmake-js configure step with ocipkg-link\'s own message', async () => {
    const missing = `${registry.host}/examples/greet:no-such-tag`;
    const store = await scratch('store');
    const direct = await ocipkgLink(['--json', missing], { OCIPKG_DATA_DIR: store });
    expect(direct.code).toBe(1);

    const failure = await buildExample(installed['cmake-js-addon']!, {
      image: missing,
      linkage: 'static',
      env: { OCIPKG_DATA_DIR: store },
    }).then(
      () => undefined,
      (err: { exitCode: number; stdout: string; stderr: string }) => err,
    );
    expect(failure?.exitCode).not.toBe(0);
    expect(`${failure?.stdout}${failure?.stderr}`).toContain(direct.stderr.trim());
  });
});

// Last in this file: it stops the registry the tests above share.
describe('a locked, warm project', () => {
  it('builds both examples again with the registry stopped and OCIPKG_OFFLINE=1', async () => {
    const store = await scratch('store');
    const env = { OCIPKG_DATA_DIR: store };
    for (const name of ['cmake-js-addon', 'node-gyp-addon']) {
      const dir = installed[name]!;
      // Declare libgreet as the addon's package and lock it, as an addon author would.
      const manifestPath = join(dir, 'package.json');
      const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as Record<string, unknown>;
      await writeFile(manifestPath, JSON.stringify({ ...manifest, ocipkg: { packages: { greet: image } } }, null, 2));
      await run(process.execPath, [join(dir, 'node_modules', 'ocipkg', 'bin', 'ocipkg.js'), 'install'], { cwd: dir, env: { ...env, CI: '' } });
      expect(existsSync(join(dir, 'ocipkg-lock.json'))).toBe(true);
      await buildExample(dir, { image: 'greet', linkage: 'static', env });
    }
    await registry.stop();
    for (const name of ['cmake-js-addon', 'node-gyp-addon']) {
      const dir = installed[name]!;
      await rm(join(dir, 'build'), { recursive: true, force: true });
      await buildExample(dir, { image: 'greet', linkage: 'static', env: { ...env, OCIPKG_OFFLINE: '1' } });
      expect(await callExample(dir)).toEqual({ sum: 5, version: '1.2.0 (static)' });
    }
  });
});

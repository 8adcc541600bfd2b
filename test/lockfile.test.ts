import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { formatLockfile, readLockfile, writeLockfile, type Lockfile } from '../src/project/lockfile.js';
import { declaredPackage, findProject, PROJECT_DIR_ENV, resolveAlias } from '../src/project/manifest.js';
import { tempDir } from './helpers/cli.js';
import { codeOfSync } from './helpers/errors.js';

const D = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;

describe('ocipkg-lock.json', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir('lockfile');
  });

  it('is stable JSON: sorted keys at every level, one entry per package, same bytes for the same content', async () => {
    const lock: Lockfile = {
      packages: {
        'registry.test/acme/zstd:1.5.6': { requires: [], mediaType: 'application/vnd.oci.image.index.v1+json', manifests: { 'x86_64-unknown-linux-gnu': D(2), 'aarch64-apple-darwin': D(3) }, digest: D(1) },
        'registry.test/acme/lz4:1': { manifests: { '': D(5) }, digest: D(4), mediaType: 'application/vnd.oci.image.manifest.v1+json', requires: ['registry.test/acme/zstd:1.5.6'] },
      },
    };
    writeLockfile(dir, lock);
    const text = await readFile(join(dir, 'ocipkg-lock.json'), 'utf8');
    expect(text).toBe(formatLockfile(lock));
    const doc = JSON.parse(text);
    expect(Object.keys(doc)).toEqual(['lockfileVersion', 'packages']);
    expect(Object.keys(doc.packages)).toEqual(['registry.test/acme/lz4:1', 'registry.test/acme/zstd:1.5.6']);
    expect(Object.keys(doc.packages['registry.test/acme/zstd:1.5.6'])).toEqual(['digest', 'manifests', 'mediaType', 'requires']);
    expect(Object.keys(doc.packages['registry.test/acme/zstd:1.5.6'].manifests)).toEqual(['aarch64-apple-darwin', 'x86_64-unknown-linux-gnu']);
    expect(text.endsWith('}\n')).toBe(true);
    expect(readLockfile(dir)).toEqual(lock);
    expect(formatLockfile(readLockfile(dir)!)).toBe(text);
  });

  it('is absent without a file, and refuses one it cannot read instead of ignoring it', async () => {
    const empty = await tempDir('lockfile-none');
    expect(readLockfile(empty)).toBeUndefined();
    await writeFile(join(empty, 'ocipkg-lock.json'), '{ not json');
    expect(codeOfSync(() => readLockfile(empty))).toBe('ELOCKFILE');
    await writeFile(join(empty, 'ocipkg-lock.json'), JSON.stringify({ lockfileVersion: 1, packages: { 'a/b:1': { digest: D(1) } } }));
    expect(codeOfSync(() => readLockfile(empty))).toBe('ELOCKFILE');
    await writeFile(join(empty, 'ocipkg-lock.json'), JSON.stringify({ lockfileVersion: 99, packages: {} }));
    expect(codeOfSync(() => readLockfile(empty))).toBe('ELOCKFILE');
  });

  it('refuses a pin that is not a sha256 digest, naming the lockfile and the pin', async () => {
    const dir = await tempDir('lockfile-pins');
    const path = join(dir, 'ocipkg-lock.json');
    const entry = (digest: string, pin: string) => ({ digest, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: { 'x86_64-unknown-linux-gnu': pin }, requires: [] });
    for (const [digest, pin, where] of [
      [D(1), 'sha256:../../etc', 'manifests["x86_64-unknown-linux-gnu"] is "sha256:../../etc"'],
      [D(1), `sha256:${'A'.repeat(64)}`, 'manifests["x86_64-unknown-linux-gnu"] is "sha256:'],
      ['sha512:abcd', D(2), 'digest is "sha512:abcd"'],
    ] as const) {
      await writeFile(path, JSON.stringify({ lockfileVersion: 1, packages: { 'registry.test/acme/zlib:1': entry(digest, pin) } }));
      let message = '';
      expect(codeOfSync(() => {
        try {
          readLockfile(dir);
        } catch (err) {
          message = (err as Error).message;
          throw err;
        }
      })).toBe('ELOCKFILE');
      expect(message).toContain(`${path}: invalid lockfile: packages["registry.test/acme/zlib:1"].${where}`);
      expect(message).toContain('not a sha256 digest');
    }
  });
});

describe('declared packages (package.json "ocipkg")', () => {
  const saved = process.env[PROJECT_DIR_ENV];
  afterEach(() => {
    if (saved === undefined) delete process.env[PROJECT_DIR_ENV];
    else process.env[PROJECT_DIR_ENV] = saved;
  });

  async function project(): Promise<string> {
    const root = await tempDir('project');
    await writeFile(join(root, 'package.json'), JSON.stringify({
      name: 'addon',
      ocipkg: { packages: { zstd: 'registry.test/acme/zstd:1.5.6', sqlite3: { image: 'registry.test/acme/sqlite3:3.46', linkage: 'shared' } } },
    }));
    await mkdir(join(root, 'build', 'Release'), { recursive: true });
    return root;
  }

  it('finds the nearest package.json with an ocipkg section, walking up from a build directory', async () => {
    const root = await project();
    const found = findProject(join(root, 'build', 'Release'));
    expect(found?.dir).toBe(root);
    expect(found?.packages.sqlite3).toEqual({ alias: 'sqlite3', image: 'registry.test/acme/sqlite3:3.46', linkage: 'shared' });
    expect(found?.packages.zstd).toEqual({ alias: 'zstd', image: 'registry.test/acme/zstd:1.5.6' });
    expect(findProject(await tempDir('no-project'))?.packages ?? {}).toEqual({});
  });

  it('takes the nearest package.json as the project even without an ocipkg section: nothing above it is adopted', async () => {
    // A parent directory with a project and a lockfile of its own, as an attacker (or a stray
    // checkout) could leave above a project that declares nothing.
    const root = await project();
    await writeFile(join(root, 'ocipkg-lock.json'), '{}');
    const below = join(root, 'vendor', 'addon');
    await mkdir(join(below, 'build'), { recursive: true });
    await writeFile(join(below, 'package.json'), JSON.stringify({ name: 'addon-without-section' }));
    const found = findProject(join(below, 'build'));
    expect(found).toEqual({ dir: below, hasSection: false, packages: {}, trust: [] });
    expect(resolveAlias('zstd', found)).toBe('zstd');
  });

  it('starts from OCIPKG_PROJECT_DIR when set (as ocipkgConfig.cmake sets it)', async () => {
    const root = await project();
    process.env[PROJECT_DIR_ENV] = join(root, 'build');
    expect(findProject()?.dir).toBe(root);
    expect(resolveAlias('zstd')).toBe('registry.test/acme/zstd:1.5.6');
  });

  it('treats only bare words as aliases: declared ones win over Docker Hub, references are never looked up', async () => {
    const p = findProject(await project());
    expect(declaredPackage('zstd', p)?.image).toBe('registry.test/acme/zstd:1.5.6');
    expect(resolveAlias('zstd', p)).toBe('registry.test/acme/zstd:1.5.6');
    // An undeclared bare word is refused (a mistyped alias must not reach Docker Hub); anything with
    // a tag, registry, digest or oci: is a reference.
    expect(codeOfSync(() => resolveAlias('lz4', p))).toBe('EUSAGE');
    expect(resolveAlias('zstd:1.5.6', p)).toBe('zstd:1.5.6');
    expect(resolveAlias('library/zstd', p)).toBe('library/zstd');
    expect(resolveAlias('oci:zstd', p)).toBe('oci:zstd');
    expect(declaredPackage('toString', p)).toBeUndefined();
  });

  it('refuses an ocipkg section it cannot use', async () => {
    const root = await tempDir('bad-project');
    const write = (ocipkg: unknown) => writeFile(join(root, 'package.json'), JSON.stringify({ ocipkg }));
    await write({ packages: { 'a/b': 'registry.test/a/b:1' } });
    expect(codeOfSync(() => findProject(root))).toBe('EINPUT');
    await write({ packages: { zstd: { linkage: 'shared' } } });
    expect(codeOfSync(() => findProject(root))).toBe('EINPUT');
    await write({ packages: { zstd: { image: 'registry.test/a/zstd:1', linkage: 'dynamic' } } });
    expect(codeOfSync(() => findProject(root))).toBe('EINPUT');
    await writeFile(join(root, 'package.json'), '{');
    expect(codeOfSync(() => findProject(root))).toBe('EINPUT');
  });
});

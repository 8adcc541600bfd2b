import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LayoutDirectory } from '../src/layout/directory.js';
import { descriptorFor, sha256 } from '../src/oci/verify.js';
import { ANNOTATION_REF_NAME, ANNOTATION_TARGET, OCI_INDEX, OCI_LAYER_TAR_GZIP } from '../src/oci/mediatypes.js';
import { parseReference } from '../src/reference.js';
import { removeTree } from '../src/fs/tree.js';
import { installPackage } from '../src/store/install.js';
import { readInstalledPackage } from '../src/store/package.js';
import { storePaths } from '../src/store/paths.js';
import { listRefs, readRef, removeRef, writeRef, type RefRecord } from '../src/store/refs.js';
import { listPackages } from '../src/store/package.js';
import { writeStoreIndex } from '../src/store/index-json.js';
import { buildImage, writeImage, type TarEntry, type TestImage } from './helpers/layers.js';
import { codeOf } from './helpers/errors.js';

const LIBS = '/usr/lib/x86_64-linux-gnu';

let work: string;
let store: string;
let source: LayoutDirectory;

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocipkg-store-'));
  store = join(work, 'store');
  process.env.OCIPKG_DATA_DIR = store;
  source = new LayoutDirectory(join(work, 'source'));
});

afterEach(async () => {
  delete process.env.OCIPKG_DATA_DIR;
  // Installed packages are read-only: removeTree makes directories writable on its way down.
  await removeTree(work);
});


const libEntries = (): TarEntry[] => [
  { path: 'include/', type: 'Directory' },
  { path: 'include/zstd.h', body: '#define ZSTD_VERSION_MAJOR 1\n' },
  { path: 'lib/', type: 'Directory' },
  { path: 'lib/libzstd.a', body: readFileSync(join(LIBS, 'libzstd.a')) },
];

async function published(layers: TarEntry[][] = [libEntries()]): Promise<TestImage> {
  const img = buildImage(layers, { name: 'zstd' });
  await writeImage(source, img, '1.0');
  return img;
}

const install = (img: TestImage, options = {}) => installPackage(store, source, img.manifestDesc, img.manifestBytes, options);

async function ls(path: string): Promise<string[]> {
  return existsSync(path) ? readdir(path) : [];
}

describe('installPackage', () => {
  it('installs a package read-only with its blobs in the store and nothing left in tmp/', async () => {
    const img = await published([libEntries(), [{ path: 'lib/liblz4.a', body: readFileSync(join(LIBS, 'liblz4.a')) }]]);
    const pkg = await install(img, { triple: 'x86_64-unknown-linux-gnu' });

    expect(pkg.dir).toBe(storePaths.package(store, img.manifestDesc.digest));
    expect(sha256(readFileSync(join(pkg.root, 'lib/libzstd.a')))).toBe(sha256(readFileSync(join(LIBS, 'libzstd.a'))));
    expect(sha256(readFileSync(join(pkg.root, 'lib/liblz4.a')))).toBe(sha256(readFileSync(join(LIBS, 'liblz4.a'))));
    expect(pkg.config.package?.name).toBe('zstd');
    expect(readInstalledPackage(store, img.manifestDesc.digest)).toEqual(pkg);
    expect(pkg.target).toBe('x86_64-unknown-linux-gnu');

    expect(statSync(join(pkg.root, 'lib/libzstd.a')).mode & 0o777).toBe(0o444);
    expect(statSync(join(pkg.root, 'lib')).mode & 0o777).toBe(0o555);
    expect(statSync(pkg.dir).mode & 0o777).toBe(0o555);

    for (const desc of [img.manifestDesc, img.configDesc, ...img.layers.map((l) => l.desc)]) {
      const blob = storePaths.blob(store, desc.digest);
      expect(sha256(readFileSync(blob))).toBe(desc.digest);
      expect(statSync(blob).mode & 0o777).toBe(0o444);
    }
    expect(await ls(storePaths.tmp(store))).toEqual([]);
    expect(JSON.parse(readFileSync(join(store, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
    expect((await listPackages(store)).map((p) => p.manifestDigest)).toEqual([img.manifestDesc.digest]);
  });

  it('returns an installed package without fetching anything', async () => {
    const img = await published();
    const first = await install(img);
    await rm(join(work, 'source'), { recursive: true });
    expect(await install(img)).toEqual(first);
  });

  it('reads layers already in the store from the store, not the source', async () => {
    const img = await published();
    await install(img);
    // Same layer, different config: a new manifest whose layer the source no longer has.
    const other = buildImage([libEntries()], { name: 'zstd-other' });
    await source.push(other.configDesc, other.configBytes);
    await rm(source.blobPath(img.layers[0]!.desc.digest), { force: true });
    const pkg = await install(other);
    expect(readFileSync(join(pkg.root, 'include/zstd.h'), 'utf8')).toContain('ZSTD_VERSION_MAJOR');
  });

  it('lets prepare add files that land in the package directory', async () => {
    const img = await published();
    const pkg = await install(img, {
      prepare: async (staging: string, p: { dir: string }) => {
        await mkdir(join(staging, 'pkgconfig'));
        await writeFile(join(staging, 'pkgconfig', 'zstd.pc'), `prefix=${p.dir}/root\n`);
      },
    });
    expect(readFileSync(join(pkg.dir, 'pkgconfig', 'zstd.pc'), 'utf8')).toBe(`prefix=${pkg.dir}/root\n`);
    expect(statSync(join(pkg.dir, 'pkgconfig', 'zstd.pc')).mode & 0o777).toBe(0o444);
  });

  it('installs a plain OCI image (non-ocipkg config) with empty metadata', async () => {
    const img = buildImage([[{ path: 'usr/lib/libz.a', body: readFileSync(join(LIBS, 'libz.a')) }]], {
      layerType: OCI_LAYER_TAR_GZIP,
      configType: 'application/vnd.oci.image.config.v1+json',
    });
    await writeImage(source, img);
    const pkg = await install(img);
    expect(pkg.config).toEqual({ layers: {} });
    expect(existsSync(join(pkg.root, 'usr/lib/libz.a'))).toBe(true);
  });

  async function expectNothingInstalled(img: TestImage): Promise<void> {
    expect(await ls(storePaths.packages(store))).toEqual([]);
    expect(await ls(storePaths.tmp(store))).toEqual([]);
    for (const desc of [img.manifestDesc, ...img.layers.map((l) => l.desc)]) {
      expect(existsSync(storePaths.blob(store, desc.digest))).toBe(false);
    }
  }

  it('refuses a layer whose bytes do not match its digest (EINTEGRITY) and keeps nothing', async () => {
    const img = await published();
    const blob = source.blobPath(img.layers[0]!.desc.digest);
    const bytes = readFileSync(blob);
    bytes[bytes.length - 100]! ^= 0xff;
    await rm(blob, { force: true });
    await writeFile(blob, bytes);
    expect(await codeOf(install(img))).toBe('EINTEGRITY');
    await expectNothingInstalled(img);
  });

  it('refuses a truncated layer (EBADSIZE) and keeps nothing', async () => {
    const img = await published();
    const blob = source.blobPath(img.layers[0]!.desc.digest);
    await rm(blob, { force: true });
    await writeFile(blob, img.layers[0]!.bytes.subarray(0, 1000));
    expect(await codeOf(install(img))).toBe('EBADSIZE');
    await expectNothingInstalled(img);
  });

  const hostile: [string, TarEntry][] = [
    ['an absolute path', { path: '/etc/ocipkg-test', body: 'x' }],
    ['a .. component', { path: '../escape', body: 'x' }],
    ['a symlink escaping', { path: 'lib/up', type: 'SymbolicLink', linkpath: '../../../..' }],
    ['a hard link escaping', { path: 'lib/hard', type: 'Link', linkpath: '../../outside' }],
    ['a character device', { path: 'dev/null', type: 'CharacterDevice' }],
  ];
  for (const [what, entry] of hostile) {
    it(`refuses a layer with ${what} (EUNSAFE) and installs nothing`, async () => {
      const img = await published([[...libEntries(), entry]]);
      expect(await codeOf(install(img))).toBe('EUNSAFE');
      await expectNothingInstalled(img);
      expect((await ls(work)).sort()).toEqual(['source', 'store']);
      expect(existsSync('/etc/ocipkg-test')).toBe(false);
    });
  }

  it('refuses a later layer that writes through an earlier layer\'s symlink (EUNSAFE)', async () => {
    // `d -> .` is harmless alone, but `d/up -> ..` resolves to the root's parent through it.
    const img = await published([[{ path: 'd', type: 'SymbolicLink', linkpath: '.' }], [{ path: 'd/up', type: 'SymbolicLink', linkpath: '..' }]]);
    expect(await codeOf(install(img))).toBe('EUNSAFE');
    await expectNothingInstalled(img);
  });

  it('refuses links that escape only once the layers are together (EUNSAFE), in either order', async () => {
    // Each layer alone is fine: `e` dangles inside, `s -> .` stays inside. Together `e` climbs out
    // of the package through s/s/s/../../.. (the kernel follows `s` before applying `..`).
    const climbing: TarEntry = { path: 'lib/libsecret.so', type: 'SymbolicLink', linkpath: 's/s/s/s/../../../..' };
    const loop: TarEntry = { path: 'lib/s', type: 'SymbolicLink', linkpath: '.' };
    for (const layers of [[[...libEntries(), climbing], [loop]], [[...libEntries(), loop], [climbing]]]) {
      const img = await published(layers);
      const err = await install(img).catch((e: Error) => e);
      expect((err as { code?: string }).code, String(err)).toBe('EUNSAFE');
      expect(String(err)).toMatch(/lib\/libsecret\.so" is a symlink that, with the other layers, leads outside the package|lib\/libsecret\.so" is a symlink that leads outside/);
      await expectNothingInstalled(img);
    }
  });

  it('caps layers, entries, bytes and expansion; the environment raises each cap', async () => {
    const many = await published(Array.from({ length: 65 }, (_, i) => [{ path: `f${i}`, body: 'x' }]));
    expect(await codeOf(install(many))).toBe('ETOOLARGE');
    process.env.OCIPKG_MAX_LAYERS = '100';
    try {
      expect((await install(many)).manifestDigest).toBe(many.manifestDesc.digest);
    } finally {
      delete process.env.OCIPKG_MAX_LAYERS;
    }
    const entries = await published([Array.from({ length: 30 }, (_, i) => ({ path: `e${i}`, body: '' }))]);
    process.env.OCIPKG_MAX_ENTRIES = '20';
    try {
      expect(await codeOf(install(entries))).toBe('ETOOLARGE');
      expect(readInstalledPackage(store, entries.manifestDesc.digest)).toBeUndefined();
    } finally {
      delete process.env.OCIPKG_MAX_ENTRIES;
    }
    const big = await published([[{ path: 'zeros', body: Buffer.alloc(1 << 20) }]]);
    process.env.OCIPKG_MAX_PACKAGE_BYTES = String(1 << 19);
    try {
      expect(await codeOf(install(big))).toBe('ETOOLARGE');
    } finally {
      delete process.env.OCIPKG_MAX_PACKAGE_BYTES;
    }
    process.env.OCIPKG_MAX_LAYERS = 'lots';
    try {
      expect(await codeOf(install(big))).toBe('EUSAGE');
    } finally {
      delete process.env.OCIPKG_MAX_LAYERS;
    }
  });

  it('refuses a gzip bomb by its expansion ratio before it fills the disk', async () => {
    // 200 MiB of zeros gzip to ~200 KiB, a ratio of ~1000: refused once 64 MiB are out.
    const bomb = await published([[{ path: 'bomb', body: Buffer.alloc(200 << 20) }]]);
    const err = await install(bomb).catch((e: Error) => e);
    expect((err as { code?: string }).code, String(err)).toBe('ETOOLARGE');
    expect(String(err)).toContain('OCIPKG_MAX_EXPANSION');
    await expectNothingInstalled(bomb);
  });

  it('refuses an index, an unknown layer type and a manifest without layers (EMANIFEST)', async () => {
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }));
    expect(await codeOf(installPackage(store, source, descriptorFor(OCI_INDEX, index), index))).toBe('EMANIFEST');
    const odd = buildImage([libEntries()], { layerType: 'application/vnd.example.squashfs' });
    await writeImage(source, odd);
    expect(await codeOf(install(odd))).toBe('EMANIFEST');
    const empty = buildImage([]);
    expect(await codeOf(install(empty))).toBe('EMANIFEST');
    expect(await ls(storePaths.packages(store))).toEqual([]);
  });

  it('refuses manifest bytes that do not match the descriptor (EINTEGRITY)', async () => {
    const img = await published();
    const forged = Buffer.from(img.manifestBytes.toString().replace('"schemaVersion":2', '"schemaVersion":3'));
    expect(await codeOf(installPackage(store, source, img.manifestDesc, forged))).toBe('EINTEGRITY');
    expect(await ls(storePaths.packages(store))).toEqual([]);
  });

  it('survives 8 concurrent installs of one package: all succeed, one intact copy, empty tmp/', async () => {
    const img = await published([libEntries(), [{ path: 'lib/libsqlite3.a', body: readFileSync(join(LIBS, 'libsqlite3.a')) }]]);
    const results = await Promise.all(Array.from({ length: 8 }, () => install(img)));
    for (const pkg of results) expect(pkg.dir).toBe(results[0]!.dir);
    expect(await ls(storePaths.packages(store))).toHaveLength(1);
    expect(await ls(storePaths.tmp(store))).toEqual([]);
    expect(sha256(readFileSync(join(results[0]!.root, 'lib/libsqlite3.a')))).toBe(sha256(readFileSync(join(LIBS, 'libsqlite3.a'))));
    expect((await ls(join(store, 'blobs', 'sha256'))).length).toBe(4);
  });
});

describe('refs index', () => {
  const record = (reference: string, digest: string, manifests: Record<string, string>): RefRecord => ({
    reference,
    digest,
    mediaType: OCI_INDEX,
    manifests,
    updated: new Date(0).toISOString(),
  });
  const d = (n: number) => `sha256:${String(n).repeat(64)}`;

  it('round-trips a record keyed by registry (with port), repository and tag', () => {
    const ref = parseReference('127.0.0.1:5000/acme/zstd:1.0');
    expect(readRef(store, ref)).toBeUndefined();
    writeRef(store, record('127.0.0.1:5000/acme/zstd:1.0', d(1), { 'x86_64-unknown-linux-gnu': d(2) }));
    expect(readRef(store, ref)).toMatchObject({ reference: '127.0.0.1:5000/acme/zstd:1.0', digest: d(1), manifests: { 'x86_64-unknown-linux-gnu': d(2) } });
    expect(existsSync(join(store, 'refs', '127.0.0.1%3A5000', 'acme%2Fzstd', '1.0.json'))).toBe(true);
    expect(readRef(store, parseReference('127.0.0.1:5000/acme/zstd:2.0'))).toBeUndefined();
    expect(readRef(store, parseReference('127.0.0.1:5001/acme/zstd:1.0'))).toBeUndefined();
  });

  it('merges targets while the tag points at the same digest and starts over when it moves', () => {
    const ref = parseReference('ghcr.io/acme/zstd:1.0');
    writeRef(store, record('ghcr.io/acme/zstd:1.0', d(1), { 'x86_64-unknown-linux-gnu': d(2) }));
    writeRef(store, record('ghcr.io/acme/zstd:1.0', d(1), { 'aarch64-apple-darwin': d(3) }));
    expect(readRef(store, ref)?.manifests).toEqual({ 'x86_64-unknown-linux-gnu': d(2), 'aarch64-apple-darwin': d(3) });
    writeRef(store, record('ghcr.io/acme/zstd:1.0', d(4), { 'aarch64-apple-darwin': d(5) }));
    expect(readRef(store, ref)).toMatchObject({ digest: d(4), manifests: { 'aarch64-apple-darwin': d(5) } });
  });

  it('keys oci: layouts by absolute path, digest references apart from tags, and lists and removes records', () => {
    const rel = join('relative', 'layout');
    writeRef(store, record(`oci:${rel}:v1`, d(1), { '': d(1) }));
    const absolute = parseReference(`oci:${join(process.cwd(), rel)}:v1`);
    expect(readRef(store, absolute)?.reference).toBe(`oci:${join(process.cwd(), rel)}:v1`);
    writeRef(store, record(`docker.io/acme/zstd@${d(6)}`, d(6), { '': d(7) }));
    expect(readRef(store, parseReference(`acme/zstd@${d(6)}`))?.manifests).toEqual({ '': d(7) });
    expect(readRef(store, parseReference('acme/zstd'))).toBeUndefined();

    expect(listRefs(store).map((r) => r.reference).sort()).toEqual([`docker.io/acme/zstd@${d(6)}`, `oci:${join(process.cwd(), rel)}:v1`]);
    removeRef(store, absolute);
    expect(readRef(store, absolute)).toBeUndefined();
    expect(listRefs(store)).toHaveLength(1);
  });

  it('keeps every repository the grammar allows apart: no name is another one\'s record or directory', () => {
    // `x.json/y` once made `x.json` a directory that listing took for a record (EISDIR forever after);
    // `acme/zstd` tag `c.json` and repository `acme/zstd/c.json` once shared a path.
    const names = ['ghcr.io/x.json/y:1', 'ghcr.io/x.json:1', 'ghcr.io/acme/zstd:c.json', 'ghcr.io/acme/zstd/c.json:1', 'ghcr.io/acme/zstd/c.json/1.json:1', 'ghcr.io/acme/zstd:1'];
    names.forEach((name, i) => writeRef(store, record(name, d(i + 1), { '': d(i + 1) })));
    for (const [i, name] of names.entries()) expect(readRef(store, parseReference(name))?.digest, name).toBe(d(i + 1));
    expect(listRefs(store).map((r) => r.reference).sort()).toEqual([...names].sort());
  });

  it('treats an unreadable record as absent', async () => {
    const ref = parseReference('ghcr.io/acme/zstd:1.0');
    writeRef(store, record('ghcr.io/acme/zstd:1.0', d(1), {}));
    await writeFile(join(store, 'refs', 'ghcr.io', 'acme%2Fzstd', '1.0.json'), '{ broken');
    expect(readRef(store, ref)).toBeUndefined();
    expect(listRefs(store)).toEqual([]);
  });
});

describe('store index.json', () => {
  it('lists installed manifests by reference so skopeo can read the store', async () => {
    const img = await published();
    await install(img, { triple: 'x86_64-unknown-linux-gnu' });
    writeRef(store, {
      reference: '127.0.0.1:5000/acme/zstd:1.0',
      digest: img.manifestDesc.digest,
      mediaType: img.manifestDesc.mediaType,
      manifests: { 'x86_64-unknown-linux-gnu': img.manifestDesc.digest },
      updated: new Date().toISOString(),
    });
    writeRef(store, { reference: 'ghcr.io/acme/zstd:latest', digest: img.manifestDesc.digest, mediaType: img.manifestDesc.mediaType, manifests: {}, updated: '' });
    await writeStoreIndex(store);

    const index = JSON.parse(readFileSync(join(store, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
    expect(index.manifests.map((m) => m.annotations)).toEqual([
      { [ANNOTATION_REF_NAME]: '127.0.0.1:5000/acme/zstd:1.0', [ANNOTATION_TARGET]: 'x86_64-unknown-linux-gnu' },
      { [ANNOTATION_REF_NAME]: 'ghcr.io/acme/zstd:latest', [ANNOTATION_TARGET]: 'x86_64-unknown-linux-gnu' },
    ]);
    expect(index.manifests.every((m) => m.digest === img.manifestDesc.digest)).toBe(true);
    const raw = execFileSync('skopeo', ['inspect', '--raw', `oci:${store}:127.0.0.1:5000/acme/zstd:1.0`]);
    expect(sha256(raw)).toBe(img.manifestDesc.digest);
    execFileSync('skopeo', ['copy', '--quiet', `oci:${store}:127.0.0.1:5000/acme/zstd:1.0`, `oci:${join(work, 'out')}:x`]);
  });

  it('is rebuilt from scratch: entries whose blobs are gone are left out', async () => {
    writeRef(store, { reference: 'ghcr.io/acme/gone:1', digest: `sha256:${'a'.repeat(64)}`, mediaType: OCI_INDEX, manifests: {}, updated: '' });
    await writeStoreIndex(store);
    expect(JSON.parse(readFileSync(join(store, 'index.json'), 'utf8')).manifests).toEqual([]);
  });
});

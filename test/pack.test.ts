import { spawnSync } from 'node:child_process';
import { copyFile, lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OCI_MANIFEST, OCIPKG_ARTIFACT, OCIPKG_CONFIG, OCIPKG_LAYER } from '../src/oci/mediatypes.js';
import type { ImageIndex, ImageManifest } from '../src/oci/types.js';
import { compose } from '../src/package/compose.js';
import { parsePackageConfig } from '../src/artifact/config.js';
import { pack } from '../src/package/pack.js';
import { minimalElf } from './helpers/elf.js';

const LIBDIR = '/usr/lib/x86_64-linux-gnu';
const IMAGE = 'ghcr.io/acme/lz4:1.9.4';

let work: string;
let counter = 0;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocipkg-pack-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function fresh(name: string): Promise<string> {
  const dir = join(work, `${name}-${++counter}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

function run(cmd: string, args: string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...(cwd && { cwd }) });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** An install prefix with Debian's liblz4.a and its headers. */
async function lz4Prefix(): Promise<string> {
  const dir = await fresh('lz4');
  await mkdir(join(dir, 'include'), { recursive: true });
  await mkdir(join(dir, 'lib'));
  for (const h of ['lz4.h', 'lz4frame.h', 'lz4hc.h']) await copyFile(join('/usr/include', h), join(dir, 'include', h));
  await copyFile(join(LIBDIR, 'liblz4.a'), join(dir, 'lib', 'liblz4.a'));
  return dir;
}

/** Unpacks an oci-archive with the system tar and reads index, manifest and blobs from it. */
async function openArchive(archive: string) {
  const dir = await fresh('unpacked');
  run('tar', ['-xf', archive, '-C', dir]);
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as ImageIndex;
  const blob = (digest: string) => readFile(join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length)));
  const manifestBytes = await blob(index.manifests[0]!.digest);
  const manifest = JSON.parse(manifestBytes.toString('utf8')) as ImageManifest;
  return { dir, index, manifest, manifestBytes, blob, layout: await readFile(join(dir, 'oci-layout'), 'utf8') };
}

describe('pack', () => {
  it('gives the same manifest digest and the same archive bytes for the same directory, whatever the file times', async () => {
    const a = await lz4Prefix();
    const b = await lz4Prefix();
    await utimes(join(b, 'lib', 'liblz4.a'), new Date('2001-02-03'), new Date('2001-02-03'));
    const r1 = await pack(a, join(work, 'a.tar'), { image: IMAGE });
    const r2 = await pack(b, join(work, 'b.tar'), { image: IMAGE });
    const r3 = await pack(a, join(work, 'c.tar'), { image: IMAGE });
    expect(r2.manifestDigest).toBe(r1.manifestDigest);
    expect(r3.manifestDigest).toBe(r1.manifestDigest);
    expect((await readFile(join(work, 'b.tar'))).equals(await readFile(join(work, 'a.tar')))).toBe(true);
  });

  it('writes an ocipkg artifact manifest whose config has the Rust ocipkg `layers` map and the `package` metadata', async () => {
    const dir = await lz4Prefix();
    const out = join(work, 'lz4.tar');
    const result = await pack(dir, out, { image: IMAGE, version: '1.9.4', licenses: 'BSD-2-Clause', description: 'LZ4', source: 'https://github.com/lz4/lz4' });
    const archive = await openArchive(out);
    expect(JSON.parse(archive.layout)).toEqual({ imageLayoutVersion: '1.0.0' });
    expect(archive.index.manifests).toHaveLength(1);
    expect(archive.index.manifests[0]).toMatchObject({ mediaType: OCI_MANIFEST, digest: result.manifestDigest, annotations: { 'org.opencontainers.image.ref.name': IMAGE } });
    const m = archive.manifest;
    expect(m).toMatchObject({ schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: OCIPKG_ARTIFACT, config: { mediaType: OCIPKG_CONFIG } });
    expect(m.layers).toHaveLength(1);
    expect(m.layers[0]!.mediaType).toBe(OCIPKG_LAYER);
    expect(m.annotations).toEqual({
      'org.opencontainers.image.version': '1.9.4',
      'org.opencontainers.image.licenses': 'BSD-2-Clause',
      'org.opencontainers.image.description': 'LZ4',
      'org.opencontainers.image.source': 'https://github.com/lz4/lz4',
    });
    const raw = JSON.parse((await archive.blob(m.config.digest)).toString('utf8'));
    // Exactly what the Rust ocipkg deserialises: layer digest -> list of paths.
    expect(raw.layers).toEqual({ [m.layers[0]!.digest]: ['include/lz4.h', 'include/lz4frame.h', 'include/lz4hc.h', 'lib/liblz4.a'] });
    const config = parsePackageConfig(m.config, await archive.blob(m.config.digest), 'test')!;
    expect(config.package).toMatchObject({
      name: 'lz4',
      version: '1.9.4',
      target: 'x86_64-unknown-linux-gnu',
      libraries: [{ name: 'lz4', kind: 'static', file: 'lib/liblz4.a' }],
      includeDirs: ['include'],
    });
    // The layer holds what the config says, as a gzip tar with a fixed header.
    const layer = await archive.blob(m.layers[0]!.digest);
    expect(layer.readUInt32LE(4)).toBe(0); // gzip mtime
    expect(layer[9]).toBe(255); // gzip OS byte
    const listing = run('tar', ['-tvzf', join(archive.dir, 'blobs', 'sha256', m.layers[0]!.digest.slice(7)), '--numeric-owner']).trim().split('\n');
    expect(listing.map((l) => l.split(/\s+/).at(-1))).toEqual(['include/', 'include/lz4.h', 'include/lz4frame.h', 'include/lz4hc.h', 'lib/', 'lib/liblz4.a']);
    for (const line of listing) expect(line).toMatch(/^\S+ 0\/0 +\d+ 1970-01-01 00:00 /);
  });

  it('is read back by skopeo: inspect --raw returns our manifest and copy to an OCI layout succeeds', async () => {
    const dir = await lz4Prefix();
    const out = join(work, 'skopeo.tar');
    const result = await pack(dir, out, { image: IMAGE });
    const archive = await openArchive(out);
    const raw = run('skopeo', ['inspect', '--raw', `oci-archive:${out}`]);
    expect(Buffer.from(raw).equals(archive.manifestBytes)).toBe(true);
    const layoutDir = join(await fresh('layout'), 'oci');
    run('skopeo', ['--insecure-policy', 'copy', `oci-archive:${out}`, `oci:${layoutDir}:v1`]);
    const copied = JSON.parse(await readFile(join(layoutDir, 'index.json'), 'utf8')) as ImageIndex;
    expect(copied.manifests[0]!.digest).toBe(result.manifestDigest);
    await expect(lstat(join(layoutDir, 'blobs', 'sha256', result.layer.digest.slice(7)))).resolves.toBeTruthy();
  });

  it('refuses a directory whose libraries mix architectures (EINPUT) unless a target is given', async () => {
    const dir = await lz4Prefix();
    // A static library holding one aarch64 object: an ELF header is all the detection reads.
    const obj = join(dir, 'arm64.o');
    await writeFile(obj, minimalElf(183));
    run('ar', ['rcD', join(dir, 'lib', 'libarm.a'), obj]);
    await rm(obj);
    await expect(pack(dir, join(work, 'mixed.tar'), { image: IMAGE })).rejects.toMatchObject({ code: 'EINPUT' });
    const result = await pack(dir, join(work, 'mixed-forced.tar'), { image: IMAGE, target: 'x86_64-unknown-linux-gnu' });
    expect(result.config.package?.target).toBe('x86_64-unknown-linux-gnu');
  });

  it('stores a shared library under its SONAME with the other names as one-hop relative symlinks', async () => {
    const dir = await fresh('zstd');
    await mkdir(join(dir, 'lib'));
    await copyFile(join(LIBDIR, 'libzstd.so.1.5.4'), join(dir, 'lib', 'libzstd.so.1.5.4'));
    await symlink('libzstd.so.1.5.4', join(dir, 'lib', 'libzstd.so.1'));
    await symlink('libzstd.so.1', join(dir, 'lib', 'libzstd.so'));
    const out = join(work, 'zstd.tar');
    const result = await pack(dir, out, { image: 'ghcr.io/acme/zstd:1.5.4' });
    expect(result.config.package?.libraries).toEqual([{ name: 'zstd', kind: 'shared', file: 'lib/libzstd.so.1', soname: 'libzstd.so.1' }]);
    expect(result.config.package?.target).toBe('x86_64-unknown-linux-gnu');
    const archive = await openArchive(out);
    const root = await fresh('zstd-root');
    run('tar', ['-xzf', join(archive.dir, 'blobs', 'sha256', result.layer.digest.slice(7)), '-C', root]);
    expect((await lstat(join(root, 'lib', 'libzstd.so.1'))).isFile()).toBe(true);
    expect(await readlink(join(root, 'lib', 'libzstd.so'))).toBe('libzstd.so.1');
    expect(await readlink(join(root, 'lib', 'libzstd.so.1.5.4'))).toBe('libzstd.so.1');
    // The package links: -L lib -lzstd finds libzstd.so, which leads to the SONAME file.
    const src = join(root, 'use.c');
    await writeFile(src, 'unsigned ZSTD_versionNumber(void);\nunsigned v(void) { return ZSTD_versionNumber(); }\n');
    run('gcc', ['-shared', '-fPIC', '-o', join(root, 'use.so'), src, `-L${join(root, 'lib')}`, '-lzstd']);
  });

  it('warns about static archives that cannot go into a shared object, naming the archive, and not about PIC ones', async () => {
    const dir = await lz4Prefix();
    await copyFile(join(LIBDIR, 'libz.a'), join(dir, 'lib', 'libz.a'));
    const warnings: string[] = [];
    await pack(dir, join(work, 'nonpic.tar'), { image: IMAGE, warn: (m) => warnings.push(m) });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('lib/libz.a');
    expect(warnings[0]).not.toContain('liblz4');
  });

  it('packs a directory without libraries, with a warning', async () => {
    const dir = await fresh('headers');
    await writeFile(join(dir, 'only.h'), '#define ONLY 1\n');
    const warnings: string[] = [];
    const result = await pack(dir, join(work, 'headers.tar'), { image: IMAGE, warn: (m) => warnings.push(m) });
    expect(warnings).toHaveLength(1);
    expect(result.config.package).toMatchObject({ libraries: [], includeDirs: ['.'] });
    expect(result.config.package?.target).toBeUndefined();
  });

  it('keeps paths longer than ustar holds intact (PAX), as system tar reads them', async () => {
    const dir = await lz4Prefix();
    const deep = join('include', 'a'.repeat(60), 'b'.repeat(60));
    await mkdir(join(dir, deep), { recursive: true });
    await writeFile(join(dir, deep, `${'c'.repeat(120)}.h`), '');
    const result = await pack(dir, join(work, 'long.tar'), { image: IMAGE });
    const archive = await openArchive(join(work, 'long.tar'));
    const listing = run('tar', ['-tzf', join(archive.dir, 'blobs', 'sha256', result.layer.digest.slice(7))]).trim().split('\n');
    const longPath = `${deep}/${'c'.repeat(120)}.h`;
    expect(listing).toContain(longPath);
    expect(Object.values(result.config.layers)[0]).toContain(longPath);
  });

  it('refuses a symlink that leads outside the directory (EUNSAFE)', async () => {
    const dir = await lz4Prefix();
    await symlink(join(LIBDIR, 'libz.so.1.2.13'), join(dir, 'lib', 'libz.so'));
    await expect(pack(dir, join(work, 'escape.tar'), { image: IMAGE })).rejects.toMatchObject({ code: 'EUNSAFE' });
    await expect(lstat(join(work, 'escape.tar'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('takes created and the entry times from SOURCE_DATE_EPOCH', async () => {
    const dir = await lz4Prefix();
    const before = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = '1700000000';
    try {
      const out = join(work, 'epoch.tar');
      const result = await pack(dir, out, { image: IMAGE });
      expect(result.manifest.annotations).toEqual({ 'org.opencontainers.image.created': '2023-11-14T22:13:20Z' });
      const archive = await openArchive(out);
      const listing = run('tar', ['-tvzf', join(archive.dir, 'blobs', 'sha256', result.layer.digest.slice(7)), '--utc']);
      expect(listing).toContain('2023-11-14 22:13');
    } finally {
      if (before === undefined) delete process.env.SOURCE_DATE_EPOCH;
      else process.env.SOURCE_DATE_EPOCH = before;
    }
  });
});

describe('compose', () => {
  it('places the given files at the layer root by base name, in the same artifact format', async () => {
    const out = join(work, 'composed.tar');
    const result = await compose([join(LIBDIR, 'liblz4.a'), '/usr/include/lz4.h'], out, { image: IMAGE });
    expect(Object.values(result.config.layers)).toEqual([['liblz4.a', 'lz4.h']]);
    expect(result.config.package).toMatchObject({ libraries: [{ name: 'lz4', kind: 'static', file: 'liblz4.a' }], includeDirs: ['.'], target: 'x86_64-unknown-linux-gnu' });
    const archive = await openArchive(out);
    expect(archive.manifest.artifactType).toBe(OCIPKG_ARTIFACT);
    expect(run('skopeo', ['inspect', '--raw', `oci-archive:${out}`])).toBe(archive.manifestBytes.toString('utf8'));
  });

  it('refuses two files with the same base name (EINPUT)', async () => {
    const dir = await fresh('dup');
    await writeFile(join(dir, 'lz4.h'), '');
    await expect(compose(['/usr/include/lz4.h', join(dir, 'lz4.h')], join(work, 'dup.tar'), { image: IMAGE })).rejects.toMatchObject({ code: 'EINPUT' });
  });
});

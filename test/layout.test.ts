import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openArchive } from '../src/layout/archive.js';
import { LayoutDirectory } from '../src/layout/directory.js';
import { descriptorFor, sha256 } from '../src/oci/verify.js';
import { readAll } from '../src/oci/manifest.js';
import { ANNOTATION_REF_NAME, OCI_LAYER_TAR_GZIP } from '../src/oci/mediatypes.js';
import { buildImage, tarBytes, writeImage } from './helpers/layers.js';
import { codeOf } from './helpers/errors.js';

let work: string;

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocipkg-layout-'));
});

afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});


const image = () => buildImage([[{ path: 'lib/libdemo.a', body: readFileSync('/usr/lib/x86_64-linux-gnu/libz.a') }]]);

describe('LayoutDirectory', () => {
  it('creates the layout on first push, and push/tag/resolve/fetch round-trip', async () => {
    const dir = join(work, 'layout');
    const layout = new LayoutDirectory(dir);
    const img = image();
    await writeImage(layout, img, '1.0');

    expect(JSON.parse(readFileSync(join(dir, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
    const resolved = await layout.resolve('1.0');
    expect(resolved.digest).toBe(img.manifestDesc.digest);
    expect(resolved.annotations?.[ANNOTATION_REF_NAME]).toBe('1.0');
    expect(await layout.resolve(img.manifestDesc.digest)).toMatchObject({ digest: img.manifestDesc.digest, size: img.manifestDesc.size });
    expect((await layout.resolve()).digest).toBe(img.manifestDesc.digest);

    const layer = img.layers[0]!;
    expect(sha256(await readAll(await layout.fetch(layer.desc), 1 << 24, 'layer'))).toBe(layer.desc.digest);
    expect(await layout.exists(layer.desc)).toBe(true);
    expect(statSync(layout.blobPath(layer.desc.digest)).mode & 0o777).toBe(0o444);
    expect(await layout.listRefs()).toEqual([{ name: '1.0', descriptor: resolved }]);
    // Nothing but the layout itself is left behind by the pushes.
    expect((await readdir(dir)).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
  });

  it('retagging replaces the entry with the same ref.name', async () => {
    const layout = new LayoutDirectory(join(work, 'layout'));
    const a = buildImage([[{ path: 'a', body: 'a' }]]);
    const b = buildImage([[{ path: 'b', body: 'b' }]]);
    await writeImage(layout, a, 'stable');
    await writeImage(layout, b, 'stable');
    await layout.tag(a.manifestDesc, 'old');
    expect((await layout.resolve('stable')).digest).toBe(b.manifestDesc.digest);
    expect((await layout.readIndex()).manifests).toHaveLength(2);
    expect(await codeOf(layout.resolve())).toBe('ENOTFOUND');
    expect(await codeOf(layout.resolve('missing'))).toBe('ENOTFOUND');
  });

  it('resolves a tag recorded as a full reference ending in :TAG', async () => {
    const layout = new LayoutDirectory(join(work, 'layout'));
    const img = image();
    await writeImage(layout, img, 'ghcr.io/acme/demo:2.1');
    expect((await layout.resolve('2.1')).digest).toBe(img.manifestDesc.digest);
  });

  it('refuses content that does not match its descriptor and stores nothing', async () => {
    const layout = new LayoutDirectory(join(work, 'layout'));
    const bytes = Buffer.from('the real content');
    const desc = descriptorFor(OCI_LAYER_TAR_GZIP, bytes);
    expect(await codeOf(layout.push(desc, async () => Readable.from([Buffer.from('the fake content')])))).toBe('EINTEGRITY');
    expect(await codeOf(layout.push(desc, async () => Readable.from([bytes.subarray(0, 5)])))).toBe('EBADSIZE');
    expect(await codeOf(layout.push(desc, Buffer.from('x')))).toBe('EBADSIZE');
    expect(await layout.exists(desc)).toBe(false);
    expect(await readdir(join(work, 'layout', 'blobs', 'sha256'))).toEqual([]);
    expect((await readdir(join(work, 'layout'))).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
  });

  it('treats a push that finds the same blob already in place as success (lost race)', async () => {
    const layout = new LayoutDirectory(join(work, 'layout'));
    const bytes = Buffer.alloc(256 * 1024, 7);
    const desc = descriptorFor(OCI_LAYER_TAR_GZIP, bytes);
    await Promise.all(Array.from({ length: 8 }, () => layout.push(desc, async () => Readable.from([bytes]))));
    await layout.push(desc, bytes);
    const path = layout.blobPath(desc.digest);
    expect(sha256(readFileSync(path))).toBe(desc.digest);
    expect(statSync(path).mode & 0o777).toBe(0o444);
    expect(await readdir(join(work, 'layout', 'blobs', 'sha256'))).toHaveLength(1);
  });

  it('reports a directory without index.json as EINPUT and a missing blob as ENOTFOUND', async () => {
    expect(await codeOf(new LayoutDirectory(work).resolve('x'))).toBe('EINPUT');
    const layout = new LayoutDirectory(join(work, 'layout'));
    await layout.ensureLayout();
    expect(await codeOf(layout.fetch(descriptorFor('x', Buffer.from('nope'))))).toBe('ENOTFOUND');
  });
});

describe('skopeo interop', () => {
  it('skopeo reads a layout LayoutDirectory wrote', async () => {
    const dir = join(work, 'ours');
    const img = image();
    await writeImage(new LayoutDirectory(dir), img, 'v1');
    const raw = execFileSync('skopeo', ['inspect', '--raw', `oci:${dir}:v1`]);
    expect(sha256(raw)).toBe(img.manifestDesc.digest);
    // A full copy makes skopeo read and check every blob.
    execFileSync('skopeo', ['copy', '--quiet', `oci:${dir}:v1`, `oci:${join(work, 'copy')}:v1`]);
  });

  it('reads a layout skopeo wrote', async () => {
    const src = join(work, 'src');
    const img = image();
    await writeImage(new LayoutDirectory(src), img, 'v1');
    const theirs = join(work, 'theirs');
    execFileSync('skopeo', ['copy', '--quiet', `oci:${src}:v1`, `oci:${theirs}:v2`]);

    const layout = new LayoutDirectory(theirs);
    const desc = await layout.resolve('v2');
    const manifest = JSON.parse((await readAll(await layout.fetch(desc), 1 << 20, 'manifest')).toString()) as { layers: { digest: string }[] };
    expect(manifest.layers.map((l) => l.digest)).toEqual(img.layers.map((l) => l.desc.digest));
    expect(sha256(await readAll(await layout.fetch(img.layers[0]!.desc), 1 << 24, 'layer'))).toBe(img.layers[0]!.desc.digest);
  });
});

describe('openArchive', () => {
  it('serves an oci-archive written by skopeo in place, every blob a byte range of the archive', async () => {
    const src = join(work, 'src');
    const img = image();
    await writeImage(new LayoutDirectory(src), img, 'v1');
    const archive = join(work, 'demo.tar');
    execFileSync('skopeo', ['copy', '--quiet', `oci:${src}:v1`, `oci-archive:${archive}:v1`]);
    const before = await readdir(tmpdir());

    const opened = await openArchive(archive);
    expect(opened.layout.location).toBe(`oci-archive:${archive}`);
    const desc = await opened.layout.resolve('v1');
    expect(desc.digest).toBe(img.manifestDesc.digest);
    expect(await opened.layout.exists(img.layers[0]!.desc)).toBe(true);
    expect(await opened.layout.exists({ ...img.layers[0]!.desc, digest: `sha256:${'0'.repeat(64)}` })).toBe(false);
    expect(sha256(await readAll(await opened.layout.fetch(img.layers[0]!.desc), 1 << 24, 'layer'))).toBe(img.layers[0]!.desc.digest);
    // Nothing was extracted anywhere.
    expect((await readdir(tmpdir())).filter((name) => name.startsWith('ocipkg-archive-') && !before.includes(name))).toEqual([]);
    await opened.close();
  });

  it('serves a gzip-compressed oci-archive from an extracted copy that close removes', async () => {
    const src = join(work, 'src');
    const img = image();
    await writeImage(new LayoutDirectory(src), img, 'v1');
    const archive = join(work, 'demo.tar');
    execFileSync('skopeo', ['copy', '--quiet', `oci:${src}:v1`, `oci-archive:${archive}:v1`]);
    execFileSync('gzip', ['-k', archive]);

    const opened = await openArchive(`${archive}.gz`);
    expect((await opened.layout.resolve('v1')).digest).toBe(img.manifestDesc.digest);
    expect(sha256(await readAll(await opened.layout.fetch(img.layers[0]!.desc), 1 << 24, 'layer'))).toBe(img.layers[0]!.desc.digest);
    const extracted = (opened.layout as LayoutDirectory).dir;
    await opened.close();
    expect(() => statSync(extracted)).toThrow();
  });

  it('reads the names of a tar with pax and GNU long-name headers, and refuses one cut inside an entry', async () => {
    const layout = join(work, 'long');
    const img = image();
    await writeImage(new LayoutDirectory(layout), img, 'v1');
    for (const format of ['pax', 'gnu']) {
      const archive = join(work, `${format}.tar`);
      // Names padded past ustar's 100 characters with `./` (which readers drop): each needs the
      // format's long-name header.
      execFileSync('tar', ['-c', `--format=${format}`, `--transform=s,^,${'./'.repeat(60)},`, '-f', archive, '-C', layout, 'oci-layout', 'index.json', 'blobs']);
      expect(execFileSync('tar', ['-tvf', archive], { encoding: 'utf8' })).toContain(`${'./'.repeat(60)}index.json`);
      const opened = await openArchive(archive);
      expect((await opened.layout.resolve('v1')).digest).toBe(img.manifestDesc.digest);
      expect(sha256(await readAll(await opened.layout.fetch(img.layers[0]!.desc), 1 << 24, 'layer'))).toBe(img.layers[0]!.desc.digest);
    }
    const whole = readFileSync(join(work, 'pax.tar'));
    const cut = join(work, 'cut.tar');
    await writeFile(cut, whole.subarray(0, 512 * 3 + 100));
    expect(await codeOf(openArchive(cut))).toBe('EINPUT');
  });

  it('refuses a missing file, a tar that is not a layout, and a file that is not a tar with EINPUT', async () => {
    expect(await codeOf(openArchive(join(work, 'missing.tar')))).toBe('EINPUT');
    const notLayout = join(work, 'plain.tar');
    await writeFile(notLayout, tarBytes([{ path: 'README', body: 'hello' }]));
    expect(await codeOf(openArchive(notLayout))).toBe('EINPUT');
    const notTar = join(work, 'junk.tar');
    await writeFile(notTar, Buffer.alloc(2048, 0x41));
    expect(await codeOf(openArchive(notTar))).toBe('EINPUT');
  });

  it('refuses an archive with a hostile entry with EUNSAFE', async () => {
    const hostile = join(work, 'hostile.tar');
    await writeFile(hostile, tarBytes([{ path: 'oci-layout', body: '{}' }, { path: '../escape', body: 'x' }]));
    expect(await codeOf(openArchive(hostile))).toBe('EUNSAFE');
  });
});

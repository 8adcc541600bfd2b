import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copy } from '../src/copy.js';
import { isOcipkgError, type OcipkgError } from '../src/errors.js';
import { LayoutDirectory } from '../src/layout/directory.js';
import { RegistryRepository } from '../src/registry/client.js';
import { closeDispatchers } from '../src/registry/http.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { buildImage, writeImage, type TestImage } from './helpers/layers.js';
import { freePort, startRegistry, type TestRegistry } from './helpers/registry.js';

let registry: TestRegistry;
let work: string;
let image: TestImage;
let counter = 0;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocipkg-copy-'));
  // A registry that is down fails after its retries; they need not take seconds here.
  process.env.OCIPKG_RETRY_BASE_MS = '5';
  registry = await startRegistry();
  image = buildImage([[{ path: 'lib/libz.a', body: readFileSync('/usr/lib/x86_64-linux-gnu/libz.a') }]]);
});

afterAll(async () => {
  delete process.env.OCIPKG_RETRY_BASE_MS;
  await closeDispatchers();
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

/** A fresh layout holding `image` under the tag `1`. */
async function sourceLayout(): Promise<LayoutDirectory> {
  const layout = new LayoutDirectory(join(work, `source-${++counter}`));
  await writeImage(layout, image, '1');
  return layout;
}

async function failure(promise: Promise<unknown>): Promise<OcipkgError> {
  try {
    await promise;
  } catch (err) {
    if (isOcipkgError(err)) return err;
    throw err;
  }
  throw new Error('expected the copy to fail');
}

/** Nothing listens there once the port is found free. */
async function downRegistry(): Promise<string> {
  return `127.0.0.1:${await freePort()}`;
}

describe('a copy to a registry', () => {
  it('asks once per blob whether the registry has it, and puts the manifest once, under its tag', async () => {
    // The proxy forwards everything and records each request.
    const proxy = await startFaultProxy(registry.url);
    try {
      const source = await sourceLayout();
      const blobs = [image.configDesc, ...image.layers.map((l) => l.desc)].map((d) => d.digest);
      const sent = () => proxy.requests.filter((r) => r.path.startsWith('/v2/acme/once/')).map((r) => `${r.method} ${r.path.replace(/^\/v2\/acme\/once\//, '').replace(/\?.*$/, '')}`);
      const dst = new RegistryRepository(proxy.host, 'acme/once');
      await copy(source, '1', dst, '1');
      const first = sent();
      for (const digest of blobs) expect(first.filter((r) => r === `HEAD blobs/${digest}`)).toHaveLength(1);
      expect(first.filter((r) => r.startsWith('POST blobs/uploads'))).toHaveLength(blobs.length);
      expect(first.filter((r) => r.startsWith('PUT manifests/') || r.startsWith('HEAD manifests/'))).toEqual(['PUT manifests/1']);

      // Again: every blob is there, so nothing is opened or uploaded; the tag is put again.
      proxy.reset();
      await copy(source, '1', new RegistryRepository(proxy.host, 'acme/once'), '1');
      expect(sent().sort()).toEqual([...blobs.map((d) => `HEAD blobs/${d}`), 'PUT manifests/1'].sort());
      expect((await dst.resolve('1')).digest).toBe(image.manifestDesc.digest);
    } finally {
      await proxy.close();
    }
  });
});

describe('a copy that fails names the side that failed', () => {
  it('a layout destination that cannot be written: EIO, the destination and the digest', async () => {
    const dir = join(work, 'blocked');
    // Refused to root as well: a file where the layout's blobs/sha256 directory belongs.
    await mkdir(join(dir, 'blobs'), { recursive: true });
    await writeFile(join(dir, 'blobs', 'sha256'), '');
    const err = await failure(copy(await sourceLayout(), '1', new LayoutDirectory(dir), '1'));
    expect(err.code).toBe('EIO');
    expect(err.message).toMatch(new RegExp(`^copying sha256:[a-f0-9]{64} \\(.+\\) failed at the destination oci:${dir}: EEXIST`));
    expect([image.configDesc.digest, image.layers[0]!.desc.digest].some((d) => err.message.includes(d))).toBe(true);
    expect((err.cause as NodeJS.ErrnoException).code).toBe('EEXIST');
  });

  it('a registry destination that is down keeps its code and names the destination', async () => {
    const host = await downRegistry();
    const err = await failure(copy(await sourceLayout(), '1', new RegistryRepository(host, 'acme/down'), '1'));
    expect(err.code).toBe('EUNREACHABLE');
    expect(err.message).toMatch(new RegExp(`^copying sha256:[a-f0-9]{64} \\(.+\\) failed at the destination ${host}/acme/down: cannot reach`));
    expect(isOcipkgError(err.cause, 'EUNREACHABLE')).toBe(true);
  });

  it('a registry source that is down: resolving the reference fails at the source', async () => {
    const host = await downRegistry();
    const err = await failure(copy(new RegistryRepository(host, 'acme/down'), '1', new LayoutDirectory(join(work, 'unused')), '1'));
    expect(err.code).toBe('EUNREACHABLE');
    expect(err.message).toMatch(new RegExp(`^resolving 1 failed at the source ${host}/acme/down: cannot reach`));
  });

  it('a blob missing from a source layout: ENOTFOUND, the source and the digest', async () => {
    const src = await sourceLayout();
    const layer = image.layers[0]!.desc.digest;
    await unlink(src.blobPath(layer));
    const err = await failure(copy(src, '1', new LayoutDirectory(join(work, `dest-${++counter}`)), '1'));
    expect(err.code).toBe('ENOTFOUND');
    expect(err.message.startsWith(`copying ${layer} (${image.layers[0]!.desc.mediaType}) failed at the source ${src.location}: `)).toBe(true);
  });

  // The bad bytes reach the destination before verification fails: the failure is still the source's.
  for (const dest of ['layout', 'registry'] as const) {
    it(`a source blob whose bytes are wrong, into a ${dest}: EINTEGRITY at the source`, async () => {
      const src = await sourceLayout();
      const layer = image.layers[0]!;
      const wrong = Buffer.from(layer.bytes);
      wrong[wrong.length - 1] ^= 0xff;
      await writeFile(src.blobPath(layer.desc.digest), wrong);
      const dst = dest === 'layout' ? new LayoutDirectory(join(work, `dest-${++counter}`)) : new RegistryRepository(registry.host, `acme/wrong-${++counter}`);
      const err = await failure(copy(src, '1', dst, '1'));
      expect(err.code).toBe('EINTEGRITY');
      expect(err.message.startsWith(`copying ${layer.desc.digest} (${layer.desc.mediaType}) failed at the source ${src.location}: `), err.message).toBe(true);
      expect(await dst.exists(layer.desc)).toBe(false);
    });
  }
});

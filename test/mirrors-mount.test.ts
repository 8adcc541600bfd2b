import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeDispatchers } from '../src/registry/http.js';
import { ocipkg, tempDir, type RunResult } from './helpers/cli.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { debianPrefix } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { startTokenServer, type TokenServer } from './helpers/token-server.js';

/**
 * Cross-repository mounts on push, through the CLI, against real distribution registries (behind a
 * proxy that records what is asked): a blob another repository of the registry holds is mounted,
 * not uploaded, whether the record of where it lives came from an earlier push in another process
 * or from the manifest `copy` just read; token auth gets `pull` on the source and `pull,push` on the
 * destination; a record gone stale ends in an ordinary upload.
 */
const USER = 'publisher';
const PASSWORD = 'mount-test-secret';

let work: string;
let archive: string;
let layer: string;

function ok(result: RunResult): string {
  expect(result.code, result.stderr).toBe(0);
  return result.stdout;
}

/** Blob uploads (the PUT that ends an upload session) and mounts asked for, by the proxy's record. */
const uploads = (proxy: FaultProxy) => proxy.requests.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/'));
const mounts = (proxy: FaultProxy, digest: string) => proxy.requests.filter((r) => r.method === 'POST' && r.path.includes(`mount=${encodeURIComponent(digest)}`));

beforeAll(async () => {
  work = await tempDir('mount');
  const prefix = await debianPrefix(join(work, 'prefix'), 'zstd', ['zstd.h']);
  archive = join(work, 'zstd.tar');
  ok(await ocipkg(['pack', prefix, archive, '-t', 'example.invalid/acme/zstd:1'], { OCIPKG_DATA_DIR: join(work, 'pack-store') }));
  const inspected = JSON.parse(ok(await ocipkg(['inspect', archive]))) as { manifest: { layers: { digest: string }[] } };
  layer = inspected.manifest.layers[0]!.digest;
});

afterAll(async () => {
  await closeDispatchers();
  await rm(work, { recursive: true, force: true });
});

describe('a registry without auth', () => {
  let registry: TestRegistry;
  let proxy: FaultProxy;

  beforeAll(async () => {
    registry = await startRegistry();
    proxy = await startFaultProxy(registry.url);
  });

  afterAll(async () => {
    await proxy?.close();
    await registry?.stop();
  });

  it('a second push, in another process, mounts every blob from the repository the first pushed to', async () => {
    const store = join(work, 'store-a');
    ok(await ocipkg(['push', archive, `${proxy.host}/acme/zstd:1`], { OCIPKG_DATA_DIR: store }));
    expect(uploads(proxy).length).toBeGreaterThan(0);
    proxy.reset();
    const result = await ocipkg(['push', archive, `${proxy.host}/other-name/zstd:1`, '--verbose'], { OCIPKG_DATA_DIR: store });
    ok(result);
    expect(uploads(proxy)).toEqual([]);
    expect(mounts(proxy, layer)).toHaveLength(1);
    expect(result.stderr).toContain(`ocipkg: mounted ${layer} into ${proxy.host}/other-name/zstd from acme/zstd`);
    // The pushed image is whole at its new name.
    const got = ok(await ocipkg(['get', `${proxy.host}/other-name/zstd:1`], { OCIPKG_DATA_DIR: join(work, 'store-check') }));
    expect(existsSync(join(got.trim(), 'lib', 'libzstd.a'))).toBe(true);
  });

  it('copy within a registry mounts from the source repository, with an empty record', async () => {
    const store = join(work, 'store-b');
    proxy.reset();
    ok(await ocipkg(['copy', `${proxy.host}/acme/zstd:1`, `${proxy.host}/copied/zstd:1`], { OCIPKG_DATA_DIR: store }));
    expect(uploads(proxy)).toEqual([]);
    expect(mounts(proxy, layer)).toHaveLength(1);
  });

  it('a record gone stale (the source repository lacks the blob) ends in an ordinary upload', async () => {
    const store = join(work, 'store-c');
    const record = join(store, 'blob-locations', 'sha256', layer.slice(7));
    await mkdir(join(store, 'blob-locations', 'sha256'), { recursive: true });
    await writeFile(record, `${proxy.host}/never/pushed\n`);
    proxy.reset();
    ok(await ocipkg(['push', archive, `${proxy.host}/fresh/zstd:1`], { OCIPKG_DATA_DIR: store }));
    expect(mounts(proxy, layer)).toHaveLength(1);
    expect(uploads(proxy).some((r) => r.path.includes(encodeURIComponent(layer)) || r.path.includes(layer))).toBe(true);
    // The record now knows the blob's real home too.
    expect(readFileSync(record, 'utf8').split('\n')).toContain(`${proxy.host}/fresh/zstd`);
  });
});

describe('a token-auth registry', () => {
  let tokens: TokenServer;
  let registry: TestRegistry;
  let proxy: FaultProxy;

  beforeAll(async () => {
    tokens = await startTokenServer({ [USER]: PASSWORD }, { anonymous: false });
    registry = await startRegistry({ extraConfig: tokens.registryConfig });
    proxy = await startFaultProxy(registry.url);
  });

  afterAll(async () => {
    await proxy?.close();
    await registry?.stop();
    await tokens?.stop();
  });

  it('the mount asks for pull on the source and pull,push on the destination, and mounts', async () => {
    const dir = join(work, 'token');
    await mkdir(join(dir, 'config'), { recursive: true });
    await writeFile(join(dir, 'config', 'auth.json'), JSON.stringify({ auths: { [proxy.host]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } }));
    const env = { OCIPKG_DATA_DIR: join(dir, 'store'), OCIPKG_CONFIG_DIR: join(dir, 'config') };
    ok(await ocipkg(['push', archive, `${proxy.host}/acme/zstd:1`], env));
    proxy.reset();
    tokens.requests.length = 0;
    ok(await ocipkg(['push', archive, `${proxy.host}/second/zstd:1`], env));
    expect(uploads(proxy)).toEqual([]);
    expect(mounts(proxy, layer)).toHaveLength(1);
    const scopes = tokens.requests.map((r) => r.scopes.sort());
    expect(scopes).toContainEqual(['repository:acme/zstd:pull', 'repository:second/zstd:pull,push']);
    expect(tokens.requests.every((r) => r.user === USER)).toBe(true);
  });
});

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copy } from '../src/copy.js';
import { LayoutDirectory } from '../src/layout/directory.js';
import { RegistryRepository } from '../src/registry/client.js';
import { closeDispatchers } from '../src/registry/http.js';
import { OCIPKG, ocipkg, tempDir } from './helpers/cli.js';
import { startFaultProxy, type FaultProxy, type FaultRule } from './helpers/fault-proxy.js';
import { buildImage, writeImage, type TestImage } from './helpers/layers.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { expectStoreVerified, storeContents } from './helpers/store-check.js';

/**
 * `ocipkg get` interrupted midway (Ctrl-C, SIGTERM, SIGKILL, a network that gives out) and run
 * again continues the download instead of starting over, through the installed bin, a real
 * registry and a proxy that delivers the layer slowly enough to be interrupted at half.
 */
let registry: TestRegistry;
let proxy: FaultProxy;
let home: string;
let image: TestImage;
let reference: string;
/** 4 MiB of random bytes: the layer's gzip is as large, and nothing else in the image is. */
const LAYER_BODY = randomBytes(4 * 1024 * 1024);

const layer = () => image.layers[0]!;
const hex = () => layer().desc.digest.slice('sha256:'.length);
const partialName = () => `partial-${hex()}`;
const layerGets = () => proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${layer().desc.digest}`));
const env = (store: string) => ({ OCIPKG_DATA_DIR: store, OCIPKG_RETRY_BASE_MS: '5' });

/** Slow enough (32 KiB every 10 ms, ~1.3 s for the layer) that a kill lands mid-download; `sent` counts what went out. */
const SLOW: FaultRule = { method: 'GET', path: /\/blobs\/sha256:/, fault: { kind: 'slow', chunk: 32 * 1024, delayMs: 10 } };
/** Full speed, still counting the bytes sent. */
const COUNTED: FaultRule = { method: 'GET', path: /\/blobs\/sha256:/, fault: { kind: 'slow', chunk: 256 * 1024, delayMs: 0 } };

function arm(...rules: FaultRule[]): void {
  proxy.reset();
  for (const rule of rules) proxy.add(rule);
}

beforeAll(async () => {
  home = await tempDir('resume');
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.url);
  image = buildImage([[{ path: 'lib/libbig.a', body: LAYER_BODY }, { path: 'include/big.h', body: 'int big(void);\n' }]], { name: 'big' });
  const layout = new LayoutDirectory(join(home, 'layout'));
  await writeImage(layout, image, '1');
  await copy(layout, '1', new RegistryRepository(registry.host, 'resume/big'), '1');
  await closeDispatchers();
  reference = `${proxy.host}/resume/big:1`;
});

afterAll(async () => {
  await proxy?.close();
  await registry?.stop();
  await rm(home, { recursive: true, force: true });
});

/** Starts `ocipkg get`, sends `signal` once the proxy has sent half the layer, and resolves to the signal that ended it. */
async function interruptAtHalf(store: string, signal: NodeJS.Signals): Promise<NodeJS.Signals | null> {
  arm(SLOW);
  const child = spawn(process.execPath, [OCIPKG, 'get', reference], { env: { ...process.env, ...env(store) }, stdio: 'ignore' });
  let exited = false;
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, sig) => {
      exited = true;
      resolve({ code, signal: sig });
    }),
  );
  const sent = () => layerGets().reduce((sum, r) => sum + r.sent, 0);
  while (!exited && sent() < layer().desc.size / 2) await new Promise((resolve) => setTimeout(resolve, 2));
  expect(exited, 'the get finished before it could be interrupted').toBe(false);
  child.kill(signal);
  return (await closed).signal;
}

/** The partial download the store keeps: its size, after checking it is the layer's first bytes. */
function partialPrefix(store: string, path = join(store, 'tmp', partialName())): number {
  const bytes = readFileSync(path);
  expect(bytes.length).toBeGreaterThan(0);
  expect(bytes.length).toBeLessThan(layer().desc.size);
  expect(bytes.equals(layer().bytes.subarray(0, bytes.length)), 'the partial is not the start of the layer').toBe(true);
  return bytes.length;
}

/** Runs `ocipkg get` again at full speed and checks the package; returns the layer's requests. */
async function rerun(store: string, ...rules: FaultRule[]) {
  arm(...rules, COUNTED);
  const result = await ocipkg(['get', reference], env(store));
  expect(result.code, result.stderr).toBe(0);
  expect(readFileSync(join(result.stdout.trim(), 'lib', 'libbig.a')).equals(LAYER_BODY)).toBe(true);
  const contents = expectStoreVerified(store);
  expect(contents.tmp).toEqual([]);
  return layerGets();
}

describe('an interrupted get continues where it stopped', () => {
  it.each(['SIGINT', 'SIGTERM'] as const)('%s: the partial layer is kept, the rest of the staging removed; the next get asks only for the rest', async (signal) => {
    const store = await tempDir('store');
    // Ended by the signal, as without ocipkg's cleanup (a shell reports 130 for SIGINT).
    expect(await interruptAtHalf(store, signal)).toBe(signal);
    const contents = storeContents(store);
    expect(contents.tmp).toEqual([partialName()]);
    expect(contents.packages).toEqual([]);
    const have = partialPrefix(store);
    // Half of it, give or take what was in flight.
    expect(have).toBeGreaterThan(layer().desc.size / 4);

    const [get, ...more] = await rerun(store);
    expect(more).toEqual([]);
    expect(get!.headers.range).toBe(`bytes=${have}-`);
    expect(get!.sent).toBe(layer().desc.size - have);
  });

  it('SIGKILL: the next get finds the dead run\'s staging, continues its download and removes the rest', async () => {
    const store = await tempDir('store');
    expect(await interruptAtHalf(store, 'SIGKILL')).toBe('SIGKILL');
    const [staging, ...others] = storeContents(store).tmp;
    expect(others).toEqual([]);
    expect(staging).toMatch(/^install-/);
    const have = partialPrefix(store, join(store, 'tmp', staging!, 'blobs', hex()));

    const [get] = await rerun(store);
    expect(get!.headers.range).toBe(`bytes=${have}-`);
    expect(get!.sent).toBe(layer().desc.size - have);
  });

  it('a server that ignores Range sends the whole blob again; the package is still verified', async () => {
    const store = await tempDir('store');
    await interruptAtHalf(store, 'SIGINT');
    partialPrefix(store);
    const [get] = await rerun(store, { method: 'GET', path: /\/blobs\/sha256:/, fault: { kind: 'no-ranges' } });
    expect(get!.fault).toBe('no-ranges');
  });

  it('a network that gives out keeps what arrived, and the next get continues it', async () => {
    const store = await tempDir('store');
    // Cut at 1 MiB every time, as a server without ranges: no progress after the first cut, so the get gives up.
    arm({ method: 'GET', path: /\/blobs\/sha256:/, fault: { kind: 'cut', after: 1024 * 1024, ignoreRange: true } });
    const failed = await ocipkg(['get', reference], env(store));
    expect(failed.code).toBe(4);
    expect(failed.stderr).toContain('gave up');
    expect(storeContents(store).tmp).toEqual([partialName()]);
    const have = partialPrefix(store);
    const [get] = await rerun(store);
    expect(get!.headers.range).toBe(`bytes=${have}-`);
  });

  it('a partial that already holds the whole blob is verified without asking the registry (which would answer 416)', async () => {
    const store = await tempDir('store');
    await mkdir(join(store, 'tmp'), { recursive: true });
    await writeFile(join(store, 'tmp', partialName()), layer().bytes);
    const gets = await rerun(store);
    expect(gets).toEqual([]);
  });

  it('a partial with wrong bytes is never trusted: the blob fails verification, and the get starts it over', async () => {
    const store = await tempDir('store');
    await mkdir(join(store, 'tmp'), { recursive: true });
    const wrong = Buffer.from(layer().bytes.subarray(0, layer().desc.size / 2));
    wrong[1000]! ^= 0xff;
    await writeFile(join(store, 'tmp', partialName()), wrong);
    const gets = await rerun(store);
    expect(gets.map((r) => r.headers.range)).toEqual([`bytes=${wrong.length}-`, undefined]);
  });

  it('store prune removes a partial older than --min-age', async () => {
    const store = await tempDir('store');
    await interruptAtHalf(store, 'SIGINT');
    expect(existsSync(join(store, 'tmp', partialName()))).toBe(true);
    expect((await ocipkg(['store', 'prune'], env(store))).stdout).toBe('');
    const pruned = await ocipkg(['store', 'prune', '--min-age', '0'], env(store));
    expect(pruned.stdout.trim()).toBe(`removed staging tmp/${partialName()}`);
    expect(readdirSync(join(store, 'tmp'))).toEqual([]);
    expect(statSync(store).isDirectory()).toBe(true);
  });
});

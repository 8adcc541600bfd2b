import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copy } from '../src/copy.js';
import { fetchPackage } from '../src/fetch.js';
import { LayoutDirectory } from '../src/layout/directory.js';
import { sha256 } from '../src/oci/verify.js';
import { parseReference } from '../src/reference.js';
import { RegistryRepository } from '../src/registry/client.js';
import { closeDispatchers } from '../src/registry/http.js';
import { useBlobLocationRecord } from '../src/registry/mount.js';
import { resolvePackage } from '../src/resolve.js';
import { OCIPKG, ocipkg, tempDir } from './helpers/cli.js';
import { codeOf } from './helpers/errors.js';
import { startFaultProxy, type FaultProxy, type FaultRule } from './helpers/fault-proxy.js';
import { buildImage, writeImage, type TarEntry, type TestImage } from './helpers/layers.js';
import { DEBIAN_LIB } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { expectNothingInstalled, expectStoreVerified, storeContents } from './helpers/store-check.js';

/**
 * Transient faults between ocipkg and a real distribution registry, injected by a proxy in front of
 * it: each is either ridden out (retried, resumed) to a verified package, or ends in a one-line
 * error with a stable code and nothing installed. Then `ocipkg get` killed at random points.
 */
const TRIPLE = 'x86_64-unknown-linux-gnu';

let registry: TestRegistry;
let proxy: FaultProxy;
/** A second origin blobs get redirected to, as GHCR and Docker Hub send them to a CDN. */
let cdn: FaultProxy;
let home: string;
let zstd: TestImage;

const file = (path: string) => readFileSync(path);
const libEntries = (lib: string): TarEntry[] => [{ path: `lib/lib${lib}.a`, body: file(join(DEBIAN_LIB, `lib${lib}.a`)) }];

/** Publishes an image through a layout, as `copy` would from an archive. */
async function publish(image: TestImage, repository: string, tag: string): Promise<void> {
  const layout = new LayoutDirectory(join(home, `layout-${repository.replace('/', '-')}`));
  await writeImage(layout, image, tag);
  await copy(layout, tag, new RegistryRepository(registry.host, repository), tag);
}

beforeAll(async () => {
  home = await tempDir('faults');
  // The suite's global setup keeps credentials and stores away from the real home; retries here
  // wait milliseconds, not seconds.
  process.env.OCIPKG_RETRY_BASE_MS = '5';
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.url);
  cdn = await startFaultProxy(registry.url);
  zstd = buildImage([libEntries('zstd'), [{ path: 'include/zstd.h', body: file('/usr/include/zstd.h') }]], { name: 'zstd' });
  await publish(zstd, 'faults/zstd', '1');
});

afterAll(async () => {
  await closeDispatchers();
  await proxy?.close();
  await cdn?.close();
  await registry?.stop();
  await rm(home, { recursive: true, force: true });
});

const big = () => zstd.layers[0]!.desc;
const blobPath = (digest: string) => new RegExp(`/blobs/${digest}$`);
const MANIFEST = /\/manifests\/1$/;

/** A fresh store, and the proxy with these rules only (and the CDN with `atCdn`). */
async function arm(rules: FaultRule[], atCdn: FaultRule[] = []): Promise<string> {
  proxy.reset();
  cdn.reset();
  for (const rule of rules) proxy.add(rule);
  for (const rule of atCdn) cdn.add(rule);
  return tempDir('store');
}

const get = (store: string, image = 'faults/zstd:1') => fetchPackage(parseReference(`${proxy.host}/${image}`), TRIPLE, store);

function faultsInjected(): number {
  return [...proxy.requests, ...cdn.requests].filter((r) => r.fault !== undefined).length;
}

function blobGets(on: FaultProxy, digest: string) {
  return on.requests.filter((r) => r.method === 'GET' && blobPath(digest).test(r.path));
}

/** The package landed, complete and verified, with nothing left in staging. */
async function expectInstalled(store: string, result: Promise<unknown>): Promise<void> {
  await result;
  const contents = expectStoreVerified(store);
  expect(contents.packages).toEqual([zstd.manifestDesc.digest.slice('sha256:'.length)]);
  expect(contents.tmp).toEqual([]);
  const root = join(store, 'packages', 'sha256', contents.packages[0]!, 'root');
  expect(readdirSync(join(root, 'lib')).filter((f) => f.endsWith('.a'))).toEqual(['libzstd.a']);
}

describe('transient failures are retried with backoff', () => {
  const cases: [string, () => FaultRule[], number][] = [
    ['a reset connection on the manifest', () => [{ method: 'GET', path: MANIFEST, nth: [1, 2], fault: { kind: 'reset' } }], 2],
    ['a reset connection on a blob', () => [{ method: 'GET', path: blobPath(big().digest), nth: [1, 2], fault: { kind: 'reset' } }], 2],
    ['503 on a blob, three times', () => [{ path: blobPath(big().digest), nth: [1, 2, 3], fault: { kind: 'status', status: 503 } }], 3],
    [
      '500 on the manifest and 502 on the config',
      () => [
        { path: MANIFEST, nth: 1, fault: { kind: 'status', status: 500 } },
        { path: blobPath(zstd.configDesc.digest), nth: 1, fault: { kind: 'status', status: 502 } },
      ],
      2,
    ],
    ['408 on a blob', () => [{ path: blobPath(big().digest), nth: 1, fault: { kind: 'status', status: 408 } }], 1],
    ['429 with Retry-After: 0, twice', () => [{ path: MANIFEST, nth: [1, 2], fault: { kind: 'status', status: 429, retryAfter: '0' } }], 2],
  ];
  it.each(cases)('%s', async (_name, rules, injected) => {
    const store = await arm(rules());
    await expectInstalled(store, get(store));
    expect(faultsInjected()).toBe(injected);
  });

  it('429 waits as long as Retry-After says, in seconds or as a date', async () => {
    for (const header of [() => '1', () => new Date(Date.now() + 2000).toUTCString()]) {
      const retryAfter = header();
      const store = await arm([{ path: MANIFEST, nth: 1, fault: { kind: 'status', status: 429, retryAfter } }]);
      const started = Date.now();
      await expectInstalled(store, get(store));
      // A lower bound only: the retry did not come before the registry allowed it (HTTP dates have 1 s resolution).
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    }
  });

  it('a connection refused while the registry restarts is retried', async () => {
    const port = Number(proxy.host.split(':')[1]);
    const before = process.env.OCIPKG_RETRY_BASE_MS;
    // Long enough backoff that the proxy is back before the attempts run out.
    process.env.OCIPKG_RETRY_BASE_MS = '100';
    try {
      const store = await arm([]);
      await proxy.close();
      const result = get(store);
      await new Promise((resolve) => setTimeout(resolve, 200));
      proxy = await startFaultProxy(registry.url, port);
      await expectInstalled(store, result);
    } finally {
      process.env.OCIPKG_RETRY_BASE_MS = before;
    }
  });
});

describe('retries are bounded', () => {
  it('a blob that keeps failing with 503 gives up after 5 attempts with EREGISTRY', async () => {
    const store = await arm([{ path: blobPath(big().digest), fault: { kind: 'status', status: 503 } }]);
    expect(await codeOf(get(store))).toBe('EREGISTRY');
    expect(blobGets(proxy, big().digest)).toHaveLength(5);
    expectNothingInstalled(store);
  });

  it('a manifest whose connection keeps resetting gives up after 5 attempts with EUNREACHABLE', async () => {
    const store = await arm([{ path: MANIFEST, fault: { kind: 'reset' } }]);
    expect(await codeOf(get(store))).toBe('EUNREACHABLE');
    expect(proxy.requests.filter((r) => MANIFEST.test(r.path))).toHaveLength(5);
    expectNothingInstalled(store);
  });

  it('a Retry-After beyond the retry budget fails at once instead of waiting an hour', async () => {
    const started = Date.now();
    const store = await arm([{ path: MANIFEST, fault: { kind: 'status', status: 429, retryAfter: '3600' } }]);
    expect(await codeOf(get(store))).toBe('EREGISTRY');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(proxy.requests.filter((r) => MANIFEST.test(r.path))).toHaveLength(1);
    expectNothingInstalled(store);
  });
});

describe('interrupted blob uploads start a new session', () => {
  const UPLOAD_START = /\/blobs\/uploads\/$/;
  const UPLOAD_PUT = /\/blobs\/uploads\/[^/?]+\?/;
  let pushes = 0;

  /**
   * Pushes zstd through the proxy into a repository of its own (so no blob is there yet), with no
   * record of the other repositories holding its blobs: a mount would take the place of the uploads.
   */
  async function push(rules: FaultRule[]): Promise<string> {
    await arm(rules);
    useBlobLocationRecord({ repositories: () => [], record: () => {} });
    const repository = `faults/upload-${++pushes}`;
    const layout = new LayoutDirectory(join(home, 'layout-faults-zstd'));
    await copy(layout, '1', new RegistryRepository(proxy.host, repository), '1');
    return repository;
  }

  /** Each blob went up whole: a get straight from the registry verifies and installs the image. */
  async function expectPushed(repository: string): Promise<void> {
    const store = await tempDir('store');
    await fetchPackage(parseReference(`${registry.host}/${repository}:1`), TRIPLE, store);
    expect(storeContents(store).packages).toEqual([zstd.manifestDesc.digest.slice('sha256:'.length)]);
  }

  const blobCount = () => 1 + zstd.layers.length;
  const requests = (method: string, path: RegExp) => proxy.requests.filter((r) => r.method === method && path.test(r.path));

  it('a connection reset while a PUT streams a blob, twice: new sessions, each blob complete', async () => {
    const repository = await push([{ method: 'PUT', path: UPLOAD_PUT, nth: [1, 2], fault: { kind: 'reset' } }]);
    expect(faultsInjected()).toBe(2);
    expect(requests('POST', UPLOAD_START)).toHaveLength(blobCount() + 2);
    expect(requests('PUT', UPLOAD_PUT)).toHaveLength(blobCount() + 2);
    await expectPushed(repository);
  });

  it('503 on the POST that starts a session and 500 on a PUT are retried', async () => {
    const repository = await push([
      { method: 'POST', path: UPLOAD_START, nth: 1, fault: { kind: 'status', status: 503 } },
      { method: 'PUT', path: UPLOAD_PUT, nth: 1, fault: { kind: 'status', status: 500 } },
    ]);
    expect(faultsInjected()).toBe(2);
    await expectPushed(repository);
  });

  it('a PUT that keeps answering 503 gives up after 5 attempts with EREGISTRY, saying so', async () => {
    const failure = push([{ method: 'PUT', path: UPLOAD_PUT, fault: { kind: 'status', status: 503 } }]).catch((err: unknown) => err);
    const err = (await failure) as Error & { code?: string };
    expect(err.code).toBe('EREGISTRY');
    expect(err.message).toMatch(/answered 503 for upload of blob .*; gave up after 5 attempts$/);
  });
});

describe('interrupted blob downloads resume', () => {
  it('a body cut off midway resumes with a Range request from the first missing byte', async () => {
    const store = await arm([{ method: 'GET', path: blobPath(big().digest), nth: 1, fault: { kind: 'cut', after: 100_000 } }]);
    await expectInstalled(store, get(store));
    const gets = blobGets(proxy, big().digest);
    expect(gets).toHaveLength(2);
    expect(gets[0]!.headers.range).toBeUndefined();
    const offset = Number(/^bytes=(\d+)-$/.exec(String(gets[1]!.headers.range))?.[1]);
    expect(offset).toBeGreaterThan(0);
    expect(offset).toBeLessThanOrEqual(100_000);
  });

  it('a server that ignores Range is downloaded again from the start, still verified', async () => {
    const digest = big().digest;
    const store = await arm([
      { method: 'GET', path: blobPath(digest), nth: 1, fault: { kind: 'cut', after: 100_000 } },
      { method: 'GET', path: blobPath(digest), fault: { kind: 'no-ranges' } },
    ]);
    await expectInstalled(store, get(store));
    expect(blobGets(proxy, digest).map((r) => r.fault)).toEqual(['cut', 'no-ranges']);
  });

  it('a body cut every 32 KiB keeps resuming as long as each try makes progress', async () => {
    const digest = big().digest;
    const store = await arm([{ method: 'GET', path: blobPath(digest), fault: { kind: 'cut', after: 32 * 1024 } }]);
    await expectInstalled(store, get(store));
    // Many more cuts than the attempt limit: progress starts a new run of attempts.
    expect(blobGets(proxy, digest).length).toBeGreaterThanOrEqual(Math.ceil(big().size / (32 * 1024)));
    expect(blobGets(proxy, digest).length).toBeGreaterThan(5);
  });

  it('without ranges, a body always cut at the same point makes no progress and gives up (EUNREACHABLE)', async () => {
    const digest = big().digest;
    // Every resume is answered 200 from byte 0 and cut again at 64 KiB: never past what it already had.
    const store = await arm([{ method: 'GET', path: blobPath(digest), fault: { kind: 'cut', after: 64 * 1024, ignoreRange: true } }]);
    expect(await codeOf(get(store))).toBe('EUNREACHABLE');
    expect(blobGets(proxy, digest)).toHaveLength(5);
    // What did arrive is kept for the next run to continue (test/resume.test.ts).
    expectNothingInstalled(store, [digest]);
  });

  it('a resumed request that fails with 503 is itself retried', async () => {
    const digest = big().digest;
    const store = await arm([
      { method: 'GET', path: blobPath(digest), nth: 1, fault: { kind: 'cut', after: 100_000 } },
      { method: 'GET', path: blobPath(digest), nth: [2, 3], fault: { kind: 'status', status: 503 } },
    ]);
    await expectInstalled(store, get(store));
    expect(blobGets(proxy, digest).map((r) => r.fault)).toEqual(['cut', 'status', 'status', undefined]);
  });

  it('a restart from zero that brings different bytes fails verification (EINTEGRITY)', async () => {
    const digest = big().digest;
    const impostor = Buffer.alloc(big().size, 0x5a);
    const store = await arm([
      { method: 'GET', path: blobPath(digest), nth: 1, fault: { kind: 'cut', after: 100_000 } },
      { method: 'GET', path: blobPath(digest), fault: { kind: 'serve', body: impostor, contentType: 'application/octet-stream' } },
    ]);
    expect(await codeOf(get(store))).toBe('EINTEGRITY');
    expectNothingInstalled(store);
  });

  it('a cut manifest body is fetched again', async () => {
    const store = await arm([{ method: 'GET', path: MANIFEST, nth: 1, fault: { kind: 'cut', after: 40 } }]);
    await expectInstalled(store, get(store));
  });

  it('a blob redirected to another origin and cut there resumes at that origin', async () => {
    const digest = big().digest;
    const store = await arm(
      [{ method: 'GET', path: blobPath(digest), fault: { kind: 'redirect', origin: cdn.url } }],
      [{ method: 'GET', path: blobPath(digest), nth: 1, fault: { kind: 'cut', after: 100_000 } }],
    );
    await expectInstalled(store, get(store));
    const atCdn = blobGets(cdn, digest);
    expect(atCdn).toHaveLength(2);
    expect(atCdn[1]!.headers.range).toMatch(/^bytes=[1-9]\d*-$/);
    expect(atCdn.every((r) => r.headers.authorization === undefined)).toBe(true);
  });
});

describe('OCIPKG_TIMEOUT', () => {
  beforeAll(async () => {
    process.env.OCIPKG_TIMEOUT = '0.5';
    // Timeouts are read when the process's dispatchers are made.
    await closeDispatchers();
  });
  afterAll(async () => {
    delete process.env.OCIPKG_TIMEOUT;
    await closeDispatchers();
  });

  it('a body that stalls midway times out and resumes', async () => {
    const digest = big().digest;
    const store = await arm([{ method: 'GET', path: blobPath(digest), nth: 1, fault: { kind: 'stall-body', after: 100_000 } }]);
    await expectInstalled(store, get(store));
    expect(blobGets(proxy, digest)[1]!.headers.range).toMatch(/^bytes=[1-9]\d*-$/);
  });

  it('a server that never answers fails within 10 s with EUNREACHABLE', async () => {
    const started = Date.now();
    const store = await arm([{ path: MANIFEST, fault: { kind: 'stall' } }]);
    expect(await codeOf(get(store))).toBe('EUNREACHABLE');
    expect(Date.now() - started).toBeLessThan(10_000);
    expectNothingInstalled(store);
  });

  it('a blob body that always stalls fails within 10 s with EUNREACHABLE', async () => {
    const started = Date.now();
    const store = await arm([{ method: 'GET', path: blobPath(big().digest), fault: { kind: 'stall-body', after: 0 } }]);
    expect(await codeOf(get(store))).toBe('EUNREACHABLE');
    expect(Date.now() - started).toBeLessThan(10_000);
    expectNothingInstalled(store);
  });
});

describe('kills', () => {
  it('ocipkg get SIGKILLed 30 times mid-download never leaves a package that is trusted unfinished; the next run completes and reuses verified blobs', async () => {
    // B shares its lz4 layer with A, which is installed first: that blob is verified and in the
    // store before any kill, and no run may download it again.
    const lz4 = libEntries('lz4');
    const a = buildImage([lz4], { name: 'lz4' });
    const b = buildImage([lz4, libEntries('zstd'), libEntries('sqlite3')], { name: 'bundle' });
    await publish(a, 'kills/a', '1');
    await publish(b, 'kills/b', '1');
    proxy.reset();
    const store = await tempDir('store');
    const env = { OCIPKG_DATA_DIR: store };
    const imageB = `${proxy.host}/kills/b:1`;
    expect((await ocipkg(['get', `${proxy.host}/kills/a:1`], env)).code).toBe(0);
    const shared = b.layers[0]!.desc.digest;
    expect(storeContents(store).blobs).toContain(shared.slice('sha256:'.length));

    // Slow blob bodies so that kills land mid-download; one full slow fetch times the start-up.
    proxy.add({ method: 'GET', path: /\/blobs\//, fault: { kind: 'slow', chunk: 8 * 1024, delayMs: 8 } });
    const timing = await tempDir('store');
    const started = Date.now();
    expect((await ocipkg(['get', imageB], { OCIPKG_DATA_DIR: timing })).code).toBe(0);
    const firstBlob = proxy.requests.find((r) => r.fault === 'slow')!.at - started;
    const killsStart = proxy.requests.length;

    // Kill points spread over the run, each at a random point within its slot: 5 by time before the
    // first blob is asked for (start-up, resolving), 25 by how many blob bytes the proxy has sent,
    // which lands them mid-download however loaded the machine is. Rising order, so that a run
    // that gets to finish comes last.
    const slot = (i: number, of: number, from: number, to: number) => Math.floor(from + ((i + Math.random()) / of) * (to - from));
    const streamed = b.layers.slice(1).reduce((sum, l) => sum + l.desc.size, 0);
    const kills = [
      ...Array.from({ length: 5 }, (_, i) => ({ afterMs: slot(i, 5, 0, firstBlob) })),
      ...Array.from({ length: 25 }, (_, i) => ({ afterBytes: slot(i, 25, 0, streamed) })),
    ];
    const outcomes = { killed: 0, midDownload: 0, finished: 0, complete: 0 };
    for (const [i, kill] of kills.entries()) {
      const before = new Set(storeContents(store).blobs);
      const seen = proxy.requests.length;
      // Each run downloads from nothing: continuing the last one's partial downloads
      // (test/resume.test.ts) would finish the package within a few kills.
      await rm(join(store, 'tmp'), { recursive: true, force: true });
      const child = spawn(process.execPath, [OCIPKG, 'get', imageB], { env: { ...process.env, ...env }, stdio: 'ignore' });
      let exited = false;
      const closed = new Promise<NodeJS.Signals | null>((resolve) =>
        child.once('close', (_code, signal) => {
          exited = true;
          resolve(signal);
        }),
      );
      if ('afterMs' in kill) await new Promise((resolve) => setTimeout(resolve, kill.afterMs));
      else {
        const sent = () => proxy.requests.slice(seen).reduce((sum, r) => sum + r.sent, 0);
        while (!exited && sent() < kill.afterBytes) await new Promise((resolve) => setTimeout(resolve, 2));
      }
      child.kill('SIGKILL');
      if ((await closed) === 'SIGKILL') outcomes.killed++;
      else outcomes.finished++;
      if (proxy.requests.slice(seen).some((r) => r.fault === 'slow')) outcomes.midDownload++;

      const why = `kill ${i} at ${JSON.stringify(kill)}`;
      // Everything a later run would trust is verified, and no blob already in the store was fetched again.
      expectStoreVerified(store);
      const refetched = proxy.requests.slice(seen).filter((r) => r.method === 'GET' && [...before].some((hex) => r.path.endsWith(`sha256:${hex}`)));
      expect(refetched, why).toEqual([]);
      // An offline lookup finds the whole package or nothing at all.
      const lookup = resolvePackage(imageB, { offline: true, storeRoot: store, target: TRIPLE });
      const pkg = await lookup.catch(() => undefined);
      if (pkg) {
        expect(readdirSync(join(pkg.root, 'lib')).filter((f) => f.endsWith('.a')).sort(), why).toEqual(['liblz4.a', 'libsqlite3.a', 'libzstd.a']);
        outcomes.complete++;
      } else {
        expect(await codeOf(lookup), why).toBe('ENOTFOUND');
      }
    }
    expect(outcomes.killed, JSON.stringify({ outcomes, firstBlob, kills })).toBeGreaterThanOrEqual(25);
    expect(outcomes.midDownload, JSON.stringify({ outcomes, firstBlob, kills })).toBeGreaterThanOrEqual(20);

    const before = new Set(storeContents(store).blobs);
    const seen = proxy.requests.length;
    const finished = await ocipkg(['get', imageB], env);
    expect(finished.code, finished.stderr).toBe(0);
    const contents = expectStoreVerified(store);
    expect(contents.packages).toHaveLength(2);
    expect(existsSync(join(finished.stdout.trim(), 'lib', 'libsqlite3.a'))).toBe(true);
    expect(proxy.requests.slice(seen).filter((r) => [...before].some((hex) => r.path.endsWith(`sha256:${hex}`)))).toEqual([]);
    // The shared layer was never downloaded again, by any of the 31 runs.
    expect(blobGets(proxy, shared).filter((r) => proxy.requests.indexOf(r) >= killsStart)).toEqual([]);
    expect(sha256(readFileSync(join(store, 'blobs', 'sha256', shared.slice('sha256:'.length))))).toBe(shared);
    // 31 runs of the CLI: minutes on a loaded machine. The cap is for a hang, not a speed check.
  }, 900_000);
});

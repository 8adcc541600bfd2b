import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownerOf, uniqueName } from '../src/fs/names.js';
import { ocipkg, ocipkgLink, REPO, tempDir, type RunResult } from './helpers/cli.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { debianPrefix } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { expectStoreVerified, storeContents } from './helpers/store-check.js';

/**
 * `ocipkg store prune` (and its old name `ocipkg prune`) and `ocipkg store verify` on real stores filled by `ocipkg get` from a real registry,
 * including prune running while other ocipkg processes fetch into the same store.
 */
let registry: TestRegistry;
let work: string;
const images = { lz4: '', zstd: '' };
/** `other` is lz4 with one more header: a package sharing no layer with the lz4 one. */
const archives = { lz4: '', zstd: '', other: '' };

const env = (store: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ OCIPKG_DATA_DIR: store, ...extra });

async function get(store: string, image: string, ...flags: string[]): Promise<string> {
  const result = await ocipkg(['get', image, ...flags], env(store));
  expect(result.code, result.stderr).toBe(0);
  return result.stdout.trim();
}

function lines(result: RunResult): string[] {
  return result.stdout.split('\n').filter((l) => l !== '');
}

/**
 * Names as a process that has exited made them: the real `uniqueName` (dist/fs/names.js, what the
 * CLIs run) in a child process that is gone by the time this returns.
 */
function deadProcessNames(...prefixes: string[]): string[] {
  const names = pathToFileURL(join(REPO, 'dist', 'fs', 'names.js')).href;
  const script = `import(${JSON.stringify(names)}).then(({ uniqueName }) => process.stdout.write(JSON.stringify(${JSON.stringify(prefixes)}.map(uniqueName))))`;
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  expect(child.status, child.stderr).toBe(0);
  return JSON.parse(child.stdout) as string[];
}

const HOUR_AGO = new Date(Date.now() - 60 * 60_000);

/** Makes a package and the blobs it was installed from look an hour old, past prune's grace period. */
async function backdate(store: string, manifestDigest: string): Promise<void> {
  const hex = manifestDigest.slice('sha256:'.length);
  const info = JSON.parse(await readFile(join(store, 'packages', 'sha256', hex, 'package.json'), 'utf8')) as {
    manifest: { config: { digest: string }; layers: { digest: string }[] };
  };
  for (const digest of [manifestDigest, info.manifest.config.digest, ...info.manifest.layers.map((l) => l.digest)]) {
    await utimes(join(store, 'blobs', 'sha256', digest.slice('sha256:'.length)), HOUR_AGO, HOUR_AGO);
  }
  await utimes(join(store, 'packages', 'sha256', hex), HOUR_AGO, HOUR_AGO);
  const used = join(store, 'used', 'sha256', hex);
  if (existsSync(used)) await utimes(used, HOUR_AGO, HOUR_AGO);
}

/** The manifest digest of the package `get` printed (`.../packages/sha256/<hex>/root`). */
const digestOf = (root: string) => `sha256:${root.split('/').at(-2)}`;

/** A staging directory named `name` as a killed `get` leaves it, read-only parts included. */
async function staging(store: string, name: string): Promise<string> {
  const dir = join(store, 'tmp', name, 'root', 'lib');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'half.a'), 'partial');
  await chmod(dir, 0o555);
  return name;
}

beforeAll(async () => {
  registry = await startRegistry();
  work = await tempDir('maintenance');
  for (const lib of ['lz4', 'zstd'] as const) {
    const prefix = await debianPrefix(join(work, lib), lib, [`${lib}.h`]);
    archives[lib] = join(work, `${lib}.tar`);
    images[lib] = `${registry.host}/acme/${lib}:1`;
    expect((await ocipkg(['pack', prefix, archives[lib], '-t', images[lib]])).code).toBe(0);
    expect((await ocipkg(['push', archives[lib]])).code).toBe(0);
  }
  archives.other = join(work, 'other.tar');
  const other = await debianPrefix(join(work, 'other'), 'lz4', ['lz4.h', 'lz4hc.h']);
  expect((await ocipkg(['pack', other, archives.other, '-t', `${registry.host}/acme/other:1`])).code).toBe(0);
});

afterAll(async () => {
  await registry?.stop();
});

describe('ocipkg prune', () => {
  it('removes a package no ref points to, its blobs and abandoned staging; keeps the rest', async () => {
    const store = await tempDir('store');
    const moving = `${registry.host}/acme/moving:1`;
    // The tag first names the lz4 build, then moves to zstd: the lz4 package is left unreferenced.
    expect((await ocipkg(['push', archives.lz4, moving])).code).toBe(0);
    const old = await get(store, moving);
    expect((await ocipkg(['push', archives.zstd, moving])).code).toBe(0);
    const current = await get(store, moving, '-f');
    const kept = await get(store, images.zstd); // the same package under a second name
    expect(kept).toBe(current);
    await backdate(store, digestOf(old));

    const [deadStaging, deadTemp] = deadProcessNames('install-', '.1.json.tmp-');
    const dead = await staging(store, deadStaging!);
    const alive = await staging(store, uniqueName('install-'));
    const refDir = join(store, 'refs', encodeURIComponent(registry.host), encodeURIComponent('acme/moving'));
    await writeFile(join(refDir, deadTemp!), '{');

    const dry = await ocipkg(['store', 'prune', '--dry-run', '--json'], env(store));
    expect(dry.code, dry.stderr).toBe(0);
    expect(existsSync(old)).toBe(true);

    const pruned = await ocipkg(['store', 'prune', '--json'], env(store));
    expect(pruned.code, pruned.stderr).toBe(0);
    const result = JSON.parse(pruned.stdout) as { packages: string[]; blobs: string[]; staging: string[] };
    expect(JSON.parse(dry.stdout)).toEqual({ ...result, dryRun: true });
    expect(result.packages).toEqual([digestOf(old)]);
    // Its manifest and its lz4 layer (the config too); nothing the zstd package uses.
    expect(result.blobs).toContain(digestOf(old));
    expect(result.blobs.length).toBeGreaterThanOrEqual(2);
    expect(result.staging).toContain(join('tmp', dead));
    expect(result.staging).not.toContain(join('tmp', alive));
    expect(result.staging.some((p) => p.startsWith(join('refs', encodeURIComponent(registry.host))))).toBe(true);

    expect(existsSync(old)).toBe(false);
    expect(storeContents(store).tmp).toEqual([alive]);
    expect(readdirSync(refDir)).toEqual(['1.json']);
    // What the refs name is intact and still resolves offline.
    expectStoreVerified(store);
    expect((await ocipkg(['get', moving, '--offline'], env(store))).stdout.trim()).toBe(current);
    expect((await ocipkg(['store', 'verify'], env(store))).code).toBe(0);

    // A second prune finds nothing more to do.
    const again = await ocipkg(['prune'], env(store));
    expect(lines(again)).toEqual([]);
    await rm(join(store, 'tmp', alive), { recursive: true, force: true }).catch(() => undefined);
  });

  it('leaves recently written unreferenced content alone unless --min-age says otherwise', async () => {
    const store = await tempDir('store');
    const moving = `${registry.host}/acme/young:1`;
    expect((await ocipkg(['push', archives.lz4, moving])).code).toBe(0);
    const old = await get(store, moving);
    expect((await ocipkg(['push', archives.zstd, moving])).code).toBe(0);
    await get(store, moving, '-f');

    expect(lines(await ocipkg(['prune'], env(store)))).toEqual([]);
    expect(existsSync(old)).toBe(true);
    const forced = await ocipkg(['prune', '--min-age', '0'], env(store));
    expect(lines(forced)).toContain(`removed package ${digestOf(old)}`);
    expect(existsSync(old)).toBe(false);
    expectStoreVerified(store);
    expect((await ocipkg(['prune', '--min-age', 'soon'], env(store))).code).toBe(2);
  });

  it('keeps the staging of an install that is still running, however old, even with --min-age 0', async () => {
    const store = await tempDir('store');
    const proxy = await startFaultProxy(registry.url);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    try {
      // Every blob is held after its first bytes until prune has run: the get is mid-download
      // throughout, however long prune takes on a loaded machine.
      proxy.add({ method: 'GET', path: /\/blobs\/sha256:/, fault: { kind: 'hold', after: 1024, release: held } });
      const image = images.lz4.replace(registry.host, proxy.host);
      const running = ocipkg(['get', image], env(store));
      let finished = false;
      void running.finally(() => (finished = true));
      const tmp = join(store, 'tmp');
      const started = async () => (existsSync(tmp) ? readdirSync(tmp).filter((n) => n.startsWith('install-')) : []);
      let live: string[] = [];
      while (!finished && live.length === 0) {
        live = await started();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(live, 'the get finished before its staging could be seen').toHaveLength(1);
      expect(ownerOf(live[0]!)).toBeGreaterThan(0);
      // Older than any grace period: only its live owner protects it.
      await utimes(join(tmp, live[0]!), HOUR_AGO, HOUR_AGO);
      const pruned = await ocipkg(['prune', '--min-age', '0', '--json'], env(store));
      expect(pruned.code, pruned.stderr).toBe(0);
      expect((JSON.parse(pruned.stdout) as { staging: string[] }).staging).toEqual([]);
      expect(finished, 'the get ended while prune ran; the check proved nothing').toBe(false);
      release();
      const result = await running;
      expect(result.code, result.stderr).toBe(0);
      expectStoreVerified(store);
    } finally {
      release();
      await proxy.close();
    }
  });

  it('is safe while four gets fetch into the same store: all succeed and the store ends consistent', async () => {
    const store = await tempDir('store');
    // Garbage for prune to find: an old unreferenced package (sharing no blob with what the gets
    // fetch) and a killed fetch's staging.
    const moving = `${registry.host}/acme/garbage:1`;
    expect((await ocipkg(['push', archives.other, moving])).code).toBe(0);
    const old = await get(store, moving);
    expect((await ocipkg(['push', archives.zstd, moving])).code).toBe(0);
    expect((await ocipkg(['get', moving, '-f'], env(store))).code).toBe(0);
    await backdate(store, digestOf(old));
    await staging(store, deadProcessNames('install-')[0]!);

    // The gets' blobs are held after their first bytes until two prunes have run, so those two run
    // while all four gets are mid-download, however loaded the machine; then more, until they end.
    const proxy = await startFaultProxy(registry.url);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    proxy.add({ method: 'GET', path: /\/blobs\/sha256:/, fault: { kind: 'hold', after: 1024, release: held } });
    const proxied = { lz4: images.lz4.replace(registry.host, proxy.host), zstd: images.zstd.replace(registry.host, proxy.host) };
    const gets = [proxied.lz4, proxied.zstd, proxied.lz4, proxied.zstd].map((image) => ocipkg(['get', image], env(store)));
    let done = false;
    const settled = Promise.all(gets).finally(() => (done = true));
    const prunes: RunResult[] = [];
    try {
      while (prunes.length < 2) prunes.push(await ocipkg(['prune'], env(store)));
      expect(done, 'the gets ended while held; the check proved nothing').toBe(false);
    } finally {
      release();
    }
    while (!done) prunes.push(await ocipkg(['prune'], env(store)));
    prunes.push(await ocipkg(['prune'], env(store)));
    await proxy.close();

    for (const result of await settled) {
      expect(result.code, result.stderr).toBe(0);
      expect(existsSync(join(result.stdout.trim(), 'include'))).toBe(true);
    }
    for (const result of prunes) expect(result.code, result.stderr).toBe(0);
    const removed = prunes.flatMap(lines);
    expect(removed).toContain(`removed package ${digestOf(old)}`);
    // The killed fetch's staging goes whichever reaches it first, a prune or a get's own recovery of
    // dead staging (store/partial.ts): under load the gets, started first, often win.
    const contents = expectStoreVerified(store);
    expect(contents.tmp).toEqual([]);
    const verify = await ocipkg(['store', 'verify'], env(store));
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    for (const image of [proxied.lz4, proxied.zstd, moving]) {
      expect((await ocipkg(['get', image, '--offline'], env(store))).code).toBe(0);
    }
  });
});

interface Row { reference: string | null; target: string | null; manifest: string; size: number; fetched: string | null; lastUsed: string | null }

async function listed(store: string): Promise<Row[]> {
  const result = await ocipkg(['store', 'list', '--json'], env(store));
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as Row[];
}

/** What `du -sb`-like counting says the store takes: every file's allocated blocks. */
function storeBytes(store: string): number {
  const du = spawnSync('du', ['-s', '-B1', store], { encoding: 'utf8' });
  return Number(du.stdout.split('\t')[0]);
}

/** A project declaring `images` whose lockfile `ocipkg install` writes (and so records the project in the store). */
async function installedProject(store: string, images: Record<string, string>): Promise<string> {
  const dir = await tempDir('project');
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'addon', ocipkg: { packages: images } }));
  const installed = await ocipkg(['install'], env(store, { OCIPKG_PROJECT_DIR: dir }));
  expect(installed.code, installed.stderr).toBe(0);
  return dir;
}

describe('ocipkg store list', () => {
  it('shows each reference and target with its size on disk, when it was fetched and when last used', async () => {
    const store = await tempDir('store');
    const lz4 = await get(store, images.lz4);
    await get(store, images.zstd);
    const rows = await listed(store);
    expect(rows.map((r) => r.reference)).toEqual([images.lz4, images.zstd].sort());
    const row = rows.find((r) => r.reference === images.lz4)!;
    expect(row.manifest).toBe(digestOf(lz4));
    expect(row.target).toBe('x86_64-unknown-linux-gnu');
    // The extracted files and the compressed layer: more than the static library alone.
    const lib = readdirSync(join(lz4, 'lib')).find((f) => f.endsWith('.a'))!;
    expect(row.size).toBeGreaterThan((await readFile(join(lz4, 'lib', lib))).length);
    expect(Date.parse(row.fetched!)).toBeGreaterThan(Date.now() - 10 * 60_000);
    const usedBefore = Date.parse(row.lastUsed!);

    // A warm ocipkg-link is a use.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await ocipkgLink(['--cflags', images.lz4], env(store))).code).toBe(0);
    const after = (await listed(store)).find((r) => r.reference === images.lz4)!;
    expect(Date.parse(after.lastUsed!)).toBeGreaterThan(usedBefore);
    expect(after.fetched).toBe(row.fetched);

    // `list` is the same listing; the text form has the same six columns.
    expect(JSON.parse((await ocipkg(['list', '--json'], env(store))).stdout)).toEqual(await listed(store));
    const text = lines(await ocipkg(['store', 'list'], env(store)));
    expect(text).toHaveLength(2);
    const columns = text.find((l) => l.startsWith(images.lz4))!.split('\t');
    expect(columns.slice(0, 3)).toEqual([images.lz4, 'x86_64-unknown-linux-gnu', digestOf(lz4)]);
    expect(columns[3]).toMatch(/^\d+\.\d (KiB|MiB)$/);
    expect(columns[4]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(columns[5]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });
});

describe('ocipkg rm', () => {
  it('removes the reference and frees the package and its blobs at once; a package another tag names stays', async () => {
    const store = await tempDir('store');
    const lz4 = await get(store, images.lz4);
    const zstd = await get(store, images.zstd);
    const alias = `${registry.host}/acme/zstd-alias:1`;
    expect((await ocipkg(['push', archives.zstd, alias])).code).toBe(0);
    expect(await get(store, alias)).toBe(zstd);
    const lz4Size = (await listed(store)).find((r) => r.reference === images.lz4)!.size;
    const before = storeBytes(store);

    const removed = await ocipkg(['rm', images.lz4, '--json'], env(store));
    expect(removed.code, removed.stderr).toBe(0);
    const result = JSON.parse(removed.stdout) as { untagged: string[]; packages: string[]; blobs: string[]; bytes: number };
    expect(result.untagged).toEqual([images.lz4]);
    expect(result.packages).toEqual([digestOf(lz4)]);
    expect(result.blobs).toContain(digestOf(lz4));
    expect(result.bytes).toBe(lz4Size);
    expect(existsSync(lz4)).toBe(false);
    // The space is back now, not at the next prune.
    expect(before - storeBytes(store)).toBeGreaterThanOrEqual(lz4Size);
    expectStoreVerified(store);
    expect((await ocipkg(['get', images.lz4, '--offline'], env(store))).code).toBe(3);

    // Two tags of one package: the first rm only untags, the second frees it.
    const untag = await ocipkg(['rm', alias], env(store));
    expect(lines(untag)).toEqual([`untagged ${alias}`]);
    expect(existsSync(zstd)).toBe(true);
    expect(lines(await ocipkg(['rm', images.zstd], env(store)))).toEqual([`untagged ${images.zstd}`, `removed package ${digestOf(zstd)}`]);
    expect(storeContents(store).packages).toEqual([]);
    expect(storeContents(store).blobs).toEqual([]);
    expect(await listed(store)).toEqual([]);
  });

  it('takes a declared alias, as ocipkg inspect does, instead of a Docker Hub name', async () => {
    const store = await tempDir('store');
    const dir = await tempDir('project');
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'addon', ocipkg: { packages: { zstd: images.zstd } } }));
    const inProject = env(store, { OCIPKG_PROJECT_DIR: dir });
    expect((await ocipkg(['get', 'zstd'], inProject)).code).toBe(0);
    const inspected = await ocipkg(['inspect', 'zstd'], inProject);
    expect(inspected.code, inspected.stderr).toBe(0);
    expect(JSON.parse(inspected.stdout).reference).toBe(images.zstd);
    expect(lines(await ocipkg(['rm', 'zstd'], inProject))[0]).toBe(`untagged ${images.zstd}`);
  });

  it('refuses to remove what a package it keeps requires, unless both go', async () => {
    const store = await tempDir('store');
    const prefix = await debianPrefix(join(work, 'needs-zstd'), 'lz4', ['lz4.h']);
    const needing = `${registry.host}/acme/needs-zstd:1`;
    const archive = join(work, 'needs-zstd.tar');
    expect((await ocipkg(['pack', prefix, archive, '-t', needing, '--requires', images.zstd])).code).toBe(0);
    expect((await ocipkg(['push', archive])).code).toBe(0);
    await get(store, needing);
    const zstd = (await listed(store)).find((r) => r.reference === images.zstd)!;

    const refused = await ocipkg(['rm', images.zstd], env(store));
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toEqual([`ocipkg: ${images.zstd} is required by ${needing}, which the store keeps; remove both (ocipkg rm ${needing} ${images.zstd}) or neither`]);
    expect((await listed(store)).find((r) => r.reference === images.zstd)).toEqual(zstd);
    expect((await ocipkg(['get', needing, '--offline'], env(store))).code).toBe(0);

    expect((await ocipkg(['rm', needing, images.zstd], env(store))).code).toBe(0);
    expect(await listed(store)).toEqual([]);
  });

  it('after an install, takes the tag the project declared; after an update, the tag names the new build', async () => {
    const store = await tempDir('store');
    const moving = `${registry.host}/acme/install-moving:1`;
    expect((await ocipkg(['push', archives.lz4, moving])).code).toBe(0);
    const dir = await installedProject(store, { moving });
    const before = (await listed(store)).find((r) => r.reference === moving);
    expect(before, JSON.stringify(await listed(store))).toBeDefined();

    // The tag moves; update follows it, and so does the store's record of the tag.
    expect((await ocipkg(['push', archives.other, moving])).code).toBe(0);
    const updated = await ocipkg(['update'], env(store, { OCIPKG_PROJECT_DIR: dir }));
    expect(updated.code, updated.stderr).toBe(0);
    const after = (await listed(store)).find((r) => r.reference === moving)!;
    expect(after.manifest).not.toBe(before!.manifest);
    const outside = await ocipkgLink(['--prefix', moving], env(store, { OCIPKG_OFFLINE: '1', OCIPKG_PROJECT_DIR: await tempDir('elsewhere') }));
    expect(outside.stdout.trim()).toBe(join(store, 'packages', 'sha256', after.manifest.slice('sha256:'.length)));

    expect(lines(await ocipkg(['rm', moving], env(store)))[0]).toBe(`untagged ${moving}`);
  });

  it('refuses a reference the store does not hold, in one line, and removes nothing', async () => {
    const store = await tempDir('store');
    const lz4 = await get(store, images.lz4);
    const result = await ocipkg(['rm', images.lz4, `${registry.host}/acme/absent:1`], env(store));
    expect(result.code).toBe(3);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('acme/absent:1 is not in the store');
    expect(existsSync(lz4)).toBe(true);
    expect((await ocipkg(['rm'], env(store))).code).toBe(2);
  });
});

describe('ocipkg store prune keeps lockfile pins and what was used within --min-age', () => {
  it('--min-age 0 keeps only what the lockfile of a recorded project pins, and forgets the project once its lockfile is gone', async () => {
    const store = await tempDir('store');
    const project = await installedProject(store, { lz4: images.lz4 });
    const zstd = await get(store, images.zstd);

    const pruned = await ocipkg(['store', 'prune', '--min-age', '0', '--json'], env(store));
    expect(pruned.code, pruned.stderr).toBe(0);
    const result = JSON.parse(pruned.stdout) as { packages: string[]; refs: string[]; forgottenProjects: string[]; bytes: number };
    expect(result.packages).toEqual([digestOf(zstd)]);
    expect(result.refs).toEqual([images.zstd]);
    expect(result.forgottenProjects).toEqual([]);
    expect(result.bytes).toBeGreaterThan(0);
    expect(existsSync(zstd)).toBe(false);
    // The project still builds offline from the store.
    const linked = await ocipkgLink(['--libs', 'lz4'], env(store, { OCIPKG_PROJECT_DIR: project, OCIPKG_OFFLINE: '1' }));
    expect(linked.code, linked.stderr).toBe(0);
    expectStoreVerified(store);

    await unlink(join(project, 'ocipkg-lock.json'));
    const again = await ocipkg(['prune', '--min-age', '0', '--json'], env(store));
    const second = JSON.parse(again.stdout) as { packages: string[]; forgottenProjects: string[] };
    expect(second.forgottenProjects).toEqual([project]);
    expect(second.packages).toHaveLength(1);
    expect(storeContents(store)).toEqual({ packages: [], blobs: [], tmp: [] });
    expect(await listed(store)).toEqual([]);
  });

  it('a package used (by ocipkg-link) within --min-age stays; one unused longer goes, its ref with it', async () => {
    const store = await tempDir('store');
    const lz4 = await get(store, images.lz4);
    const zstd = await get(store, images.zstd);
    await backdate(store, digestOf(lz4));
    await backdate(store, digestOf(zstd));
    expect((await ocipkgLink(['--cflags', images.lz4], env(store))).code).toBe(0);

    const pruned = await ocipkg(['prune', '--min-age', '30'], env(store));
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(lines(pruned)).toContain(`removed package ${digestOf(zstd)}`);
    expect(lines(pruned)).toContain(`removed ref ${images.zstd}`);
    expect(lines(pruned)).not.toContain(`removed package ${digestOf(lz4)}`);
    expect(existsSync(lz4)).toBe(true);
    expect((await listed(store)).map((r) => r.reference)).toEqual([images.lz4]);
    expectStoreVerified(store);
    expect((await ocipkg(['prune', '--min-age', '1d'], env(store))).code).toBe(0);
    expect(existsSync(lz4)).toBe(true);
  });
});

describe('OCIPKG_KEEP_LAYERS=0', () => {
  it('installs the package without keeping its compressed layer; store verify says it cannot compare it, and does not call it corrupt', async () => {
    const store = await tempDir('store');
    const kept = await tempDir('store');
    const lz4 = await get(kept, images.lz4);
    const result = await ocipkg(['get', images.lz4], env(store, { OCIPKG_KEEP_LAYERS: '0' }));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim().replace(store, kept)).toBe(lz4);
    const info = JSON.parse(readFileSync(join(result.stdout.trim(), '..', 'package.json'), 'utf8')) as { layersKept?: boolean; manifest: { layers: { digest: string }[] } };
    expect(info.layersKept).toBe(false);
    const layer = info.manifest.layers[0]!.digest.slice('sha256:'.length);
    expect(storeContents(store).blobs).not.toContain(layer);
    expect(storeContents(kept).blobs).toContain(layer);
    expect((await listed(store))[0]!.size).toBeLessThan((await listed(kept))[0]!.size);

    const verify = await ocipkg(['store', 'verify'], env(store));
    expect(verify.code, verify.stderr).toBe(0);
    expect(lines(verify)).toEqual([`unchecked package ${digestOf(lz4)}: its layers were not kept (OCIPKG_KEEP_LAYERS=0), so its files were not compared`]);
    expect((await ocipkgLink(['--libs', images.lz4], env(store))).code).toBe(0);
  });
});

describe('ocipkg store verify', () => {
  it('reports a corrupt blob and a tampered package, and --fix removes them and their refs', async () => {
    const store = await tempDir('store');
    const lz4 = await get(store, images.lz4);
    const zstd = await get(store, images.zstd);
    expect((await ocipkg(['store', 'verify'], env(store))).code).toBe(0);

    // Flip the content of the zstd package's layer blob, and edit a header inside the lz4 package.
    const zstdInfo = JSON.parse(readFileSync(join(zstd, '..', 'package.json'), 'utf8')) as { manifest: { layers: { digest: string }[] } };
    const layer = zstdInfo.manifest.layers[0]!.digest;
    const blob = join(store, 'blobs', 'sha256', layer.slice('sha256:'.length));
    await chmod(blob, 0o644);
    const bytes = await readFile(blob);
    bytes[bytes.length >> 1]! ^= 0xff;
    await writeFile(blob, bytes);
    const header = join(lz4, 'include', 'lz4.h');
    await chmod(header, 0o644);
    await writeFile(header, `${await readFile(header, 'utf8')}\n#define TAMPERED 1\n`);

    const report = await ocipkg(['store', 'verify'], env(store));
    expect(report.code).toBe(6);
    expect(report.stderr.trim().split('\n')).toHaveLength(1);
    const problems = lines(report);
    expect(problems.some((l) => l.startsWith(`corrupt blob ${layer}:`))).toBe(true);
    expect(problems.some((l) => l.startsWith(`corrupt package ${digestOf(lz4)}:`) && l.includes('include/lz4.h'))).toBe(true);
    // The zstd package's files are fine, but its layer is not: it cannot be vouched for.
    expect(problems.some((l) => l.startsWith(`corrupt package ${digestOf(zstd)}:`))).toBe(true);

    const fixed = await ocipkg(['store', 'verify', '--fix', '--json'], env(store));
    expect(fixed.code, fixed.stderr).toBe(0);
    const result = JSON.parse(fixed.stdout) as { problems: unknown[]; removedRefs: string[] };
    expect(result.problems).toHaveLength(3);
    expect(result.removedRefs.sort()).toEqual([images.lz4, images.zstd].sort());
    expect(existsSync(lz4)).toBe(false);
    expect(existsSync(zstd)).toBe(false);
    expect(existsSync(blob)).toBe(false);
    expect((await ocipkg(['store', 'verify'], env(store))).code).toBe(0);
    expect((await ocipkg(['get', images.lz4, '--offline'], env(store))).code).toBe(3);

    // The next get fetches and verifies everything afresh.
    expect(await get(store, images.lz4)).toBe(lz4);
    expect(await get(store, images.zstd)).toBe(zstd);
    expect(readFileSync(join(lz4, 'include', 'lz4.h'), 'utf8')).not.toContain('TAMPERED');
    expectStoreVerified(store);
    expect((await ocipkg(['store', 'verify'], env(store))).code).toBe(0);
  });

  it('stops, removing nothing, when the machine keeps it from checking (a scratch directory it may not create)', async () => {
    // What a full disk or a read-only store does to the scratch extraction; /sys refuses mkdir even
    // to root, which these tests may run as.
    const store = await tempDir('store');
    const lz4 = await get(store, images.lz4);
    await rm(join(store, 'tmp'), { recursive: true, force: true });
    await symlink('/sys', join(store, 'tmp'));
    const fixed = await ocipkg(['store', 'verify', '--fix'], env(store));
    expect(fixed.code).toBe(1);
    expect(fixed.stderr.trim().split('\n')).toHaveLength(1);
    expect(fixed.stderr).toMatch(new RegExp(`^ocipkg: cannot check package ${digestOf(lz4)}: EPERM: .*; nothing was removed\\n$`));
    expect(existsSync(lz4)).toBe(true);
    await rm(join(store, 'tmp'));
    expect((await ocipkg(['get', images.lz4, '--offline'], env(store))).code).toBe(0);
  });

  it('a store it cannot write: get and a cold ocipkg-link say so in one line naming the store', async () => {
    const store = await tempDir('store');
    await symlink('/sys', join(store, 'tmp'));
    for (const result of [await ocipkg(['get', images.lz4], env(store)), await ocipkgLink(['--libs', images.lz4], env(store))]) {
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(new RegExp(`^ocipkg(-link)?: the ocipkg store at ${store} cannot be written \\(EPERM on ${store}/tmp/install-[^)]+\\): fetching, removing and pruning write to it; set OCIPKG_DATA_DIR to use another store\\n$`));
    }
  });

  it('finds a file added to a package that no layer holds', async () => {
    const store = await tempDir('store');
    const lz4 = await get(store, images.lz4);
    await chmod(join(lz4, 'lib'), 0o755);
    await writeFile(join(lz4, 'lib', 'extra.a'), 'not from any layer');
    const report = await ocipkg(['store', 'verify', '--json'], env(store));
    expect(report.code).toBe(6);
    const result = JSON.parse(report.stdout) as { problems: Array<{ kind: string; reason: string }> };
    expect(result.problems).toHaveLength(1);
    expect(result.problems[0]!.kind).toBe('package');
    expect(result.problems[0]!.reason).toContain('lib/extra.a');
  });
});

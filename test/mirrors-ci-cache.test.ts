import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeDispatchers } from '../src/registry/http.js';
import { ocipkg, ocipkgLink, tempDir, type RunResult } from './helpers/cli.js';
import { debianPrefix, LZ4_PROGRAM, writeProgram } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { expectStoreVerified } from './helpers/store-check.js';

/**
 * The CI recipe the README gives: the store (OCIPKG_DATA_DIR) cached between runs under a key made
 * from ocipkg-lock.json, as actions/cache saves and restores it (a tar of the directory, put back at
 * the same path). A run that restores the cache builds a real program against the locked package
 * with the registry gone: no request can succeed, so the build proves it needs none.
 */
let work: string;
let registry: TestRegistry;
let project: string;
let store: string;

function ok(result: RunResult): string {
  expect(result.code, result.stderr).toBe(0);
  return result.stdout;
}

/** What `hashFiles('ocipkg-lock.json')` stands for in the workflow: a key that changes with the pins. */
const cacheKey = () => `ocipkg-${createHash('sha256').update(readFileSync(join(project, 'ocipkg-lock.json'))).digest('hex')}`;

beforeAll(async () => {
  work = await tempDir('ci-cache');
  registry = await startRegistry();
  const prefix = await debianPrefix(join(work, 'prefix'), 'lz4', ['lz4.h']);
  const archive = join(work, 'lz4.tar');
  ok(await ocipkg(['pack', prefix, archive, '-t', `${registry.host}/acme/lz4:1.9`], { OCIPKG_DATA_DIR: join(work, 'pack-store') }));
  ok(await ocipkg(['push', archive], { OCIPKG_DATA_DIR: join(work, 'pack-store') }));
  project = join(work, 'addon');
  await mkdir(project, { recursive: true });
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'addon', ocipkg: { packages: { lz4: `${registry.host}/acme/lz4:1.9` } } }));
  store = join(work, 'runner', 'ocipkg-store');
});

afterAll(async () => {
  await closeDispatchers();
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('a store cached between CI runs, keyed by the lockfile', () => {
  it('the first run installs and the cache is saved; a later run restores it and builds with the registry gone', async () => {
    const env = { OCIPKG_PROJECT_DIR: project, OCIPKG_DATA_DIR: store };
    // Run 1: cache miss. Install, then save the cache as actions/cache does.
    ok(await ocipkg(['install'], env));
    const key = cacheKey();
    const saved = join(work, 'cache', `${key}.tgz`);
    await mkdir(join(work, 'cache'), { recursive: true });
    execFileSync('tar', ['-czf', saved, '-C', join(work, 'runner'), 'ocipkg-store']);

    // Run 2, a fresh runner: nothing at the store's path, the registry unreachable.
    await rm(join(work, 'runner'), { recursive: true, force: true });
    await closeDispatchers();
    await registry.stop();
    expect(cacheKey()).toBe(key);
    await mkdir(join(work, 'runner'), { recursive: true });
    execFileSync('tar', ['-xzf', saved, '-C', join(work, 'runner')]);
    expectStoreVerified(store);

    ok(await ocipkg(['install', '--frozen-lockfile', '--offline'], { ...env, CI: 'true' }));
    const flags = ok(await ocipkgLink(['--cflags', '--libs', 'lz4'], env)).trim().split(/\s+/);
    const source = await writeProgram(work, LZ4_PROGRAM);
    const program = join(work, 'lz4-demo');
    execFileSync('cc', [source, '-o', program, ...flags]);
    expect(execFileSync(program).toString()).toMatch(/roundtrip ok/);
  });

  it('without the cache (or with a stale key) an offline run fails in one line naming the package', async () => {
    const empty = join(work, 'empty-store');
    const result = await ocipkg(['install', '--frozen-lockfile', '--offline'], { OCIPKG_PROJECT_DIR: project, OCIPKG_DATA_DIR: empty, CI: 'true' });
    expect(result.code).toBe(3);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('acme/lz4');
  });
});

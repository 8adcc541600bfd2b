import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ocipkg, REPO, tempDir } from './helpers/cli.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

const tuning = join(import.meta.dirname, '..', 'dist', 'tuning.js');

/**
 * Peak buffer memory (MiB) of a process that churns through 256 MiB of 64 KiB buffers, each dead as
 * soon as the next is made, reporting each to noteBufferChurn as one extraction does (after
 * `endedBefore` others that ended).
 */
function peakWhileChurning(tuned: boolean, endedBefore = 0): number {
  const script = `
    const { tuneForTransfers, noteBufferChurn, transferHoldsBuffers } = await import(${JSON.stringify(tuning)});
    if (${tuned}) tuneForTransfers();
    transferHoldsBuffers('extraction');
    // Transfers that ended before this one started: their allowances must go with them.
    for (let i = 0; i < ${endedBefore}; i++) transferHoldsBuffers('extraction')();
    let peak = 0;
    for (let i = 0; i < 4096; i++) {
      const chunk = Buffer.allocUnsafe(65536);
      chunk[0] = i;
      noteBufferChurn(chunk.length);
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    }
    process.stdout.write(String(peak / 1048576));`;
  return Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
}

/**
 * Collections a tuned process asks for while it churns through 64 MiB of 64 KiB buffers reported to
 * noteBufferChurn by two extractions, with `aliveMiB` of buffers held alive throughout (several
 * transfers at once).
 */
function collectionsWhileChurning(aliveMiB: number): number {
  const script = `
    const { PerformanceObserver } = await import('node:perf_hooks');
    const { tuneForTransfers, noteBufferChurn, transferHoldsBuffers } = await import(${JSON.stringify(tuning)});
    tuneForTransfers();
    transferHoldsBuffers('extraction');
    transferHoldsBuffers('extraction');
    const alive = Array.from({ length: ${aliveMiB} }, () => Buffer.alloc(1 << 20, 1));
    let collections = 0;
    const observer = new PerformanceObserver((list) => (collections += list.getEntries().length));
    observer.observe({ entryTypes: ['gc'] });
    for (let i = 0; i < 1024; i++) {
      const chunk = Buffer.allocUnsafe(65536);
      chunk[0] = i;
      noteBufferChurn(chunk.length);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    observer.disconnect();
    // Still referenced here, so alive all along.
    if (alive.some((buffer) => buffer[0] !== 1)) throw new Error('the live buffers changed');
    process.stdout.write(String(collections));`;
  return Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
}

describe('buffer collection during transfers', () => {
  it('does not collect at every look when more than the limit is alive (an install of several packages)', () => {
    // 64 MiB looked at every MiB: collecting at every look over the limit would be ~64 collections.
    const crowded = collectionsWhileChurning(12);
    expect(crowded).toBeGreaterThan(4);
    expect(crowded).toBeLessThanOrEqual(20);
  });

  it("keeps dead buffers near an extraction's 4 MiB allowance once a CLI tuned the process, where V8 alone lets them pile up", () => {
    const tuned = peakWhileChurning(true);
    const untuned = peakWhileChurning(false);
    // The allowance, the half of it a collection waits for after the last one, and one look's MiB.
    expect(tuned).toBeLessThan(4 + 2 + 1);
    // V8 alone: ~32 MiB here.
    expect(untuned).toBeGreaterThan(20);
  });

  it('tolerates only the allowances of the transfers still in flight', () => {
    // Three ended extractions' allowances kept would let 16 MiB pile up.
    expect(peakWhileChurning(true, 3)).toBeLessThan(4 + 2 + 1);
  });
});

/**
 * Node compiles its builtins with a code cache of its own, which V8 rejects once its flags differ
 * from the ones it was made under: a builtin loaded after tuneForTransfers changed them compiles
 * from source. A cold get and a push load every builtin they use before. And libuv's pool, where
 * inflating and file writes run, is sized before it starts.
 */
describe("a CLI's process during transfers", () => {
  let registry: TestRegistry;
  let work: string;
  let archive: string;

  beforeAll(async () => {
    registry = await startRegistry();
    work = await tempDir('tuning');
    const prefix = join(work, 'prefix');
    mkdirSync(join(prefix, 'include'), { recursive: true });
    mkdirSync(join(prefix, 'lib'));
    writeFileSync(join(prefix, 'include', 'tuned.h'), 'int tuned(void);\n');
    writeFileSync(join(prefix, 'lib', 'libtuned.a'), Buffer.alloc(1 << 20, 7));
    archive = join(work, 'tuned.tar');
    expect((await ocipkg(['pack', prefix, archive, '-t', `${registry.host}/tuning/tuned:1`])).code).toBe(0);
  });
  afterAll(async () => {
    await registry.stop();
    rmSync(work, { recursive: true, force: true });
  });

  /** What the preloaded test/fixtures/`fixture` wrote at the exit of `ocipkg args`, run with a store of its own. */
  const reportOf = async (fixture: string, args: string[], store: string, env: NodeJS.ProcessEnv = {}) => {
    const report = join(work, `${store}.report`);
    const result = await ocipkg(args, {
      OCIPKG_DATA_DIR: join(work, store),
      OCIPKG_TEST_REPORT: report,
      NODE_OPTIONS: `-r ${join(REPO, 'test', 'fixtures', fixture)}`,
      ...env,
    });
    expect(result.code, result.stderr).toBe(0);
    return readFileSync(report, 'utf8');
  };

  it("sizes libuv's pool to the cores the main thread leaves and a thread per package an install fetches at once, unless UV_THREADPOOL_SIZE says otherwise", async () => {
    const get = async (store: string, pool: string | undefined) =>
      JSON.parse(await reportOf('threads-at-exit.cjs', ['get', `${registry.host}/tuning/tuned:1`], store, { UV_THREADPOOL_SIZE: pool })) as { threads: number; pool: string | null };
    expect((await ocipkg(['push', archive])).code).toBe(0);
    const expected = Math.min(4, Math.max(1, availableParallelism() - 1));
    const sized = await get('store-sized', undefined);
    const told = await get('store-told', '4');
    expect(sized.pool).toBe(String(expected));
    expect(told.pool).toBe('4');
    // The same process but for the pool: the difference is the threads the pool did not start.
    expect(told.threads - sized.threads).toBe(4 - expected);
    // An install fetches packages side by side, each inflating on a thread of its own.
    const project = join(work, 'pool-project');
    mkdirSync(project, { recursive: true });
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'pool', private: true, ocipkg: { packages: { tuned: `${registry.host}/tuning/tuned:1` } } }));
    const install = JSON.parse(await reportOf('threads-at-exit.cjs', ['install'], 'store-install', { OCIPKG_PROJECT_DIR: project })) as { pool: string | null };
    expect(install.pool).toBe(String(Math.min(4, Math.max(2, availableParallelism()))));
  });

  it('loads every builtin it uses before the V8 flags change, in a push and in a cold get', async () => {
    const builtinsAfterFlags = async (args: string[]) => (await reportOf('builtins-after-flags.cjs', args, `store-${args[0]}`)).trim().split('\n');
    expect(await builtinsAfterFlags(['push', archive])).toEqual(['flags set']);
    expect(await builtinsAfterFlags(['get', `${registry.host}/tuning/tuned:1`])).toEqual(['flags set']);
  });
});

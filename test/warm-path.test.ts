import { spawnSync } from 'node:child_process';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { ocipkg, ocipkgLink, REPO, tempDir } from './helpers/cli.js';

/**
 * The warm path (package already in the store) loads neither the HTTP nor the tar stack, nor
 * anything of the cold path: `ocipkg-link` runs once per build step. Every module the ES loader
 * resolves is recorded by a preloaded hook; the cold run shows the hook sees the cold path.
 */
let work: string;
let layout: string;

async function importsOf(args: string[], store: string): Promise<string[]> {
  const log = join(work, `imports-${Math.random().toString(36).slice(2)}.log`);
  await writeFile(log, '');
  const result = await ocipkgLink(args, {
    OCIPKG_DATA_DIR: store,
    OCIPKG_TEST_IMPORT_LOG: log,
    NODE_OPTIONS: `--import=${pathToFileURL(join(REPO, 'test', 'fixtures', 'record-imports.mjs')).href}`,
  });
  expect(result.code, result.stderr).toBe(0);
  return (await readFile(log, 'utf8')).split('\n').filter((line) => line !== '' && !line.includes('record-imports.mjs'));
}

// The HTTP and tar stacks, and the progress display (cli-progress), load only when something moves.
// The `ocipkg` CLI's bundle carries the cold path.
const heavy = (urls: string[]) => urls.filter((url) => /node_modules\/(undici|tar|cli-progress)\/|\/dist\/(bundle\/ocipkg\.cjs|cold-path|fetch|progress|registry\/|fs\/extract)|^require:(undici|tar|cli-progress)$/.test(url));

beforeAll(async () => {
  work = await tempDir('warm-path');
  const prefix = join(work, 'prefix');
  await mkdir(join(prefix, 'include'), { recursive: true });
  await mkdir(join(prefix, 'lib'));
  await writeFile(join(prefix, 'include', 'warm.h'), 'int warm(void);\n');
  await writeFile(join(prefix, 'lib', 'libwarm.a'), '!<arch>\n');
  await writeFile(join(work, 'package.json'), '{ "name": "warm", "private": true }\n');
  const archive = join(work, 'warm.tar');
  expect((await ocipkg(['pack', prefix, archive, '-t', 'localhost/acme/warm:1'])).code).toBe(0);
  layout = join(work, 'layout');
  expect((await ocipkg(['push', archive, `oci:${layout}:1`])).code).toBe(0);
});

describe('the warm path', () => {
  it('loads nothing of the cold path once the package is in the store', async () => {
    const store = join(work, 'store');
    const image = `oci:${layout}:1`;
    const cold = await importsOf(['--cflags', '--libs', image], store);
    // The hook sees the cold path when it runs: fetching from the layout loads the `ocipkg`
    // CLI's bundle, which carries tar.
    expect(heavy(cold).some((url) => url.endsWith('/dist/bundle/ocipkg.cjs'))).toBe(true);

    const warm = await importsOf(['--cflags', '--libs', image], store);
    // The hook sees the warm path too: the bin, its loader, the bundle it compiles, and what they require.
    expect(warm.some((url) => url.endsWith('/bin/ocipkg-link.cjs'))).toBe(true);
    expect(warm.some((url) => url === `bundle:${join(REPO, 'dist', 'bundle', 'ocipkg-link.cjs')}`)).toBe(true);
    expect(warm).toContain('require:node:vm');
    expect(heavy(warm)).toEqual([]);
    // Builtins only: the bundle carries the rest of the warm path itself.
    const ours = (url: string) => url.endsWith('/bin/ocipkg-link.cjs') || url.endsWith('/dist/cjs/bundles.cjs');
    expect(warm.filter((url) => url.startsWith('require:') && !url.startsWith('require:node:') && !ours(url))).toEqual([]);
    // The search paths come from the store alone too.
    expect(heavy(await importsOf(['--pkg-config-path', image], store))).toEqual([]);
    expect(heavy(await importsOf(['--cmake-prefix-path', image], store))).toEqual([]);
    await rm(store, { recursive: true, force: true });
  });

  it('serves the CommonJS API in-process from the store, and through the CLI when the store misses', async () => {
    const store = join(work, 'store-cjs');
    const image = `oci:${layout}:1`;
    const consumer = join(work, 'consumer');
    await mkdir(join(consumer, 'node_modules'), { recursive: true });
    await symlink(REPO, join(consumer, 'node_modules', 'ocipkg'), 'dir').catch(() => undefined);
    // binding.gyp's form; at exit, whether the process ever loaded child_process (to spawn the CLI).
    const script = `process.on('exit', () => process.stderr.write(String(process.moduleLoadList.includes('NativeModule child_process'))));
      process.stdout.write(require('ocipkg').libraries(${JSON.stringify(image)}));`;
    const api = () => spawnSync(process.execPath, ['-e', script], { cwd: consumer, env: { ...process.env, OCIPKG_DATA_DIR: store }, encoding: 'utf8' });
    const cold = api();
    expect(cold.status, cold.stderr).toBe(0);
    expect(cold.stderr).toBe('true');
    const warm = api();
    expect(warm.status, warm.stderr).toBe(0);
    expect(warm.stderr).toBe('false');
    expect(warm.stdout).toBe(cold.stdout);
    expect(warm.stdout).toMatch(/\/lib\/libwarm\.a/);
    // The same line as the CLI prints.
    const cli = await ocipkgLink(['--libs', image], { OCIPKG_DATA_DIR: store });
    expect(warm.stdout).toBe(cli.stdout.trim());
    await rm(store, { recursive: true, force: true });
  });
});

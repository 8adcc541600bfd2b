import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OCIPKG, OCIPKG_LINK, ocipkg, ocipkgLink, tempDir } from './helpers/cli.js';
import { runInPty } from './helpers/pty.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

/**
 * Transfer progress as users see it, through the installed bins: a live line per blob on a
 * terminal (a pty), one line per large blob elsewhere (a pipe, as in CI or CMake's output), and
 * nothing under --quiet. The package holds 6 MiB of random bytes, so its layer is over the 4 MiB
 * a line off a terminal needs.
 */
let registry: TestRegistry;
let work: string;
let archive: string;
let image: string;
let layer: string;

beforeAll(async () => {
  registry = await startRegistry();
  work = await tempDir('progress');
  const prefix = join(work, 'prefix');
  await mkdir(join(prefix, 'include'), { recursive: true });
  await mkdir(join(prefix, 'share'), { recursive: true });
  await writeFile(join(prefix, 'include', 'big.h'), '#define BIG 1\n');
  await writeFile(join(prefix, 'share', 'data.bin'), randomBytes(6 << 20));
  archive = join(work, 'big.tar');
  image = `${registry.host}/acme/big:1`;
  const packed = await ocipkg(['pack', prefix, archive, '-t', image, '--json']);
  expect(packed.code, packed.stderr).toBe(0);
  layer = (JSON.parse(packed.stdout) as { layer: { digest: string } }).layer.digest;
});

afterAll(async () => {
  await registry?.stop();
});

const offTerminalLine = (verb: string) => new RegExp(`^${verb} ${layer}: 6\\.0 MiB in \\d+\\.\\d s \\(\\d+\\.\\d [KMG]iB/s\\)$`, 'm');

describe('progress off a terminal', () => {
  it('push, get, the cold path of ocipkg-link, publish and install print one line per large blob, with size and rate', async () => {
    const pushed = await ocipkg(['push', archive]);
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.stderr).toMatch(offTerminalLine('pushing'));
    const got = await ocipkg(['get', image], { OCIPKG_DATA_DIR: await tempDir('store') });
    expect(got.code, got.stderr).toBe(0);
    expect(got.stderr).toMatch(offTerminalLine('fetching'));
    // stdout stays the result alone.
    expect(got.stdout).toMatch(/^\/.*\/root\n$/);
    const linked = await ocipkgLink(['--cflags', image], { OCIPKG_DATA_DIR: await tempDir('store') });
    expect(linked.code, linked.stderr).toBe(0);
    expect(linked.stderr).toMatch(offTerminalLine('fetching'));
    expect(linked.stdout).toMatch(/^-I\S+\/include\n$/);

    // A store of its own: one that knows the blob is in acme/big would mount it instead of uploading.
    const published = await ocipkg(['publish', `${registry.host}/acme/big-index:1`, '--target', `x86_64-unknown-linux-gnu=${archive}`], { OCIPKG_DATA_DIR: await tempDir('store') });
    expect(published.code, published.stderr).toBe(0);
    expect(published.stderr).toMatch(offTerminalLine('pushing'));
    const project = join(work, 'project');
    await mkdir(project, { recursive: true });
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'addon', ocipkg: { packages: { big: image } } }));
    const installed = await ocipkg(['install'], { OCIPKG_DATA_DIR: await tempDir('store'), OCIPKG_PROJECT_DIR: project, CI: '' });
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.stderr).toMatch(offTerminalLine('fetching'));
  });

  it('--quiet silences it, before or after the command', async () => {
    for (const args of [['-q', 'get', image], ['get', image, '--quiet']]) {
      const got = await ocipkg(args, { OCIPKG_DATA_DIR: await tempDir('store') });
      expect(got.code, got.stderr).toBe(0);
      expect(got.stderr).toBe('');
    }
    const linked = await ocipkgLink(['--quiet', '--cflags', image], { OCIPKG_DATA_DIR: await tempDir('store') });
    expect(linked.stderr).toBe('');
  });

  it('small blobs add no lines, and a warm get prints nothing', async () => {
    const store = await tempDir('store');
    expect((await ocipkg(['get', image], { OCIPKG_DATA_DIR: store })).code).toBe(0);
    const warm = await ocipkg(['get', image], { OCIPKG_DATA_DIR: store });
    expect(warm.stderr).toBe('');
  });
});

describe('progress on a terminal', () => {
  /** A live line: the blob, a bar, bytes of the total, a rate and an ETA. */
  const live = (verb: string) => new RegExp(`${verb} ${layer.slice(7, 19)} \\[[=-]+\\] [\\d.]+ [KMG]?i?B / 6\\.0 MiB {2}[\\d.]+ [KMG]?i?B/s {2}ETA \\d+s`);

  it('get, push and ocipkg-link draw a live line per transfer; --quiet draws none', async () => {
    const env = { OCIPKG_DATA_DIR: await tempDir('store') };
    const got = await runInPty([process.execPath, OCIPKG, 'get', image], env);
    expect(got.code, got.screen).toBe(0);
    expect(got.screen).toMatch(live('fetching'));
    expect(got.screen).toMatch(/fetching .*6\.0 MiB \/ 6\.0 MiB/);

    const other = `${registry.host}/acme/big-copy:1`;
    const pushed = await runInPty([process.execPath, OCIPKG, 'push', archive, other], { OCIPKG_DATA_DIR: await tempDir('store') });
    expect(pushed.code, pushed.screen).toBe(0);
    expect(pushed.screen).toMatch(live('pushing'));
    // The per-blob lines say how big each blob is.
    expect(pushed.screen).toMatch(new RegExp(`pushed {2}${layer} application/vnd\\.ocipkg\\.v1\\.layer\\.tar\\+gzip \\(6\\.0 MiB\\)`));

    const linked = await runInPty([process.execPath, OCIPKG_LINK, '--cflags', image], { OCIPKG_DATA_DIR: await tempDir('store') });
    expect(linked.code, linked.screen).toBe(0);
    expect(linked.screen).toMatch(live('fetching'));

    const quiet = await runInPty([process.execPath, OCIPKG, '--quiet', 'get', image], { OCIPKG_DATA_DIR: await tempDir('store') });
    expect(quiet.code, quiet.screen).toBe(0);
    expect(quiet.screen).not.toMatch(/fetching|resolving/);
    expect(quiet.screen.trim()).toMatch(/^\/\S+\/root$/);
  });
});

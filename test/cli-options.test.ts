import { join } from 'node:path';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ocipkg, ocipkgLink, tempDir } from './helpers/cli.js';
import { debianPrefix } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

/** Options, help and versions as users of git, npm and docker type them, through the installed bin. */
let registry: TestRegistry;
let work: string;
let image: string;
let archive: string;

beforeAll(async () => {
  registry = await startRegistry();
  work = await tempDir('options');
  archive = join(work, 'lz4.tar');
  image = `${registry.host}/acme/lz4:1`;
  const prefix = await debianPrefix(join(work, 'prefix'), 'lz4', ['lz4.h']);
  expect((await ocipkg(['pack', prefix, archive, '-t', image])).code).toBe(0);
  expect((await ocipkg(['push', archive])).code).toBe(0);
});

afterAll(async () => {
  await registry?.stop();
});

const version = async () => (JSON.parse(await readFile(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;

describe('options and help', () => {
  it('global options work before or after the command', async () => {
    const store = await tempDir('store');
    for (const args of [['--verbose', 'get', image], ['get', image, '--verbose'], ['-q', 'get', image], ['get', '--quiet', image]]) {
      const result = await ocipkg(args, { OCIPKG_DATA_DIR: store });
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
      expect(result.stdout).toMatch(/\/root\n$/);
    }
    // --verbose before the command still gives the stack of a failure.
    const failed = await ocipkg(['--verbose', 'get', `${registry.host}/acme/lz4:nope`], { OCIPKG_DATA_DIR: store });
    expect(failed.code).toBe(3);
    expect(failed.stderr).toMatch(/\n\s+at /);
  });

  it('`help CMD` prints the command\'s help, as `CMD --help` does', async () => {
    const help = await ocipkg(['help', 'get']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: ocipkg get IMAGE/);
    expect(help.stdout).toBe((await ocipkg(['get', '--help'])).stdout);
    expect((await ocipkg(['help'])).stdout).toMatch(/^usage: ocipkg \[global options\] <command>/);
    const unknown = await ocipkg(['help', 'gte']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "gte" \(did you mean "get"\?\)/);
  });

  it('-v, --version and version print the version', async () => {
    for (const args of [['-v'], ['--version'], ['version']]) {
      const result = await ocipkg(args);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(`${await version()}\n`);
    }
    // A command's own --version (package metadata on pack and publish) is still the command's.
    expect((await ocipkg(['pack', '--help'])).stdout).toMatch(/--version VERSION/);
  });

  it('unknown commands and options suggest the nearest one', async () => {
    const command = await ocipkg(['instal']);
    expect(command.code).toBe(2);
    expect(command.stderr).toBe('ocipkg: unknown command "instal" (did you mean "install"?) (run `ocipkg --help` for the list)\n');
    const flag = await ocipkg(['get', '--forse', image]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toBe("ocipkg: get: Unknown option '--forse' (did you mean '--force'?)\n");
    const global = await ocipkg(['--verbos', 'get', image]);
    expect(global.stderr).toMatch(/unknown global option '--verbos' \(did you mean '--verbose'\?\)/);
    const link = await ocipkgLink(['--cflag', image]);
    expect(link.code).toBe(1);
    expect(link.stderr).toMatch(/Unknown option '--cflag' \(did you mean '--cflags'\?\)/);
    // Nothing near: no suggestion.
    expect((await ocipkg(['frobnicate'])).stderr).not.toMatch(/did you mean/);
  });

  it('bare `ocipkg` prints the help on stderr and exits 1', async () => {
    const result = await ocipkg([]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^usage: ocipkg/);
    expect(result.stderr).toMatch(/exit status:\n {2}0 {2}success/);
  });

  it('`update --offline` moves pins to what the store last saw, without the network', async () => {
    const project = join(work, 'project');
    await mkdir(project, { recursive: true });
    const moving = `${registry.host}/acme/moving:1`;
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'addon', ocipkg: { packages: { lz4: moving } } }));
    const store = await tempDir('store');
    const env = { OCIPKG_DATA_DIR: store, OCIPKG_PROJECT_DIR: project, CI: '' };
    const prefix = join(work, 'prefix');
    const push = async (version: string) => {
      const out = join(work, `moving-${version}.tar`);
      expect((await ocipkg(['pack', prefix, out, '-t', moving, '--version', version])).code).toBe(0);
      return (await ocipkg(['push', out])).stdout.trim().split('@')[1]!;
    };
    const first = await push('1.0');
    expect((await ocipkg(['install'], env)).code).toBe(0);
    const second = await push('1.1');
    // The store saw `second` (a get with network); the lockfile still pins `first`.
    expect((await ocipkg(['get', moving], { ...env, OCIPKG_PROJECT_DIR: work })).code).toBe(0);
    const lockOf = async () => (JSON.parse(await readFile(join(project, 'ocipkg-lock.json'), 'utf8')) as { packages: Record<string, { digest: string }> }).packages[moving]!.digest;
    expect(await lockOf()).toBe(first);
    await push('1.2');
    const updated = await ocipkg(["update", "--offline"], env);
    expect(updated.code, updated.stderr).toBe(0);
    // What the store recorded, not what the registry says now: no network was asked.
    expect(await lockOf()).toBe(second);
  });
});

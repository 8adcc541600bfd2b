import { existsSync, statSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_STATUSES } from '../src/errors.js';
import { LayoutDirectory } from '../src/layout/directory.js';
import { ocipkg, ocipkgLink, tempDir, type RunResult } from './helpers/cli.js';
import { htpasswdConfig, writeHtpasswd } from './helpers/htpasswd.js';
import { buildImage, writeImage } from './helpers/layers.js';
import { debianPrefix } from './helpers/prefix.js';
import { freePort, startRegistry, type TestRegistry } from './helpers/registry.js';

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

describe('results scripts can parse', () => {
  const json = (result: RunResult): unknown => {
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout);
  };

  it('--json gives one JSON value on stdout for every command with a result', async () => {
    const store = await tempDir('store');
    const env = { OCIPKG_DATA_DIR: store };
    const out = join(work, 'json.tar');
    const packed = json(await ocipkg(['pack', join(work, 'prefix'), out, '-t', `${registry.host}/acme/json:1`, '--json'])) as Record<string, unknown>;
    expect(packed).toMatchObject({ archive: out, reference: `${registry.host}/acme/json:1`, target: 'x86_64-unknown-linux-gnu' });
    const pushed = json(await ocipkg(['push', out, '--json'])) as Record<string, unknown>;
    expect(pushed).toMatchObject({ reference: `${registry.host}/acme/json@${packed.manifestDigest}`, tagged: `${registry.host}/acme/json:1`, digest: packed.manifestDigest });
    const got = json(await ocipkg(['get', `${registry.host}/acme/json:1`, '--json'], env)) as Record<string, unknown>;
    expect(got).toMatchObject({ manifestDigest: packed.manifestDigest, target: 'x86_64-unknown-linux-gnu', name: 'json' });
    expect(json(await ocipkg(['--json', 'image-directory', `${registry.host}/acme/json:1`], env))).toEqual(got);
    const loaded = json(await ocipkg(['load', out, '--json'], env)) as Record<string, unknown>;
    expect(loaded).toMatchObject({ manifestDigest: packed.manifestDigest, replaced: null });
    expect(json(await ocipkg(['list', '--json'], env))).toHaveLength(1);
    expect(json(await ocipkg(['inspect', out, '--json']))).toMatchObject({ reference: `${registry.host}/acme/json:1` });
    expect(json(await ocipkg(['tags', `${registry.host}/acme/json`, '--json']))).toEqual({ repository: `${registry.host}/acme/json`, tags: ['1'] });
    expect(json(await ocipkg(['store', 'verify', '--json'], env))).toMatchObject({ problems: [] });

    const project = join(work, 'json-project');
    await mkdir(project, { recursive: true });
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'addon', ocipkg: { packages: { lz4: image } } }));
    const installed = json(await ocipkg(['install', '--json'], { ...env, OCIPKG_PROJECT_DIR: project, CI: '' })) as Record<string, unknown>;
    expect(installed).toMatchObject({ lockfile: join(project, 'ocipkg-lock.json'), written: true, drifted: [] });
    expect(Object.keys(installed.packages as object)).toEqual([image]);
    expect(json(await ocipkg(['update', '--json'], { ...env, OCIPKG_PROJECT_DIR: project, CI: '' }))).toMatchObject({ written: false });
  });

  it('exit statuses tell usage, not found, unreachable, authentication, integrity and policy apart', async () => {
    const store = await tempDir('store');
    const env = { OCIPKG_DATA_DIR: store, OCIPKG_RETRY_BASE_MS: '1' };
    expect((await ocipkg(['get'], env)).code).toBe(2);
    expect((await ocipkg(['get', 'Bad/Ref'], env)).code).toBe(2);
    expect((await ocipkg(['get', `${registry.host}/acme/lz4:nope`], env)).code).toBe(3);
    expect((await ocipkg(['get', image, '--target', 'riscv64gc-unknown-linux-gnu'], env)).code).toBe(3);
    expect((await ocipkg(['get', `127.0.0.1:${await freePort()}/acme/lz4:1`], env)).code).toBe(4);

    const htpasswd = join(work, 'htpasswd');
    await writeHtpasswd(htpasswd, { alice: 'secret' });
    const locked = await startRegistry({ extraConfig: htpasswdConfig(htpasswd) });
    try {
      const config = await tempDir('config');
      expect((await ocipkg(['get', `${locked.host}/acme/lz4:1`], { ...env, OCIPKG_CONFIG_DIR: config, DOCKER_CONFIG: config, REGISTRY_AUTH_FILE: undefined, XDG_RUNTIME_DIR: undefined })).code).toBe(5);
    } finally {
      await locked.stop();
    }

    // A layout whose layer's bytes do not match the digest its manifest names.
    const layout = await tempDir('layout');
    await writeImage(new LayoutDirectory(layout), buildImage([[{ path: 'include/x.h', body: '// x\n' }]]), 'v1');
    const blobs = join(layout, 'blobs', 'sha256');
    const largest = (await readdir(blobs)).map((hex) => join(blobs, hex)).sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
    const bytes = await readFile(largest);
    bytes[bytes.length >> 1] ^= 0xff;
    await chmod(largest, 0o644);
    await writeFile(largest, bytes);
    expect((await ocipkg(['get', `oci:${layout}:v1`], env)).code).toBe(6);

    const project = join(work, 'frozen');
    await mkdir(project, { recursive: true });
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'addon', ocipkg: { packages: { lz4: image } } }));
    expect((await ocipkg(['install', '--frozen-lockfile'], { ...env, OCIPKG_PROJECT_DIR: project })).code).toBe(7);
  });

  it('the exit statuses in --help are the table in the README', async () => {
    const help = (await ocipkg(['--help'])).stdout;
    const readme = await readFile(join(import.meta.dirname, '..', 'README.md'), 'utf8');
    for (const row of EXIT_STATUSES) {
      expect(help).toContain(`  ${row.status}  ${row.meaning}`);
      expect(readme).toContain(`| ${row.status} | ${row.meaning} | ${row.codes.map((c) => `\`${c}\``).join(', ')} |`);
    }
  });
});

describe('package.json mistakes are refused', () => {
  const project = async (name: string, section: unknown) => {
    const dir = join(work, name);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name, ocipkg: section }));
    return dir;
  };

  it('an unknown key names its path and the key it was probably meant to be', async () => {
    const dir = await project('typo', { pakages: { lz4: image } });
    const result = await ocipkg(['install'], { OCIPKG_PROJECT_DIR: dir, OCIPKG_DATA_DIR: await tempDir('store') });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`ocipkg: ${join(dir, 'package.json')}: "ocipkg.pakages" is not a key ocipkg reads (did you mean "ocipkg.packages"?)\n`);
    expect(existsSync(join(dir, 'ocipkg-lock.json'))).toBe(false);
    const nested = await project('nested', { packages: { lz4: { image, linkge: 'shared' } } });
    expect((await ocipkgLink(['--cflags', 'lz4'], { OCIPKG_PROJECT_DIR: nested })).stderr).toMatch(/"ocipkg\.packages\.lz4\.linkge" is not a key ocipkg reads \(did you mean "ocipkg\.packages\.lz4\.linkage"\?\)/);
  });

  it('a package declared outside "packages" is pointed there', async () => {
    const dir = await project('misplaced', { lz4: image });
    const result = await ocipkg(['install'], { OCIPKG_PROJECT_DIR: dir });
    expect(result.stderr).toMatch(/"ocipkg\.lz4" is not a key ocipkg reads \(packages go under "ocipkg\.packages": "ocipkg\.packages\.lz4"\)/);
  });

  it('an alias typo lists the declared packages instead of going to Docker Hub', async () => {
    const dir = await project('aliases', { packages: { lz4: image, zstd: `${registry.host}/acme/zstd:1` } });
    const link = await ocipkgLink(['--cflags', 'lz44'], { OCIPKG_PROJECT_DIR: dir, OCIPKG_DATA_DIR: await tempDir('store') });
    expect(link.code).toBe(1);
    expect(link.stderr).toMatch(/"lz44" is not a package declared in .*package\.json \(did you mean "lz4"\?\) \(declared: lz4, zstd\); for Docker Hub's image write docker\.io\/library\/lz44/);
    expect(link.stderr).not.toMatch(/docker\.io\/library\/lz44:latest|registry-1/);
    const get = await ocipkg(['get', 'lz44'], { OCIPKG_PROJECT_DIR: dir });
    expect(get.code).toBe(2);
  });
});

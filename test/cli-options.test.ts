import { existsSync, lstatSync, realpathSync, statSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { basename, join } from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_STATUSES } from '../src/errors.js';
import { LayoutDirectory } from '../src/layout/directory.js';
import { OCIPKG, ocipkg, ocipkgLink, tempDir, type RunResult } from './helpers/cli.js';
import { startConnectProxy } from './helpers/connect-proxy.js';
import { runInPty } from './helpers/pty.js';
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
    // --json is one JSON value, as every other command's; help's own --help is the help.
    expect(JSON.parse((await ocipkg(['version', '--json'])).stdout)).toEqual({ version: await version() });
    expect((await ocipkg(['help', '--help'])).stdout).toBe((await ocipkg(['--help'])).stdout);
  });

  it('inspect of a path that is not there says the archive is missing, not that the reference is bad', async () => {
    const result = await ocipkg(['inspect', '/nonexistent/package.tar']);
    expect([result.code, result.stderr]).toEqual([1, 'ocipkg: /nonexistent/package.tar: no such archive file\n']);
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

describe('shapes people already type', () => {
  it('docker:// and oci-archive: prefixes, as skopeo writes them', async () => {
    const store = await tempDir('store');
    const pushed = await ocipkg(['push', `oci-archive:${archive}`, `docker://${registry.host}/acme/prefixed:1`]);
    expect(pushed.code, pushed.stderr).toBe(0);
    const got = await ocipkg(['get', `docker://${registry.host}/acme/prefixed:1`], { OCIPKG_DATA_DIR: store });
    expect(got.code, got.stderr).toBe(0);
    expect(existsSync(join(got.stdout.trim(), 'lib', 'liblz4.a'))).toBe(true);
    expect((await ocipkg(['load', `oci-archive:${archive}`], { OCIPKG_DATA_DIR: store })).code).toBe(0);
    expect(JSON.parse((await ocipkg(['inspect', `oci-archive:${archive}`])).stdout)).toMatchObject({ reference: image });
    const wrong = await ocipkg(['get', `oci-archive:${archive}`], { OCIPKG_DATA_DIR: store });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/an oci-archive is a file: `ocipkg load ARCHIVE`/);
  });

  it('--plain-http and --tls-verify=false speak HTTP to the registry named, for this command only', async () => {
    const name = 'plain.ocipkg.test';
    const proxy = await startConnectProxy({ [name]: '127.0.0.1' });
    try {
      const named = `${name}:${registry.host.split(':')[1]}/acme/lz4:1`;
      const env = { HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url, OCIPKG_DATA_DIR: await tempDir('store'), OCIPKG_INSECURE_REGISTRIES: undefined, OCIPKG_RETRY_BASE_MS: '1' };
      // HTTPS by default: a plain-HTTP registry answers no TLS handshake.
      const refused = await ocipkg(['get', named], env);
      expect(refused.code).not.toBe(0);
      for (const flag of ['--plain-http', '--tls-verify=false']) {
        const result = await ocipkg([flag, 'get', '-f', named], env);
        expect(result.code, result.stderr).toBe(0);
        expect(existsSync(join(result.stdout.trim(), 'lib', 'liblz4.a'))).toBe(true);
      }
      expect((await ocipkg(['get', '-f', named], env)).code).not.toBe(0);
    } finally {
      await proxy.stop();
    }
  });

  it('`tags REPOSITORY` lists the tags, of a registry or a layout', async () => {
    const repo = `${registry.host}/acme/tagged`;
    for (const tag of ['1.0', '1.1', 'latest']) expect((await ocipkg(['push', archive, `${repo}:${tag}`])).code).toBe(0);
    const listed = await ocipkg(['tags', repo]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout.trim().split('\n').sort()).toEqual(['1.0', '1.1', 'latest']);
    const layout = await tempDir('layout');
    expect((await ocipkg(['push', archive, `oci:${layout}:v2`])).code).toBe(0);
    expect((await ocipkg(['tags', `oci:${layout}`])).stdout).toBe('v2\n');
    const tagged = await ocipkg(['tags', `${repo}:1.0`]);
    expect(tagged.code).toBe(2);
    expect(tagged.stderr).toMatch(/names a tag; give the repository alone/);
  });

  it('`inspect --target` shows the build of one target from an index', async () => {
    const multi = `${registry.host}/acme/multi:1`;
    const published = await ocipkg(['publish', multi, '--target', `x86_64-unknown-linux-gnu=${archive}`]);
    expect(published.code, published.stderr).toBe(0);
    const index = JSON.parse((await ocipkg(['inspect', multi])).stdout) as { index?: unknown };
    expect(index.index).toBeDefined();
    const one = JSON.parse((await ocipkg(['inspect', multi, '--target', 'x86_64-unknown-linux-gnu'])).stdout) as Record<string, unknown>;
    expect(one).toMatchObject({ target: 'x86_64-unknown-linux-gnu', config: { package: { target: 'x86_64-unknown-linux-gnu' } } });
    expect(one.manifest).toBeDefined();
    const missing = await ocipkg(['inspect', multi, '--target', 'aarch64-apple-darwin']);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/available: x86_64-unknown-linux-gnu/);
  });

  it('`add NAME IMAGE` declares the package and locks it; a failed add leaves package.json as it was', async () => {
    const dir = join(work, 'add');
    await mkdir(dir, { recursive: true });
    const original = '{\n    "name": "addon",\n    "version": "1.0.0"\n}\n';
    await writeFile(join(dir, 'package.json'), original);
    const env = { OCIPKG_PROJECT_DIR: dir, OCIPKG_DATA_DIR: await tempDir('store'), CI: '' };
    const added = await ocipkg(['add', 'lz4', image, '--shared'], env);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toBe(`${join(dir, 'ocipkg-lock.json')}\n`);
    const text = await readFile(join(dir, 'package.json'), 'utf8');
    expect(text).toMatch(/^\{\n {4}"name": "addon"/);
    expect(JSON.parse(text)).toEqual({ name: 'addon', version: '1.0.0', ocipkg: { packages: { lz4: { image, linkage: 'shared' } } } });
    const lock = JSON.parse(await readFile(join(dir, 'ocipkg-lock.json'), 'utf8')) as { packages: Record<string, unknown> };
    expect(Object.keys(lock.packages)).toEqual([image]);
    const failed = await ocipkg(['add', 'gone', `${registry.host}/acme/lz4:nope`], env);
    expect(failed.code).toBe(3);
    expect(await readFile(join(dir, 'package.json'), 'utf8')).toBe(text);
  });

  it('`load` of an archive already in the store succeeds and says so', async () => {
    const store = await tempDir('store');
    const first = await ocipkg(['load', archive], { OCIPKG_DATA_DIR: store });
    expect(first.code, first.stderr).toBe(0);
    const again = await ocipkg(['load', archive], { OCIPKG_DATA_DIR: store });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe(first.stdout);
    expect(again.stderr).toMatch(/^ocipkg: loaded .* \(sha256:[0-9a-f]{64}, already in the store\)\n$/);
  });

  it('a missing requirement names the package that requires it', async () => {
    const dir = join(work, 'requires');
    const prefix = await debianPrefix(join(dir, 'prefix'), 'lz4', ['lz4.h']);
    const out = join(dir, 'needs.tar');
    const needing = `${registry.host}/acme/needs:1`;
    expect((await ocipkg(['pack', prefix, out, '-t', needing, '--requires', `${registry.host}/acme/absent:1`])).code).toBe(0);
    expect((await ocipkg(['push', out])).code).toBe(0);
    const result = await ocipkg(['get', needing], { OCIPKG_DATA_DIR: await tempDir('store') });
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(new RegExp(`acme/absent:1.*\\(required by ${needing.replace(/[.]/g, '\\.')}\\)\\n$`));
  });
});

describe('login and logout', () => {
  let locked: TestRegistry;
  let helperDir: string;
  beforeAll(async () => {
    const htpasswd = join(work, 'htpasswd-login');
    await writeHtpasswd(htpasswd, { alice: 'secret' });
    locked = await startRegistry({ extraConfig: htpasswdConfig(htpasswd) });
    // A credential helper speaking docker's protocol, keeping its store in a JSON file.
    helperDir = await tempDir('helper');
    await writeFile(join(helperDir, 'docker-credential-filestore'), `#!/usr/bin/env python3
import json, os, sys
path = os.environ['FILESTORE']
data = json.load(open(path)) if os.path.exists(path) else {}
action, text = sys.argv[1], sys.stdin.read()
if action == 'store':
    entry = json.loads(text); data[entry['ServerURL']] = entry
elif action == 'get':
    if text not in data: print('credentials not found in native keychain'); sys.exit(1)
    print(json.dumps({'ServerURL': text, 'Username': data[text]['Username'], 'Secret': data[text]['Secret']})); sys.exit(0)
elif action == 'erase':
    if text not in data: print('credentials not found in native keychain'); sys.exit(1)
    del data[text]
json.dump(data, open(path, 'w'))
`, { mode: 0o755 });
  });
  afterAll(async () => {
    await locked?.stop();
  });

  const isolated = async () => {
    const dir = await tempDir('login');
    return { dir, env: { OCIPKG_CONFIG_DIR: join(dir, 'config'), DOCKER_CONFIG: join(dir, 'docker'), XDG_RUNTIME_DIR: undefined, REGISTRY_AUTH_FILE: undefined, OCIPKG_DATA_DIR: join(dir, 'store') } };
  };

  it('asks for the user and the password on a terminal, without echoing the password', async () => {
    const { dir, env } = await isolated();
    const result = await runInPty([process.execPath, OCIPKG, 'login', locked.host], env, [{ after: 'Username: ', send: 'alice\r' }, { after: 'Password: ', send: 'secret\r' }]);
    expect(result.code, result.screen).toBe(0);
    expect(result.screen).toMatch(/Login succeeded for /);
    expect(result.screen).not.toContain('secret');
    const auth = JSON.parse(await readFile(join(dir, 'config', 'auth.json'), 'utf8')) as { auths: Record<string, { auth: string }> };
    expect(Buffer.from(auth.auths[locked.host]!.auth, 'base64').toString()).toBe('alice:secret');
    const noTerminal = await ocipkg(['login', locked.host, '-u', 'alice'], env);
    expect(noTerminal.code).toBe(2);
    expect(noTerminal.stderr).toMatch(/no terminal to ask on/);
  });

  it('stores with the credential helper docker\'s config names, and logout erases it; logout twice is fine', async () => {
    const { dir, env } = await isolated();
    await mkdir(join(dir, 'docker'), { recursive: true });
    await writeFile(join(dir, 'docker', 'config.json'), JSON.stringify({ credsStore: 'filestore' }));
    const helperEnv = { ...env, PATH: `${helperDir}:${process.env.PATH}`, FILESTORE: join(dir, 'helper.json') };
    const login = await ocipkg(['login', locked.host, '-u', 'alice', '--password-stdin', '--json'], helperEnv, 'secret\n');
    expect(login.code, login.stderr).toBe(0);
    expect(JSON.parse(login.stdout)).toEqual({ registry: locked.host, username: 'alice', storedIn: `credential helper docker-credential-filestore (configured in ${join(dir, 'docker', 'config.json')})` });
    expect(JSON.parse(await readFile(join(dir, 'helper.json'), 'utf8'))).toEqual({ [locked.host]: { ServerURL: locked.host, Username: 'alice', Secret: 'secret' } });
    expect(existsSync(join(dir, 'config', 'auth.json'))).toBe(false);
    // The helper's credentials are what a pull then uses.
    expect((await ocipkg(['push', archive, `${locked.host}/acme/lz4:1`], helperEnv)).code).toBe(0);
    const logout = await ocipkg(['logout', locked.host], helperEnv);
    expect(logout.code, logout.stderr).toBe(0);
    expect(JSON.parse(await readFile(join(dir, 'helper.json'), 'utf8'))).toEqual({});
    const twice = await ocipkg(['logout', locked.host], helperEnv);
    expect(twice.code, twice.stderr).toBe(0);
    expect(twice.stderr).toBe(`Not logged in to ${locked.host}\n`);
  });

  it('refused credentials name the file they came from', async () => {
    const { dir, env } = await isolated();
    await mkdir(join(dir, 'docker'), { recursive: true });
    const file = join(dir, 'docker', 'config.json');
    await writeFile(file, JSON.stringify({ auths: { [locked.host]: { auth: Buffer.from('alice:stale').toString('base64') } } }));
    const result = await ocipkg(['get', `${locked.host}/acme/lz4:1`], env);
    expect(result.code).toBe(5);
    expect(result.stderr).toBe(`ocipkg: ${locked.host} refused the credentials of user "alice" from ${file}; run \`ocipkg login ${locked.host}\`\n`);
  });
});

describe('a loopback registry that is still starting', () => {
  it('is retried as other requests are, instead of failing at the first refused connection', async () => {
    const port = await freePort();
    const store = await tempDir('store');
    // Nothing listens on `port` until the get is under way (it has printed its first progress
    // line); then a relay to the running registry opens there, as a registry finishing its start.
    const child = spawn(process.execPath, [OCIPKG, 'get', `127.0.0.1:${port}/acme/lz4:1`], {
      env: { ...process.env, OCIPKG_DATA_DIR: store, OCIPKG_PROGRESS: '1', OCIPKG_RETRY_BASE_MS: '2000', OCIPKG_DEBUG: '' },
    });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const started = new Promise<void>((resolve) => child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('resolving')) resolve();
    }));
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    await started;
    const target = Number(registry.host.split(':')[1]);
    const sockets = new Set<Socket>();
    const relay = createServer((socket) => {
      const upstream = connect(target, '127.0.0.1');
      sockets.add(socket).add(upstream);
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(port, '127.0.0.1', resolve));
    try {
      expect(await closed, stderr).toBe(0);
      expect(existsSync(join(stdout.trim(), 'lib', 'liblz4.a'))).toBe(true);
    } finally {
      relay.close();
      for (const socket of sockets) socket.destroy();
    }
  });
});

describe('ocipkg-link --copy-runtime-files', () => {
  it('copies the shared libraries beside the addon as files, not the store\'s symlinks, and writes the stamp', async () => {
    const prefix = join(work, 'shared-prefix');
    await mkdir(join(prefix, 'lib'), { recursive: true });
    await mkdir(join(prefix, 'include'), { recursive: true });
    await copyFile('/usr/include/lz4.h', join(prefix, 'include', 'lz4.h'));
    const real = realpathSync('/usr/lib/x86_64-linux-gnu/liblz4.so.1');
    await copyFile(real, join(prefix, 'lib', basename(real)));
    await symlink(basename(real), join(prefix, 'lib', 'liblz4.so.1'));
    await symlink('liblz4.so.1', join(prefix, 'lib', 'liblz4.so'));
    const out = join(work, 'shared.tar');
    const shared = `${registry.host}/acme/lz4-shared:1`;
    expect((await ocipkg(['pack', prefix, out, '-t', shared])).code).toBe(0);
    expect((await ocipkg(['push', out])).code).toBe(0);
    const dest = join(work, 'Release');
    const env = { OCIPKG_DATA_DIR: await tempDir('store') };
    const copied = await ocipkgLink([`--copy-runtime-files=${dest}`, '--shared', shared], env);
    expect(copied.code, copied.stderr).toBe(0);
    expect(copied.stdout).toBe(`${join(dest, 'liblz4.so.1')}\n`);
    expect(lstatSync(join(dest, 'liblz4.so.1')).isFile()).toBe(true);
    expect(await readFile(join(dest, 'liblz4.so.1'))).toEqual(await readFile(real));
    const runtime = (await ocipkgLink(['--runtime-files', '--shared', shared], env)).stdout.trim();
    expect(await readFile(join(dest, 'ocipkg-runtime.stamp'), 'utf8')).toBe(`${runtime}\n`);
    // Again over the read-only copy: replaced, not refused.
    expect((await ocipkgLink([`--copy-runtime-files=${dest}`, '--shared', shared], env)).code).toBe(0);
  });
});

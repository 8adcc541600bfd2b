import { createReadStream, existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { forgetSession } from '../src/registry/auth.js';
import { RegistryRepository } from '../src/registry/client.js';
import { ocipkg, tempDir, type RunResult } from './helpers/cli.js';
import { codeOf } from './helpers/errors.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { htpasswdConfig, writeHtpasswd } from './helpers/htpasswd.js';
import { debianPrefix } from './helpers/prefix.js';
import { freePort, startRegistry, type TestRegistry } from './helpers/registry.js';
import { startTokenServer, type TokenServer } from './helpers/token-server.js';

/**
 * Authentication end to end, through the CLI where a user would meet it: a registry with htpasswd
 * Basic auth and one with token auth (a real token service signing JWTs, anonymous access refused),
 * token scopes and expiry, blobs redirected to another origin, and secrets kept out of all output.
 */
const USER = 'alice';
const PASSWORD = 'tr0ub4dor&3-secret';
const BASIC = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');

let work: string;
let archive: string;
let basicRegistry: TestRegistry;
let tokenRegistry: TestRegistry;
let tokens: TokenServer;

/** Credentials isolated per test: every source ocipkg consults points into `dir`. */
function env(dir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    OCIPKG_CONFIG_DIR: join(dir, 'config'), DOCKER_CONFIG: join(dir, 'docker'), XDG_RUNTIME_DIR: join(dir, 'run'),
    REGISTRY_AUTH_FILE: undefined, OCIPKG_DATA_DIR: join(dir, 'store'), ...extra,
  };
}

/** Writes ocipkg's auth file for `hosts` directly, as a previous `ocipkg login` would have. */
async function saveLogin(dir: string, hosts: string[], password = PASSWORD): Promise<void> {
  await mkdir(join(dir, 'config'), { recursive: true });
  const auth = Buffer.from(`${USER}:${password}`).toString('base64');
  await writeFile(join(dir, 'config', 'auth.json'), JSON.stringify({ auths: Object.fromEntries(hosts.map((h) => [h, { auth }])) }));
}

function expectInstalled(result: RunResult): void {
  expect(result.code, result.stderr).toBe(0);
  expect(existsSync(join(result.stdout.trim(), 'lib', 'liblz4.a'))).toBe(true);
}

/** One line on stderr naming the registry and the command that fixes it. */
function expectLoginHint(result: RunResult, host: string): void {
  expect(result.code).toBe(5);
  expect(result.stdout).toBe('');
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toContain(`ocipkg login ${host}`);
}

beforeAll(async () => {
  work = await tempDir('auth-flows');
  const htpasswd = join(work, 'htpasswd');
  await writeHtpasswd(htpasswd, { [USER]: PASSWORD });
  tokens = await startTokenServer({ [USER]: PASSWORD }, { anonymous: false });
  [basicRegistry, tokenRegistry] = await Promise.all([
    startRegistry({ extraConfig: htpasswdConfig(htpasswd) }),
    startRegistry({ extraConfig: tokens.registryConfig }),
  ]);
  archive = join(work, 'lz4.tar');
  const prefix = await debianPrefix(join(work, 'prefix'), 'lz4', ['lz4.h']);
  expect((await ocipkg(['pack', prefix, archive, '-t', 'example.invalid/acme/lz4:1'], env(work))).code).toBe(0);
});

afterAll(async () => {
  await Promise.all([basicRegistry?.stop(), tokenRegistry?.stop(), tokens?.stop()]);
});

describe.each([
  ['htpasswd Basic auth', () => basicRegistry],
  ['token auth', () => tokenRegistry],
])('a registry with %s, through the CLI', (_name, registry) => {
  it('refuses a pull without credentials in one line naming the registry and `ocipkg login`', async () => {
    const dir = await tempDir('nocreds');
    expectLoginHint(await ocipkg(['get', `${registry().host}/acme/lz4:1`], env(dir)), registry().host);
    expect(existsSync(join(dir, 'store', 'packages'))).toBe(false);
  });

  it('refuses a wrong password at login and stores nothing', async () => {
    const dir = await tempDir('badlogin');
    const result = await ocipkg(['login', registry().host, '-u', USER, '--password-stdin'], env(dir), 'wrong\n');
    expect(result.code).toBe(5);
    expect(existsSync(join(dir, 'config', 'auth.json'))).toBe(false);
  });

  it('logs in, then push and get work', async () => {
    const dir = await tempDir('login');
    const login = await ocipkg(['login', registry().host, '-u', USER, '--password-stdin'], env(dir), `${PASSWORD}\n`);
    expect(login.code, login.stderr).toBe(0);
    const pushed = await ocipkg(['push', archive, `${registry().host}/acme/lz4:1`], env(dir));
    expect(pushed.code, pushed.stderr).toBe(0);
    expectInstalled(await ocipkg(['get', `${registry().host}/acme/lz4:1`], env(dir)));
    // A wrong password saved earlier is refused the same way as none, with the same hint.
    const stale = await tempDir('stale');
    await saveLogin(stale, [registry().host], 'outdated');
    expectLoginHint(await ocipkg(['get', `${registry().host}/acme/lz4:1`], env(stale)), registry().host);
  });
});

describe('token scopes and expiry', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir('scopes');
    await saveLogin(dir, [tokenRegistry.host]);
    const pushed = await ocipkg(['push', archive, `${tokenRegistry.host}/acme/lz4:1`], env(dir));
    expect(pushed.code, pushed.stderr).toBe(0);
    expect((await ocipkg(['push', archive, `${tokenRegistry.host}/other/lz4:1`], env(dir))).code).toBe(0);
    // The library calls below run in this process: point its credentials lookup at the same login.
    Object.assign(process.env, { OCIPKG_CONFIG_DIR: join(dir, 'config'), DOCKER_CONFIG: join(dir, 'docker'), XDG_RUNTIME_DIR: join(dir, 'run') });
  });
  beforeEach(() => {
    forgetSession(tokenRegistry.host);
    tokens.requests.length = 0;
  });
  afterEach(() => {
    tokens.lifetimeSeconds = 300;
  });

  it('a push asks for pull,push on its repository only', async () => {
    // A store of its own: with the record of the pushes above, the push would mount their blobs
    // (and ask for pull on their repositories, as test/mirrors-mount.test.ts shows).
    const pushed = await ocipkg(['push', archive, `${tokenRegistry.host}/acme/pushed:1`], env(dir, { OCIPKG_DATA_DIR: join(dir, 'fresh-store') }));
    expect(pushed.code, pushed.stderr).toBe(0);
    const scopes = tokens.requests.flatMap((r) => r.scopes);
    expect(scopes).toContain('repository:acme/pushed:pull,push');
    expect(scopes.every((s) => s.startsWith('repository:acme/pushed:'))).toBe(true);
    expect(tokens.requests.every((r) => r.user === USER && r.service === 'ocipkg-test')).toBe(true);
  });

  it('a pull asks for pull only, and each repository gets its own token', async () => {
    const a = new RegistryRepository(tokenRegistry.host, 'acme/lz4');
    const b = new RegistryRepository(tokenRegistry.host, 'other/lz4');
    const descA = await a.resolve('1');
    await b.resolve('1');
    await a.fetchManifestBytes(descA);
    await a.resolve('1');
    // One token per repository, each scoped to it alone, and reused for that repository.
    expect(tokens.requests.map((r) => r.scopes)).toEqual([['repository:acme/lz4:pull'], ['repository:other/lz4:pull']]);
  });

  it('a token that expires mid-operation (401) is fetched afresh once, and the pull completes', async () => {
    tokens.lifetimeSeconds = 3;
    const target = new RegistryRepository(tokenRegistry.host, 'acme/lz4');
    const desc = await target.resolve('1');
    const manifest = JSON.parse((await target.fetchManifestBytes(desc)).toString()) as { layers: Array<{ digest: string; size: number; mediaType: string }> };
    expect(tokens.requests).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    tokens.lifetimeSeconds = 300;
    const stream = await target.fetch(manifest.layers[0]!);
    let size = 0;
    for await (const chunk of stream) size += (chunk as Buffer).length;
    expect(size).toBe(manifest.layers[0]!.size);
    expect(tokens.requests).toHaveLength(2);
  });

  it('a refreshed token that is refused again is EAUTH after one refresh, not a loop', async () => {
    tokens.lifetimeSeconds = 3;
    const target = new RegistryRepository(tokenRegistry.host, 'acme/lz4');
    await target.resolve('1');
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    tokens.lifetimeSeconds = -100; // every new token is already expired
    const before = tokens.requests.length;
    expect(await codeOf(new RegistryRepository(tokenRegistry.host, 'acme/lz4').resolve('1'))).toBe('EAUTH');
    expect(tokens.requests.length - before).toBe(1);
  });
});

/**
 * Blob GETs answered with a 307, by a fault proxy in front of the token registry: to a "CDN" on
 * another origin (a tiny server re-serving the registry's stored blob files, recording the headers
 * it is sent), or back to the proxy itself.
 */
describe('redirected blob downloads', () => {
  let proxy: FaultProxy;
  let cdn: Server;
  let cdnUrl: string;
  const cdnSaw: IncomingHttpHeaders[] = [];

  beforeAll(async () => {
    proxy = await startFaultProxy(tokenRegistry.url);
    cdn = createServer((req, res) => {
      cdnSaw.push(req.headers);
      const hex = /blobs\/sha256:([a-f0-9]{64})/.exec(req.url ?? '')?.[1];
      const file = hex && join(tokenRegistry.root, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
      if (!file || !existsSync(file)) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      createReadStream(file).pipe(res);
    });
    const port = await freePort();
    await new Promise<void>((resolve) => cdn.listen(port, '127.0.0.1', resolve));
    cdnUrl = `http://127.0.0.1:${port}`;
    const dir = await tempDir('redirect-push');
    await saveLogin(dir, [tokenRegistry.host]);
    const pushed = await ocipkg(['push', archive, `${tokenRegistry.host}/acme/lz4:1`], env(dir));
    expect(pushed.code, pushed.stderr).toBe(0);
  });
  afterAll(async () => {
    await proxy?.close();
    cdn?.closeAllConnections();
    await new Promise((resolve) => cdn?.close(resolve));
  });
  beforeEach(() => {
    proxy.reset();
    cdnSaw.length = 0;
  });

  it('follows a redirect to another origin without sending Authorization there', async () => {
    proxy.add({ method: 'GET', path: /\/blobs\/sha256:/, fault: { kind: 'redirect', origin: cdnUrl } });
    const dir = await tempDir('cdn');
    await saveLogin(dir, [proxy.host]);
    expectInstalled(await ocipkg(['get', `${proxy.host}/acme/lz4:1`], env(dir)));
    expect(cdnSaw.length).toBeGreaterThanOrEqual(2); // the config and the layer
    for (const headers of cdnSaw) {
      expect(headers.authorization).toBeUndefined();
      expect(JSON.stringify(headers)).not.toContain(BASIC);
    }
    // The registry's own origin did get the token for the manifest.
    expect(proxy.requests.some((r) => /\/manifests\//.test(r.path) && r.headers.authorization?.startsWith('Bearer '))).toBe(true);
  });

  it('keeps Authorization across a redirect to the same origin', async () => {
    // The first GET of each blob is sent back to the proxy; the second passes to the registry,
    // which refuses it unless the token came along.
    proxy.add({ method: 'GET', path: /\/blobs\/sha256:/, nth: [1, 3, 5, 7], fault: { kind: 'redirect', origin: proxy.url } });
    const dir = await tempDir('same-origin');
    await saveLogin(dir, [proxy.host]);
    expectInstalled(await ocipkg(['get', `${proxy.host}/acme/lz4:1`], env(dir)));
    const hops = proxy.requests.filter((r) => r.method === 'GET' && /\/blobs\/sha256:/.test(r.path));
    expect(hops.filter((r) => r.fault === 'redirect').length).toBeGreaterThanOrEqual(2);
    for (const hop of hops) expect(hop.headers.authorization).toMatch(/^Bearer /);
    expect(cdnSaw).toEqual([]);
  });
});

describe('secrets in output', () => {
  it('never appear in the output of succeeding or failing commands, even with --verbose', async () => {
    const dir = await tempDir('secrets');
    const debug = { OCIPKG_DEBUG: '1', OCIPKG_PROGRESS: '1' };
    const outputs: RunResult[] = [];
    const runs: Array<[string[], NodeJS.ProcessEnv, string?]> = [];
    for (const registry of [basicRegistry, tokenRegistry]) {
      const host = registry.host;
      runs.push(
        [['login', host, '-u', USER, '--password-stdin', '--verbose'], env(dir, debug), 'wrong-password\n'],
        [['login', host, '-u', USER, '-p', PASSWORD, '--verbose'], env(dir, debug)],
        [['push', archive, `${host}/acme/secret:1`, '--verbose'], env(dir, debug)],
        [['get', `${host}/acme/secret:1`, '--verbose'], env(dir, debug)],
        [['get', `${host}/acme/secret:nope`, '--verbose'], env(dir, debug)],
        [['get', `${host}/acme/secret:1`, '-f', '--target', 'aarch64-unknown-linux-gnu', '--verbose'], env(dir, debug)],
        [['inspect', `${host}/acme/secret:1`, '--verbose'], env(dir, debug)],
      );
    }
    for (const [args, runEnv, input] of runs) outputs.push(await ocipkg(args, runEnv, input));
    // A stale password configured: refused, with the stack printed.
    const stale = await tempDir('secrets-stale');
    await saveLogin(stale, [basicRegistry.host, tokenRegistry.host], `${PASSWORD}-old`);
    for (const registry of [basicRegistry, tokenRegistry]) {
      outputs.push(await ocipkg(['get', `${registry.host}/acme/secret:1`, '--verbose'], env(stale, debug)));
    }

    expect(outputs.filter((r) => r.code === 0).length, outputs.map((r) => r.stderr).join('\n')).toBeGreaterThanOrEqual(6);
    expect(outputs.filter((r) => r.code !== 0).length).toBeGreaterThanOrEqual(6);
    const everything = outputs.map((r) => r.stdout + r.stderr).join('\n');
    const secrets = [PASSWORD, BASIC, Buffer.from(`${USER}:${PASSWORD}-old`).toString('base64'), ...tokens.issued];
    expect(tokens.issued.length).toBeGreaterThan(0);
    for (const secret of secrets) expect(everything).not.toContain(secret);
    // No token-shaped strings either (a JWT's header starts with base64url `{"`).
    expect(everything).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/);
    expect(everything).not.toMatch(/(?:Bearer|Basic) [A-Za-z0-9+/=_-]{8,}/);
  });
});

import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { descriptorFor } from '../src/oci/verify.js';
import { OCIPKG_CONFIG } from '../src/oci/mediatypes.js';
import { parseWwwAuthenticate } from '../src/registry/auth.js';
import { RegistryRepository } from '../src/registry/client.js';
import { findCredentials, ocipkgAuthFile } from '../src/registry/credentials.js';
import { login, logout } from '../src/registry/login.js';
import { htpasswdConfig, writeHtpasswd } from './helpers/htpasswd.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { startTokenServer, type TokenServer } from './helpers/token-server.js';
import { codeOf } from './helpers/errors.js';


const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('parseWwwAuthenticate', () => {
  it('reads a bearer challenge with realm, service and scope', () => {
    expect(
      parseWwwAuthenticate('Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:acme/zstd:pull"'),
    ).toEqual([
      {
        scheme: 'bearer',
        params: { realm: 'https://auth.example.com/token', service: 'registry.example.com', scope: 'repository:acme/zstd:pull' },
      },
    ]);
  });

  it('keeps commas inside quoted values', () => {
    const [challenge] = parseWwwAuthenticate('Bearer realm="https://a/token", scope="repository:a:pull,push"');
    expect(challenge?.params.scope).toBe('repository:a:pull,push');
  });

  it('unescapes backslash-escaped quotes', () => {
    const [challenge] = parseWwwAuthenticate('Basic realm="say \\"hi\\", then \\\\ go"');
    expect(challenge?.params.realm).toBe('say "hi", then \\ go');
  });

  it('splits several challenges in one header, with a case-insensitive scheme', () => {
    const challenges = parseWwwAuthenticate('BASIC realm="r1", bearer realm="https://t/token",service=reg , Negotiate abc==');
    expect(challenges.map((c) => c.scheme)).toEqual(['basic', 'bearer', 'negotiate']);
    expect(challenges[1]?.params).toEqual({ realm: 'https://t/token', service: 'reg' });
    expect(challenges[2]?.token68).toBe('abc==');
  });

  it('accepts a challenge without scope, a bare scheme, and lowercases parameter names', () => {
    expect(parseWwwAuthenticate('Bearer Realm="https://t/token",Service="reg"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://t/token', service: 'reg' } },
    ]);
    expect(parseWwwAuthenticate('Basic')).toEqual([{ scheme: 'basic', params: {} }]);
    expect(parseWwwAuthenticate('')).toEqual([]);
  });
});

let home: string;
let bin: string;
const originalPath = process.env.PATH;

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'ocipkg-auth-test-'));
  bin = join(home, 'bin');
  await mkdir(bin);
  // A real credential helper, as docker runs them: server on stdin, JSON on stdout. It answers
  // for two servers and echoes the server it was asked about as the user name.
  const helper = [
    '#!/bin/sh',
    'read -r server',
    'case "$server" in',
    '  helper.example.com|https://index.docker.io/v1/) printf \'{"ServerURL":"%s","Username":"%s","Secret":"helper-secret"}\' "$server" "$server" ;;',
    '  token.example.com) printf \'{"ServerURL":"%s","Username":"<token>","Secret":"refresh-me"}\' "$server" ;;',
    '  broken.example.com) echo "keychain locked" >&2; exit 3 ;;',
    '  *) echo "credentials not found in native keychain"; exit 1 ;;',
    'esac',
  ].join('\n');
  await writeFile(join(bin, 'docker-credential-test'), `${helper}\n`);
  await chmod(join(bin, 'docker-credential-test'), 0o755);
  process.env.PATH = `${bin}${delimiter}${originalPath}`;
});

afterAll(async () => {
  process.env.PATH = originalPath;
  await rm(home, { recursive: true, force: true });
});

/** Fresh, empty places for every credentials source, all under the test's temp dir. */
async function isolate(name: string): Promise<string> {
  const dir = join(home, name);
  await mkdir(dir, { recursive: true });
  process.env.OCIPKG_CONFIG_DIR = join(dir, 'ocipkg');
  process.env.DOCKER_CONFIG = join(dir, 'docker');
  process.env.XDG_RUNTIME_DIR = join(dir, 'run');
  delete process.env.REGISTRY_AUTH_FILE;
  return dir;
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, JSON.stringify(value));
}

/** What was found, without where (`from`, which the error refusing them names). */
function credentialsOnly(found: Awaited<ReturnType<typeof findCredentials>>) {
  if (!found) return found;
  const { from: _from, ...credentials } = found;
  return credentials;
}

describe('findCredentials', () => {
  let dir: string;
  beforeEach(async (ctx) => {
    dir = await isolate(ctx.task.name.replace(/\W+/g, '-'));
  });

  it('finds nothing when no file exists', async () => {
    expect(credentialsOnly(await findCredentials('ghcr.io'))).toBeUndefined();
  });

  it("reads docker's auths, matching Docker Hub's v1 URL key for docker.io", async () => {
    await writeJson(join(dir, 'docker', 'config.json'), {
      auths: {
        'ghcr.io': { auth: b64('alice:s3cret:with:colons') },
        'https://index.docker.io/v1/': { auth: b64('bob:hub-pass') },
        'https://registry.example.com': { username: 'carol', password: 'pw' },
      },
    });
    expect(credentialsOnly(await findCredentials('ghcr.io'))).toEqual({ username: 'alice', password: 's3cret:with:colons' });
    expect(credentialsOnly(await findCredentials('docker.io'))).toEqual({ username: 'bob', password: 'hub-pass' });
    expect(credentialsOnly(await findCredentials('registry.example.com'))).toEqual({ username: 'carol', password: 'pw' });
    expect(credentialsOnly(await findCredentials('quay.io'))).toBeUndefined();
  });

  it('runs credHelpers and credsStore helpers, passing Docker Hub as its v1 URL', async () => {
    await writeJson(join(dir, 'docker', 'config.json'), {
      auths: { 'helper.example.com': {}, 'plain.example.com': { auth: b64('dave:pw') } },
      credHelpers: { 'helper.example.com': 'test', 'https://index.docker.io/v1/': 'test', 'token.example.com': 'test' },
      credsStore: 'test',
    });
    expect(credentialsOnly(await findCredentials('helper.example.com'))).toEqual({ username: 'helper.example.com', password: 'helper-secret' });
    expect(credentialsOnly(await findCredentials('docker.io'))).toEqual({ username: 'https://index.docker.io/v1/', password: 'helper-secret' });
    expect(credentialsOnly(await findCredentials('token.example.com'))).toEqual({ username: '', password: '', identityToken: 'refresh-me' });
    // auths wins over credsStore; the store's "not found" is no credentials, not an error.
    expect(credentialsOnly(await findCredentials('plain.example.com'))).toEqual({ username: 'dave', password: 'pw' });
    expect(credentialsOnly(await findCredentials('other.example.com'))).toBeUndefined();
  });

  it('reports a failing or missing helper as ECREDENTIALS', async () => {
    await writeJson(join(dir, 'docker', 'config.json'), {
      credHelpers: { 'broken.example.com': 'test', 'gone.example.com': 'does-not-exist' },
    });
    expect(await codeOf(findCredentials('broken.example.com'))).toBe('ECREDENTIALS');
    expect(await codeOf(findCredentials('gone.example.com'))).toBe('ECREDENTIALS');
  });

  it('refuses helper names that are paths, running nothing relative to the working directory', async () => {
    // `docker-credential-x/evil` would be run as a path from wherever ocipkg runs: a checkout's files.
    const cwd = await mkdtemp(join(tmpdir(), 'ocipkg-helper-cwd-'));
    const marker = join(cwd, 'ran');
    await mkdir(join(cwd, 'docker-credential-x'));
    await writeFile(join(cwd, 'docker-credential-x', 'evil'), `#!/bin/sh\ntouch ${marker}\necho '{"Username":"u","Secret":"s"}'\n`);
    await chmod(join(cwd, 'docker-credential-x', 'evil'), 0o755);
    const previous = process.cwd();
    process.chdir(cwd);
    try {
      for (const name of ['x/evil', './docker-credential-x/evil', 'x\\evil', 'x evil']) {
        await writeJson(join(dir, 'docker', 'config.json'), { credHelpers: { 'evil.example.com': name } });
        expect(await codeOf(findCredentials('evil.example.com')), name).toBe('ECREDENTIALS');
        await writeJson(join(dir, 'docker', 'config.json'), { credsStore: name });
        expect(await codeOf(findCredentials('evil.example.com')), name).toBe('ECREDENTIALS');
      }
      await expect(stat(marker)).rejects.toThrow();
    } finally {
      process.chdir(previous);
      await rm(cwd, { recursive: true, force: true });
    }
  });

  it("reads podman's auth file and REGISTRY_AUTH_FILE, ignoring namespace-scoped keys", async () => {
    await writeJson(join(dir, 'run', 'containers', 'auth.json'), {
      auths: { 'quay.io': { auth: b64('podman:pw') }, 'ghcr.io/acme': { auth: b64('scoped:pw') } },
    });
    expect(credentialsOnly(await findCredentials('quay.io'))).toEqual({ username: 'podman', password: 'pw' });
    expect(credentialsOnly(await findCredentials('ghcr.io'))).toBeUndefined();

    process.env.REGISTRY_AUTH_FILE = join(dir, 'override.json');
    await writeJson(process.env.REGISTRY_AUTH_FILE, { auths: { 'quay.io': { auth: b64('override:pw') } } });
    expect(credentialsOnly(await findCredentials('quay.io'))).toEqual({ username: 'override', password: 'pw' });
  });

  it("prefers ocipkg's own file over every other source", async () => {
    await writeJson(join(dir, 'docker', 'config.json'), { auths: { 'ghcr.io': { auth: b64('docker:pw') } } });
    await writeJson(join(dir, 'ocipkg', 'auth.json'), { auths: { 'ghcr.io': { auth: b64('ocipkg:pw') } } });
    expect(credentialsOnly(await findCredentials('ghcr.io'))).toEqual({ username: 'ocipkg', password: 'pw' });
  });

  it('refuses an unreadable credentials file with ECREDENTIALS', async () => {
    await mkdir(join(dir, 'docker'), { recursive: true });
    await writeFile(join(dir, 'docker', 'config.json'), '{ not json');
    expect(await codeOf(findCredentials('ghcr.io'))).toBe('ECREDENTIALS');
  });
});

describe('a registry with htpasswd Basic auth', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    const htpasswd = join(home, 'htpasswd');
    await writeHtpasswd(htpasswd, { alice: 'correct horse' });
    registry = await startRegistry({ extraConfig: htpasswdConfig(htpasswd) });
  });
  afterAll(async () => registry?.stop());
  beforeEach(async (ctx) => {
    await isolate(ctx.task.name.replace(/\W+/g, '-'));
  });

  const config = Buffer.from('{"layers":{}}');
  const configDesc = descriptorFor(OCIPKG_CONFIG, config);

  it('refuses anonymous access with EAUTH', async () => {
    expect(await codeOf(new RegistryRepository(registry.host, 'acme/zstd').exists(configDesc))).toBe('EAUTH');
  });

  it('refuses a wrong password with EAUTH and stores nothing', async () => {
    expect(await codeOf(login(registry.host, 'alice', 'wrong'))).toBe('EAUTH');
    await expect(stat(ocipkgAuthFile())).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('logs in, stores the credentials with mode 0600, uses them, and logs out', async () => {
    await login(registry.host, 'alice', 'correct horse');
    const file = ocipkgAuthFile();
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const saved = JSON.parse(await readFile(file, 'utf8')) as { auths: Record<string, { auth: string }> };
    expect(saved.auths[registry.host]?.auth).toBe(b64('alice:correct horse'));

    const target = new RegistryRepository(registry.host, 'acme/zstd');
    await target.push(configDesc, config);
    expect(await target.exists(configDesc)).toBe(true);

    await logout(registry.host);
    const after = JSON.parse(await readFile(file, 'utf8')) as { auths: Record<string, unknown> };
    expect(after.auths[registry.host]).toBeUndefined();
    expect(await codeOf(new RegistryRepository(registry.host, 'acme/zstd').exists(configDesc))).toBe('EAUTH');
    // Not logged in any more: nothing to remove, and no error (as docker logout).
    expect(await logout(registry.host)).toEqual({ registry: registry.host, removedFrom: [] });
  });

  it("uses credentials from docker's config without a login", async () => {
    await writeJson(join(process.env.DOCKER_CONFIG!, 'config.json'), { auths: { [registry.host]: { auth: b64('alice:correct horse') } } });
    const target = new RegistryRepository(registry.host, 'acme/docker');
    await target.push(configDesc, config);
    expect(await target.exists(configDesc)).toBe(true);
  });
});

/** A registry with distribution's `auth: token`, against the test token service (helpers/token-server). */
describe('a registry with bearer token auth', () => {
  let registry: TestRegistry;
  let tokens: TokenServer;

  beforeAll(async () => {
    tokens = await startTokenServer({ alice: 'correct horse' });
    registry = await startRegistry({ extraConfig: tokens.registryConfig });
  });
  afterAll(async () => {
    await registry?.stop();
    await tokens?.stop();
  });
  beforeEach(async (ctx) => {
    await isolate(ctx.task.name.replace(/\W+/g, '-'));
    tokens.requests.length = 0;
  });

  const config = Buffer.from('{"layers":{},"bearer":true}');
  const configDesc = descriptorFor(OCIPKG_CONFIG, config);

  it('pulls anonymously with a pull-scoped token, fetched once and cached', async () => {
    const target = new RegistryRepository(registry.host, 'acme/anon');
    expect(await target.exists(configDesc)).toBe(false);
    expect(await target.exists(configDesc)).toBe(false);
    expect(tokens.requests).toEqual([{ user: undefined, scopes: ['repository:acme/anon:pull'], service: 'ocipkg-test' }]);
  });

  it('refuses an anonymous push with EAUTH', async () => {
    expect(await codeOf(new RegistryRepository(registry.host, 'acme/anon').push(configDesc, config))).toBe('EAUTH');
  });

  it('logs in through the token service, then pushes with a pull,push token', async () => {
    expect(await codeOf(login(registry.host, 'alice', 'wrong'))).toBe('EAUTH');
    await login(registry.host, 'alice', 'correct horse');
    const target = new RegistryRepository(registry.host, 'acme/bearer');
    await target.push(configDesc, config);
    expect(await new RegistryRepository(registry.host, 'acme/bearer').exists(configDesc)).toBe(true);
    expect(tokens.requests.some((r) => r.user === 'alice' && r.scopes.includes('repository:acme/bearer:pull,push'))).toBe(true);
  });
});

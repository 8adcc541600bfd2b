import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copy } from '../src/copy.js';
import { fetchPackage } from '../src/fetch.js';
import { LayoutDirectory } from '../src/layout/directory.js';
import { ANNOTATION_TARGET, OCI_INDEX } from '../src/oci/mediatypes.js';
import type { Descriptor } from '../src/oci/types.js';
import { descriptorFor } from '../src/oci/verify.js';
import { parseReference, type RegistryReference } from '../src/reference.js';
import { forgetSession } from '../src/registry/auth.js';
import { RegistryRepository } from '../src/registry/client.js';
import { closeDispatchers } from '../src/registry/http.js';
import { forgetRegistriesConf, pullEndpoints, registriesConf } from '../src/registry/registries-conf.js';
import { ocipkg, tempDir } from './helpers/cli.js';
import { codeOf, codeOfSync } from './helpers/errors.js';
import { startFaultProxy, type FaultProxy, type FaultRule } from './helpers/fault-proxy.js';
import { htpasswdConfig, writeHtpasswd } from './helpers/htpasswd.js';
import { buildImage, writeImage, type TestImage } from './helpers/layers.js';
import { DEBIAN_LIB } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { expectStoreVerified } from './helpers/store-check.js';
import { startTokenServer, type TokenServer } from './helpers/token-server.js';

/**
 * Mirrors from containers-registries.conf: which file and drop-ins are read and how a reference
 * picks its `[[registry]]`, then pulls through real distribution registries (a mirror and a
 * primary, each behind a fault proxy that records what it was asked), per-blob fallback, per-endpoint
 * credentials against a token-auth mirror, and a real pull-through cache (distribution in proxy mode).
 */
const TRIPLE = 'x86_64-unknown-linux-gnu';

let work: string;
const saved = { conf: process.env.CONTAINERS_REGISTRIES_CONF, home: process.env.HOME, config: process.env.OCIPKG_CONFIG_DIR };

/** Writes `text` as the registries.conf in force (CONTAINERS_REGISTRIES_CONF) and forgets the one read before. */
async function useConf(name: string, text: string): Promise<string> {
  const path = join(work, `${name}.conf`);
  await writeFile(path, text);
  process.env.CONTAINERS_REGISTRIES_CONF = path;
  forgetRegistriesConf();
  return path;
}

const reg = (image: string) => parseReference(image) as RegistryReference;
const where = (image: string) => pullEndpoints(reg(image)).map((e) => `${e.mirror ? 'mirror' : 'primary'} ${e.registry}/${e.repository}`);

beforeAll(async () => {
  work = await tempDir('mirrors');
  process.env.HOME = join(work, 'home');
  process.env.OCIPKG_RETRY_BASE_MS = '5';
});

afterAll(async () => {
  await closeDispatchers();
  for (const [key, value] of [['CONTAINERS_REGISTRIES_CONF', saved.conf], ['HOME', saved.home], ['OCIPKG_CONFIG_DIR', saved.config]] as const) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  forgetRegistriesConf();
  await rm(work, { recursive: true, force: true });
});

describe('registries.conf is read as containers/image reads it', () => {
  it('the longest prefix wins, on component boundaries; mirrors come in file order, then the primary at its location', async () => {
    await useConf('longest', `
[[registry]]
prefix = "example.com"
location = "example.com"
[[registry.mirror]]
location = "mirror.example/all"

[[registry]]
prefix = "example.com/acme"
location = "internal.example/vendored/acme"
[[registry.mirror]]
location = "m1.example/acme"
[[registry.mirror]]
location = "m2.example:5000/cache/acme"
`);
    expect(where('example.com/acme/zstd:1')).toEqual([
      'mirror m1.example/acme/zstd', 'mirror m2.example:5000/cache/acme/zstd', 'primary internal.example/vendored/acme/zstd',
    ]);
    // `example.com/acmeco` is not under `example.com/acme`.
    expect(where('example.com/acmeco/x:1')).toEqual(['mirror mirror.example/all/acmeco/x', 'primary example.com/acmeco/x']);
    expect(where('other.example/acme/zstd:1')).toEqual(['primary other.example/acme/zstd']);
  });

  it('Docker Hub names are matched in their docker.io/library form; *.domain prefixes match subdomains', async () => {
    await useConf('hub', `
[[registry]]
prefix = "docker.io/library/zstd"
location = "docker.io/library/zstd"
[[registry.mirror]]
location = "hub-cache.example/library/zstd"

[[registry]]
prefix = "*.corp.example"
[[registry.mirror]]
location = "gateway.example"
`);
    expect(where('zstd:1.5')).toEqual(['mirror hub-cache.example/library/zstd', 'primary docker.io/library/zstd']);
    expect(where('pkgs.corp.example/acme/x:1')).toEqual(['mirror gateway.example/acme/x', 'primary pkgs.corp.example/acme/x']);
  });

  it('pull-from-mirror: digest-only mirrors serve pulls by digest, tag-only mirrors pulls by tag', async () => {
    await useConf('pull-from', `
[[registry]]
location = "example.com"
[[registry.mirror]]
location = "digests.example"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "tags.example"
pull-from-mirror = "tag-only"
[[registry.mirror]]
location = "any.example"
`);
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(where('example.com/x:1')).toEqual(['mirror tags.example/x', 'mirror any.example/x', 'primary example.com/x']);
    expect(where(`example.com/x@${digest}`)).toEqual(['mirror digests.example/x', 'mirror any.example/x', 'primary example.com/x']);
  });

  it('drop-ins are read in name order after the file, and a later [[registry]] with the same prefix replaces the earlier', async () => {
    const dir = join(work, 'home', '.config', 'containers', 'registries.conf.d');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, '20-later.conf'), '[[registry]]\nlocation = "example.com"\n[[registry.mirror]]\nlocation = "second.example"\n');
    await writeFile(join(dir, '10-first.conf'), '[[registry]]\nlocation = "example.com"\n[[registry.mirror]]\nlocation = "first.example"\n');
    await writeFile(join(dir, 'ignored.txt'), 'not toml [[');
    try {
      await useConf('base', '[[registry]]\nlocation = "example.com"\n[[registry.mirror]]\nlocation = "base.example"\n');
      expect(where('example.com/x:1')).toEqual(['mirror second.example/x', 'primary example.com/x']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('without CONTAINERS_REGISTRIES_CONF, ~/.config/containers/registries.conf is read', async () => {
    const dir = join(work, 'home', '.config', 'containers');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'registries.conf'), '[[registry]]\nlocation = "example.com"\n[[registry.mirror]]\nlocation = "user.example"\n');
    delete process.env.CONTAINERS_REGISTRIES_CONF;
    forgetRegistriesConf();
    try {
      expect(where('example.com/x:1')).toEqual(['mirror user.example/x', 'primary example.com/x']);
    } finally {
      await rm(join(dir, 'registries.conf'));
    }
  });

  it('insecure is read per endpoint: the mirror and the primary each keep their own', async () => {
    await useConf('insecure', '[[registry]]\nlocation = "example.com"\n[[registry.mirror]]\nlocation = "plain.example"\ninsecure = true\n[[registry.mirror]]\nlocation = "tls.example"\n');
    expect(pullEndpoints(reg('example.com/x:1')).map((e) => [e.registry, e.insecure])).toEqual([['plain.example', true], ['tls.example', false], ['example.com', false]]);
  });

  it('a blocked registry is refused', async () => {
    await useConf('blocked', '[[registry]]\nlocation = "blocked.example"\nblocked = true\n');
    expect(codeOfSync(() => pullEndpoints(reg('blocked.example/x:1')))).toBe('EDENIED');
  });

  it.each([
    ['a URL as location', '[[registry]]\nlocation = "https://example.com"\n', 'URI schemes'],
    ['an unknown pull-from-mirror', '[[registry]]\nlocation = "example.com"\n[[registry.mirror]]\nlocation = "m.example"\npull-from-mirror = "sometimes"\n', 'sometimes'],
    ['pull-from-mirror on the registry itself', '[[registry]]\nlocation = "example.com"\npull-from-mirror = "all"\n', 'belongs to a mirror'],
    ['a mirror without location', '[[registry]]\nlocation = "example.com"\n[[registry.mirror]]\ninsecure = true\n', 'no location'],
    ['not TOML', '[[registry]\nlocation = ', 'not valid TOML'],
    ['a wrong type', '[[registry]]\nlocation = 5\n', '"location" must be a string'],
  ])('%s is refused in one line naming the file', async (name, text, why) => {
    const path = await useConf(`bad-${name.replace(/\W+/g, '-')}`, text);
    let message = '';
    try {
      registriesConf();
    } catch (err) {
      message = (err as Error).message;
      expect((err as { code?: string }).code).toBe('EINPUT');
    }
    expect(message).toContain(path);
    expect(message).toContain(why);
    expect(message).not.toContain('\n');
  });
});

/** An image published to a repository of `registry` through a layout, as `copy` would from an archive. */
async function publish(image: TestImage, host: string, repository: string, tag: string): Promise<void> {
  const layout = new LayoutDirectory(join(work, `layout-${host.replace(/\W/g, '-')}-${repository.replace(/\W/g, '-')}`));
  await writeImage(layout, image, tag);
  await copy(layout, tag, new RegistryRepository(host, repository), tag);
}

const file = (path: string) => readFileSync(path);
const blobPath = (digest: string) => new RegExp(`/blobs/${digest}$`);
const blobGets = (on: FaultProxy, digest: string) => on.requests.filter((r) => r.method === 'GET' && blobPath(digest).test(r.path)).length;
const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ CONTAINERS_REGISTRIES_CONF: process.env.CONTAINERS_REGISTRIES_CONF, HOME: process.env.HOME, OCIPKG_RETRY_BASE_MS: '5', ...extra });

describe('pulls through a mirror, with per-blob fallback to the primary', () => {
  let primary: TestRegistry;
  let mirror: TestRegistry;
  let atPrimary: FaultProxy;
  let atMirror: FaultProxy;
  let zstd: TestImage;
  const image = () => `${atPrimary.host}/acme/zstd:1`;

  beforeAll(async () => {
    [primary, mirror] = await Promise.all([startRegistry(), startRegistry()]);
    [atPrimary, atMirror] = await Promise.all([startFaultProxy(primary.url), startFaultProxy(mirror.url)]);
    zstd = buildImage([[{ path: `lib/libzstd.a`, body: file(join(DEBIAN_LIB, 'libzstd.a')) }], [{ path: 'include/zstd.h', body: file('/usr/include/zstd.h') }]], { name: 'zstd' });
    await publish(zstd, primary.host, 'acme/zstd', '1');
    await publish(zstd, mirror.host, 'cache/acme/zstd', '1');
    await publish(buildImage([[{ path: 'include/only.h', body: '/* only at the primary */\n' }]], { name: 'only' }), primary.host, 'acme/only', '1');
  });

  afterAll(async () => {
    await closeDispatchers();
    await Promise.all([atPrimary?.close(), atMirror?.close()]);
    await Promise.all([primary?.stop(), mirror?.stop()]);
  });

  /** A fresh store, the proxies with these rules only, and registries.conf mirroring the primary's acme/ at the mirror's cache/acme/. */
  async function arm(mirrorRules: FaultRule[], primaryRules: FaultRule[] = [], pull = 'all'): Promise<string> {
    atPrimary.reset();
    atMirror.reset();
    for (const rule of mirrorRules) atMirror.add(rule);
    for (const rule of primaryRules) atPrimary.add(rule);
    await useConf('live', `
[[registry]]
prefix = "${atPrimary.host}/acme"
location = "${atPrimary.host}/acme"
[[registry.mirror]]
location = "${atMirror.host}/cache/acme"
pull-from-mirror = "${pull}"
`);
    return tempDir('store');
  }

  const get = (store: string, ref = image()) => fetchPackage(parseReference(ref), TRIPLE, store);

  it('a mirror that has everything serves the whole pull; the primary is not asked', async () => {
    const store = await arm([]);
    await get(store);
    expect(expectStoreVerified(store).packages).toEqual([zstd.manifestDesc.digest.slice(7)]);
    expect(atPrimary.requests.filter((r) => r.path !== '/v2/')).toEqual([]);
    for (const blob of zstd.layers.map((l) => l.desc)) expect(blobGets(atMirror, blob.digest)).toBe(1);
    expect(blobGets(atMirror, zstd.configDesc.digest)).toBeGreaterThan(0);
  });

  const layer = () => zstd.layers[0]!.desc;
  it.each<[string, () => FaultRule]>([
    ['404', () => ({ method: 'GET', path: blobPath(layer().digest), fault: { kind: 'status', status: 404 } })],
    ['503 every time', () => ({ method: 'GET', path: blobPath(layer().digest), fault: { kind: 'status', status: 503 } })],
    ['a reset every time', () => ({ method: 'GET', path: blobPath(layer().digest), fault: { kind: 'reset' } })],
    ['wrong bytes of the right size', () => ({ method: 'GET', path: blobPath(layer().digest), fault: { kind: 'serve', body: randomBytes(layer().size), contentType: 'application/octet-stream' } })],
    ['a body cut short with no ranges', () => ({ method: 'GET', path: blobPath(layer().digest), fault: { kind: 'cut', after: 1000, ignoreRange: true } })],
  ])('a blob the mirror fails to serve (%s) comes from the primary, and only that blob', async (_name, rule) => {
    const store = await arm([rule()]);
    await get(store);
    const contents = expectStoreVerified(store);
    expect(contents.packages).toEqual([zstd.manifestDesc.digest.slice(7)]);
    expect(contents.tmp).toEqual([]);
    expect(blobGets(atMirror, layer().digest)).toBeGreaterThan(0);
    expect(blobGets(atPrimary, layer().digest)).toBe(1);
    expect(blobGets(atPrimary, zstd.configDesc.digest)).toBe(0);
    expect(blobGets(atPrimary, zstd.layers[1]!.desc.digest)).toBe(0);
  });

  it('a tag the mirror does not have is resolved at the primary', async () => {
    const store = await arm([]);
    await get(store, `${atPrimary.host}/acme/only:1`);
    expect(expectStoreVerified(store).packages).toHaveLength(1);
    expect(atMirror.requests.some((r) => r.path.endsWith('/cache/acme/only/manifests/1'))).toBe(true);
  });

  it('--verbose says which endpoint served what, one line each', async () => {
    await arm([{ method: 'GET', path: blobPath(layer().digest), fault: { kind: 'status', status: 404 } }]);
    const dir = await tempDir('verbose');
    const result = await ocipkg(['get', image(), '--verbose'], env({ OCIPKG_DATA_DIR: join(dir, 'store') }));
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stderr.split('\n');
    expect(lines).toContain(`ocipkg: ${atPrimary.host}/acme/zstd:1 from mirror ${atMirror.host}/cache/acme/zstd`);
    expect(lines).toContain(`ocipkg: blob ${zstd.configDesc.digest} from mirror ${atMirror.host}/cache/acme/zstd`);
    expect(lines).toContain(`ocipkg: blob ${layer().digest} from primary ${atPrimary.host}/acme/zstd`);
    expect(lines.some((l) => l.startsWith(`ocipkg: blob ${layer().digest}: mirror ${atMirror.host}/cache/acme/zstd failed (`))).toBe(true);
    // Without --verbose, nothing of it.
    const quiet = await ocipkg(['get', image(), '-f'], env({ OCIPKG_DATA_DIR: join(dir, 'store2') }));
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).toBe('');
  });

  it('when every endpoint fails, one line names each endpoint and its failure', async () => {
    await arm([{ path: /\/manifests\//, fault: { kind: 'status', status: 404 } }], [{ path: /\/manifests\//, fault: { kind: 'status', status: 500 } }]);
    const dir = await tempDir('all-fail');
    const result = await ocipkg(['get', image()], env({ OCIPKG_DATA_DIR: join(dir, 'store') }));
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`mirror ${atMirror.host}/cache/acme/zstd: `);
    expect(lines[0]).toContain(`primary ${atPrimary.host}/acme/zstd: `);
    expect(lines[0]).toMatch(/500/);
  });

  it('a digest-only mirror is skipped for a pull by tag and serves a pull by digest (a locked build)', async () => {
    let store = await arm([], [], 'digest-only');
    await get(store);
    expect(atMirror.requests.filter((r) => r.path !== '/v2/')).toEqual([]);
    store = await arm([], [], 'digest-only');
    await get(store, `${atPrimary.host}/acme/zstd@${zstd.manifestDesc.digest}`);
    expect(expectStoreVerified(store).packages).toHaveLength(1);
    expect(atPrimary.requests.filter((r) => r.path !== '/v2/')).toEqual([]);
  });
});

describe('credentials stay per endpoint', () => {
  const MIRROR_USER = 'mirror-bot';
  const MIRROR_PASSWORD = 'mirror-secret-1';
  const PRIMARY_USER = 'primary-bot';
  const PRIMARY_PASSWORD = 'primary-secret-2';
  let tokens: TokenServer;
  let mirror: TestRegistry;
  let primary: TestRegistry;
  let atPrimary: FaultProxy;
  let atMirror: FaultProxy;
  let image: TestImage;

  beforeAll(async () => {
    tokens = await startTokenServer({ [MIRROR_USER]: MIRROR_PASSWORD }, { anonymous: false });
    const htpasswd = join(work, 'htpasswd');
    await writeHtpasswd(htpasswd, { [PRIMARY_USER]: PRIMARY_PASSWORD });
    [mirror, primary] = await Promise.all([startRegistry({ extraConfig: tokens.registryConfig }), startRegistry({ extraConfig: htpasswdConfig(htpasswd) })]);
    [atPrimary, atMirror] = await Promise.all([startFaultProxy(primary.url), startFaultProxy(mirror.url)]);
    const config = join(work, 'creds-config');
    await mkdir(config, { recursive: true });
    const auth = (user: string, password: string) => ({ auth: Buffer.from(`${user}:${password}`).toString('base64') });
    await writeFile(join(config, 'auth.json'), JSON.stringify({ auths: { [atMirror.host]: auth(MIRROR_USER, MIRROR_PASSWORD), [atPrimary.host]: auth(PRIMARY_USER, PRIMARY_PASSWORD) } }));
    process.env.OCIPKG_CONFIG_DIR = config;
    image = buildImage([[{ path: 'lib/liblz4.a', body: file(join(DEBIAN_LIB, 'liblz4.a')) }], [{ path: 'include/lz4.h', body: file('/usr/include/lz4.h') }]], { name: 'lz4' });
    await publish(image, atPrimary.host, 'acme/lz4', '1');
    await publish(image, atMirror.host, 'acme/lz4', '1');
  });


  afterAll(async () => {
    await closeDispatchers();
    await Promise.all([atPrimary?.close(), atMirror?.close()]);
    await Promise.all([primary?.stop(), mirror?.stop(), tokens?.stop()]);
  });

  it("a token-auth mirror on another port gets its own credentials, the primary its own, and neither the other's", async () => {
    // Sessions (and tokens) from publishing are dropped: what counts is what the pull asks for.
    forgetSession(atMirror.host);
    forgetSession(atPrimary.host);
    atPrimary.reset();
    atMirror.reset();
    tokens.requests.length = 0;
    const layer = image.layers[0]!.desc;
    atMirror.add({ method: 'GET', path: blobPath(layer.digest), fault: { kind: 'status', status: 404 } });
    await useConf('creds', `[[registry]]\nlocation = "${atPrimary.host}"\n[[registry.mirror]]\nlocation = "${atMirror.host}"\n`);
    const store = await tempDir('store');
    await fetchPackage(parseReference(`${atPrimary.host}/acme/lz4:1`), TRIPLE, store);
    expect(expectStoreVerified(store).packages).toHaveLength(1);
    // The mirror served manifest and config with a token got for its own user...
    expect(tokens.requests.length).toBeGreaterThan(0);
    expect(new Set(tokens.requests.map((r) => r.user))).toEqual(new Set([MIRROR_USER]));
    const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    const mirrorAuth = atMirror.requests.map((r) => r.headers.authorization).filter((a) => a !== undefined);
    expect(mirrorAuth.length).toBeGreaterThan(0);
    expect(mirrorAuth.every((a) => a.startsWith('Bearer '))).toBe(true);
    // ...and the primary, asked for the one blob the mirror lacked, saw only its own Basic credentials.
    // (Twice: the first GET meets the Basic challenge.)
    expect(blobGets(atPrimary, layer.digest)).toBeGreaterThan(0);
    expect(blobGets(atPrimary, image.configDesc.digest)).toBe(0);
    const primaryAuth = atPrimary.requests.map((r) => r.headers.authorization).filter((a) => a !== undefined);
    expect(primaryAuth.length).toBeGreaterThan(0);
    expect(new Set(primaryAuth)).toEqual(new Set([basic(PRIMARY_USER, PRIMARY_PASSWORD)]));
    expect(primaryAuth.some((a) => tokens.issued.some((t) => a.includes(t)))).toBe(false);
  });
});

describe('a real pull-through cache: distribution in proxy mode', () => {
  let upstream: TestRegistry;
  let cache: TestRegistry;
  let image: TestImage;
  let index: Descriptor;

  beforeAll(async () => {
    upstream = await startRegistry();
    cache = await startRegistry({ extraConfig: ['proxy:', `  remoteurl: ${upstream.url}`].join('\n') });
    image = buildImage([[{ path: 'lib/libz.a', body: file(join(DEBIAN_LIB, 'libz.a')) }], [{ path: 'include/zlib.h', body: file('/usr/include/zlib.h') }]], { name: 'zlib' });
    await publish(image, upstream.host, 'acme/zlib', '1');
    // The same build under an index, as `ocipkg publish` tags several targets.
    const indexBytes = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: OCI_INDEX,
      manifests: [{ ...image.manifestDesc, artifactType: 'application/vnd.ocipkg.v1.artifact', platform: { os: 'linux', architecture: 'amd64' }, annotations: { [ANNOTATION_TARGET]: TRIPLE } }],
    }));
    index = descriptorFor(OCI_INDEX, indexBytes);
    const repo = new RegistryRepository(upstream.host, 'acme/zlib');
    await repo.push(index, indexBytes);
    await repo.tag(index, 'multi');
    await useConf('proxy', `[[registry]]\nlocation = "${upstream.host}"\n[[registry.mirror]]\nlocation = "${cache.host}"\n`);
  });

  afterAll(async () => {
    await closeDispatchers();
    await Promise.all([cache?.stop(), upstream?.stop()]);
  });

  it('a package fetched once through the cache is served by it with the upstream stopped, by tag and by digest, manifest and index alike', async () => {
    const refs = [`${upstream.host}/acme/zlib:1`, `${upstream.host}/acme/zlib:multi`, `${upstream.host}/acme/zlib@${image.manifestDesc.digest}`];
    for (const ref of refs) await fetchPackage(parseReference(ref), TRIPLE, await tempDir('warm'));
    await upstream.stop();
    await closeDispatchers();
    for (const ref of refs) {
      const store = await tempDir('offline-upstream');
      const pkg = await fetchPackage(parseReference(ref), TRIPLE, store);
      expect(pkg.manifestDigest).toBe(image.manifestDesc.digest);
      expect(expectStoreVerified(store).packages).toEqual([image.manifestDesc.digest.slice(7)]);
    }
  });

  it('with cache and upstream both gone, the error names both', async () => {
    await cache.stop();
    await closeDispatchers();
    const err = await fetchPackage(parseReference(`${upstream.host}/acme/zlib:1`), TRIPLE, await tempDir('gone')).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(`mirror ${cache.host}/acme/zlib`);
    expect((err as Error).message).toContain(`primary ${upstream.host}/acme/zlib`);
    expect(await codeOf(Promise.reject(err))).toBe('EUNREACHABLE');
  });
});

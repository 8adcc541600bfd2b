import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copy } from '../src/copy.js';
import { fetchPackage } from '../src/fetch.js';
import { LayoutDirectory } from '../src/layout/directory.js';
import { descriptorFor } from '../src/oci/verify.js';
import { ANNOTATION_TARGET, MAX_MANIFEST_BYTES, OCI_INDEX, OCI_MANIFEST } from '../src/oci/mediatypes.js';
import type { Descriptor, ImageIndex } from '../src/oci/types.js';
import { parseReference } from '../src/reference.js';
import { RegistryRepository } from '../src/registry/client.js';
import { closeDispatchers } from '../src/registry/http.js';
import { tripleToPlatform } from '../src/triple.js';
import { ocipkg, ocipkgLink, tempDir } from './helpers/cli.js';
import { codeOf } from './helpers/errors.js';
import { startFaultProxy, type Fault, type FaultProxy } from './helpers/fault-proxy.js';
import { buildImage, writeImage, type TestImage } from './helpers/layers.js';
import { DEBIAN_LIB } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { expectNothingInstalled, expectStoreVerified } from './helpers/store-check.js';

/**
 * Registries (or whatever answers in their place) sending what they should not: bodies shorter or
 * longer than the descriptor, manifests under the wrong Content-Type, oversized, nested or not
 * manifests at all. Each is refused with a stable code, and the store is left without a package,
 * a blob or staging litter. The hostile answers come from a proxy in front of a real registry.
 */
const TRIPLE = 'x86_64-unknown-linux-gnu';

let registry: TestRegistry;
let proxy: FaultProxy;
let home: string;
let lz4: TestImage;
/** An index over lz4's manifest, and an index whose entry for TRIPLE is that index. */
let index: { desc: Descriptor; bytes: Buffer };

function indexOf(entries: Descriptor[]): { desc: Descriptor; bytes: Buffer } {
  const doc: ImageIndex = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries };
  const bytes = Buffer.from(JSON.stringify(doc));
  return { desc: descriptorFor(OCI_INDEX, bytes), bytes };
}

const forTarget = (desc: Descriptor): Descriptor => ({ ...desc, platform: tripleToPlatform(TRIPLE), annotations: { [ANNOTATION_TARGET]: TRIPLE } });

beforeAll(async () => {
  home = await tempDir('hostile');
  // The suite's global setup keeps credentials and stores away from the real home; retries here
  // wait milliseconds, not seconds.
  process.env.OCIPKG_RETRY_BASE_MS = '5';
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.url);

  lz4 = buildImage([[{ path: 'lib/liblz4.a', body: readFileSync(join(DEBIAN_LIB, 'liblz4.a')) }, { path: 'include/lz4.h', body: readFileSync('/usr/include/lz4.h') }]], {
    name: 'lz4',
  });
  const layout = new LayoutDirectory(join(home, 'layout'));
  await writeImage(layout, lz4, '1');
  const remote = new RegistryRepository(registry.host, 'hostile/lz4');
  await copy(layout, '1', remote, '1');

  index = indexOf([forTarget(lz4.manifestDesc)]);
  await remote.push(index.desc, index.bytes);
  await remote.tag(index.desc, 'multi');
  // The real registry takes an index whose entry is an index (the image spec allows it).
  const nested = indexOf([forTarget(index.desc)]);
  await remote.push(nested.desc, nested.bytes);
  await remote.tag(nested.desc, 'nested');
});

afterAll(async () => {
  await closeDispatchers();
  await proxy?.close();
  await registry?.stop();
  await rm(home, { recursive: true, force: true });
});

const at = (digest: string) => new RegExp(`/${digest}$`);
const TAG = /\/manifests\/1$/;
const MULTI = /\/manifests\/multi$/;

/** `get` through the proxy with one hostile answer in place; the code it fails with. */
async function refused(image: string, path: RegExp, fault: Fault): Promise<string> {
  proxy.reset();
  proxy.add({ method: 'GET', path, fault });
  const store = await tempDir('store');
  const code = await codeOf(fetchPackage(parseReference(`${proxy.host}/hostile/${image}`), TRIPLE, store));
  expect(proxy.requests.some((r) => r.fault === fault.kind), 'the hostile answer was sent').toBe(true);
  expectNothingInstalled(store);
  return code;
}

describe('the images are sound without the proxy meddling', () => {
  it.each(['lz4:1', 'lz4:multi'])('%s installs', async (image) => {
    proxy.reset();
    const store = await tempDir('store');
    await fetchPackage(parseReference(`${proxy.host}/hostile/${image}`), TRIPLE, store);
    expect(expectStoreVerified(store).packages).toHaveLength(1);
  });
});

describe('bodies that do not match their descriptor (EBADSIZE, EINTEGRITY)', () => {
  const layer = () => lz4.layers[0]!.desc;
  const cases: [string, () => [string, RegExp, Fault], string][] = [
    ['a layer cut short, with a matching Content-Length', () => ['lz4:1', at(layer().digest), { kind: 'truncate', to: 1000 }], 'EBADSIZE'],
    ['a layer cut short, chunked', () => ['lz4:1', at(layer().digest), { kind: 'serve', body: Buffer.alloc(1000), contentType: 'application/octet-stream', chunked: true }], 'EBADSIZE'],
    ['a layer longer than its descriptor, declared', () => ['lz4:1', at(layer().digest), { kind: 'extra', bytes: 512, declared: true }], 'EBADSIZE'],
    ['a layer longer than its descriptor, chunked', () => ['lz4:1', at(layer().digest), { kind: 'extra', bytes: 512, declared: false }], 'EBADSIZE'],
    ['a layer of the right size with other bytes', () => ['lz4:1', at(layer().digest), { kind: 'serve', body: Buffer.alloc(layer().size, 1), contentType: 'application/octet-stream' }], 'EINTEGRITY'],
    ['a config cut short', () => ['lz4:1', at(lz4.configDesc.digest), { kind: 'truncate', to: 10 }], 'EBADSIZE'],
    ['a config longer than its descriptor, chunked', () => ['lz4:1', at(lz4.configDesc.digest), { kind: 'extra', bytes: 10, declared: false }], 'EBADSIZE'],
    ["an index entry's manifest cut short", () => ['lz4:multi', at(lz4.manifestDesc.digest), { kind: 'truncate', to: 100 }], 'EBADSIZE'],
    ["an index entry's manifest longer than its descriptor", () => ['lz4:multi', at(lz4.manifestDesc.digest), { kind: 'extra', bytes: 100, declared: true }], 'EBADSIZE'],
  ];
  it.each(cases)('%s', async (_name, setup, code) => {
    const [image, path, fault] = setup();
    expect(await refused(image, path, fault)).toBe(code);
  });
});

describe('manifests that are not what they claim (EMANIFEST, ETOOLARGE)', () => {
  const serve = (body: string | Buffer, contentType = OCI_MANIFEST, chunked = false): Fault => ({ kind: 'serve', body: Buffer.from(body), contentType, chunked });
  const digestOf = (s: string) => `sha256:${s.repeat(64).slice(0, 64)}`;
  const cases: [string, () => [string, RegExp, Fault], string][] = [
    ['a manifest served as text/html', () => ['lz4:1', TAG, { kind: 'content-type', value: 'text/html' }], 'EMANIFEST'],
    ['a manifest served as an index', () => ['lz4:1', TAG, { kind: 'content-type', value: OCI_INDEX }], 'EMANIFEST'],
    ['an index served as a manifest', () => ['lz4:multi', MULTI, { kind: 'content-type', value: OCI_MANIFEST }], 'EMANIFEST'],
    ['a manifest cut short (no longer JSON)', () => ['lz4:1', TAG, { kind: 'truncate', to: 100 }], 'EMANIFEST'],
    [
      'a manifest over 4 MiB with its Content-Length',
      () => ['lz4:1', TAG, serve(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, annotations: { pad: 'x'.repeat(MAX_MANIFEST_BYTES) } }))],
      'ETOOLARGE',
    ],
    [
      'a manifest over 4 MiB, chunked',
      () => ['lz4:1', TAG, serve(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, annotations: { pad: 'x'.repeat(MAX_MANIFEST_BYTES) } }), OCI_MANIFEST, true)],
      'ETOOLARGE',
    ],
    ['an HTML page as application/json', () => ['lz4:1', TAG, serve('<html><body>Sign in to continue</body></html>', 'application/json')], 'EMANIFEST'],
    ['JSON null', () => ['lz4:1', TAG, serve('null', 'application/json')], 'EMANIFEST'],
    ['a JSON array', () => ['lz4:1', TAG, serve('[]', 'application/json')], 'EMANIFEST'],
    ['a JSON string', () => ['lz4:1', TAG, serve('"manifest"', 'application/json')], 'EMANIFEST'],
    ['an object that is no manifest', () => ['lz4:1', TAG, serve('{"hello":"world"}')], 'EMANIFEST'],
    ['schemaVersion 1', () => ['lz4:1', TAG, serve('{"schemaVersion":1,"name":"x","fsLayers":[]}')], 'EMANIFEST'],
    ['layers that are not an array', () => ['lz4:1', TAG, serve(JSON.stringify({ schemaVersion: 2, config: lz4.configDesc, layers: 'all of them' }))], 'EMANIFEST'],
    [
      'a layer descriptor with a malformed digest',
      () => ['lz4:1', TAG, serve(JSON.stringify({ schemaVersion: 2, config: lz4.configDesc, layers: [{ ...lz4.layers[0]!.desc, digest: 'md5:abc' }] }))],
      'EMANIFEST',
    ],
    [
      'a layer descriptor with a negative size',
      () => ['lz4:1', TAG, serve(JSON.stringify({ schemaVersion: 2, config: lz4.configDesc, layers: [{ ...lz4.layers[0]!.desc, size: -1 }] }))],
      'EMANIFEST',
    ],
    [
      'an index without manifests',
      () => ['lz4:multi', MULTI, serve(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, entries: [{ digest: digestOf('a') }] }), OCI_INDEX)],
      'EMANIFEST',
    ],
  ];
  it.each(cases)('%s', async (_name, setup, code) => {
    const [image, path, fault] = setup();
    expect(await refused(image, path, fault)).toBe(code);
  });

  it('an index nesting an index, straight from the registry', async () => {
    proxy.reset();
    const store = await tempDir('store');
    expect(await codeOf(fetchPackage(parseReference(`${proxy.host}/hostile/lz4:nested`), TRIPLE, store))).toBe('EMANIFEST');
    expectNothingInstalled(store);
  });

  // Entries that would crash triple matching or reach a terminal. The real registry stores the
  // well-typed ones as they are (pushed there); those it refuses to store come through the proxy.
  const hostileEntries: [string, Record<string, unknown>, RegExp, 'pushed' | 'served'][] = [
    ['a platform that is a string', { platform: 'linux' }, /platform of sha256:\w+ is not an object/, 'served'],
    ['a platform whose os is a number', { platform: { os: 5, architecture: 'amd64' } }, /platform of sha256:\w+ is not an object/, 'served'],
    ['a platform without os', { platform: { architecture: 'amd64' } }, /platform of sha256:\w+ is not an object/, 'pushed'],
    ['annotations that are not strings', { annotations: { [ANNOTATION_TARGET]: 5 } }, /annotations of sha256:\w+ are not a map of strings/, 'served'],
    ['a target annotation with a newline and escape sequences', { annotations: { [ANNOTATION_TARGET]: 'evil\n\u001b[31mocipkg: all good\u001b[0m' } }, /annotation of sha256:\w+, "evil\\n\\u001b\[31mocipkg: all good\\u001b\[0m", is not a target name/, 'pushed'],
  ];
  it.each(hostileEntries)('an index entry with %s is refused in one line (exit 6), by get and inspect', async (name, fields, message, how) => {
    const doc = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [forTarget(lz4.manifestDesc), { ...lz4.manifestDesc, ...fields }] };
    const bytes = Buffer.from(JSON.stringify(doc));
    let image: string;
    proxy.reset();
    if (how === 'pushed') {
      const remote = new RegistryRepository(registry.host, 'hostile/lz4');
      const desc = descriptorFor(OCI_INDEX, bytes);
      const tag = `entry-${hostileEntries.findIndex(([n]) => n === name)}`;
      await remote.push(desc, bytes);
      await remote.tag(desc, tag);
      image = `${registry.host}/hostile/lz4:${tag}`;
    } else {
      proxy.add({ path: MULTI, fault: serve(bytes, OCI_INDEX) });
      image = `${proxy.host}/hostile/lz4:multi`;
    }
    const store = await tempDir('store');
    for (const args of [['get', image], ['get', '--target', 'aarch64-unknown-linux-gnu', image], ['inspect', '--target', TRIPLE, image]]) {
      const result = await ocipkg(args, { OCIPKG_DATA_DIR: store });
      expect(result.code, result.stderr).toBe(6);
      expect(result.stdout).toBe('');
      expect(result.stderr.trim().split('\n'), result.stderr).toHaveLength(1);
      expect(result.stderr).toContain(image);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).not.toContain('\u001b');
    }
    if (how === 'served') expect(proxy.requests.some((r) => r.fault === 'serve'), 'the hostile answer was sent').toBe(true);
    expectNothingInstalled(store);
  });

  it('an index entry is taken for the target its build records: a mislabelled build is refused, a platform-only entry for another libc passed over, two builds under one annotation refused', async () => {
    // Builds recording their targets, as ocipkg pack writes them, pushed beside lz4.
    const files = [{ path: 'lib/liblz4.a', body: readFileSync(join(DEBIAN_LIB, 'liblz4.a')) }, { path: 'include/lz4.h', body: '// lz4\n' }];
    const recording = (target: string) => buildImage([files], { name: 'lz4', metadata: { target } });
    const [arm64, musl, gnu] = [recording('aarch64-unknown-linux-gnu'), recording('x86_64-unknown-linux-musl'), recording(TRIPLE)];
    const layout = new LayoutDirectory(join(home, 'targets-layout'));
    const remote = new RegistryRepository(registry.host, 'hostile/lz4');
    for (const [i, build] of [arm64, musl, gnu].entries()) {
      await writeImage(layout, build, `t${i}`);
      await copy(layout, `t${i}`, remote, `t${i}`);
    }
    const platformOnly = (desc: Descriptor): Descriptor => ({ ...desc, platform: tripleToPlatform(TRIPLE) });
    const tagged = async (tag: string, entries: Descriptor[]) => {
      const { desc, bytes } = indexOf(entries);
      await remote.push(desc, bytes);
      await remote.tag(desc, tag);
      return `${registry.host}/hostile/lz4:${tag}`;
    };
    const store = await tempDir('store');
    const get = (image: string) => ocipkg(['get', '--json', image], { OCIPKG_DATA_DIR: store });

    const lie = await get(await tagged('lie', [forTarget(arm64.manifestDesc)]));
    expect(lie.code).toBe(6);
    expect(lie.stderr).toContain(`the index's entry for ${TRIPLE} is no build for it (${arm64.manifestDesc.digest} is a build for aarch64-unknown-linux-gnu)`);
    expectNothingInstalled(store);

    const noAnnotations = await get(await tagged('platforms', [platformOnly(musl.manifestDesc), platformOnly(gnu.manifestDesc)]));
    expect(noAnnotations.code, noAnnotations.stderr).toBe(0);
    expect(JSON.parse(noAnnotations.stdout)).toMatchObject({ manifestDigest: gnu.manifestDesc.digest, target: TRIPLE });

    const two = await get(await tagged('two', [forTarget(musl.manifestDesc), forTarget(gnu.manifestDesc)]));
    expect(two.code).toBe(6);
    expect(two.stderr).toContain(`the index lists two builds for ${TRIPLE} (${musl.manifestDesc.digest}, ${gnu.manifestDesc.digest}); a target has one`);
  });

  it('the CLI reports a refused manifest in one line on stderr, nothing on stdout', async () => {
    proxy.reset();
    proxy.add({ method: 'GET', path: TAG, fault: serve('x'.repeat(MAX_MANIFEST_BYTES + 1), OCI_MANIFEST, true) });
    const store = await tempDir('store');
    const result = await ocipkg(['get', `${proxy.host}/hostile/lz4:1`], { OCIPKG_DATA_DIR: store });
    expect(result.code).toBe(6);
    expect(result.stdout).toBe('');
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expectNothingInstalled(store);
  });
});

describe("the registry's text on stdout", () => {
  it('inspect prints an index annotation with DEL, C1 controls (U+009B is a CSI) and a right-to-left override escaped, as JSON that reads back the same', async () => {
    const hostile = 'text\u007f\u009b2J\u0085\u202egpj.exe';
    const doc = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [forTarget(lz4.manifestDesc)], annotations: { 'org.opencontainers.image.description': hostile } };
    const bytes = Buffer.from(JSON.stringify(doc));
    const remote = new RegistryRepository(registry.host, 'hostile/lz4');
    const desc = descriptorFor(OCI_INDEX, bytes);
    await remote.push(desc, bytes);
    await remote.tag(desc, 'described');
    const result = await ocipkg(['inspect', `${registry.host}/hostile/lz4:described`], { OCIPKG_DATA_DIR: await tempDir('store') });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).not.toMatch(/[\u007f-\u009f\u202e]/);
    expect(result.stdout).toContain('text\\u007f\\u009b2J\\u0085\\u202egpj.exe');
    expect(JSON.stringify(JSON.parse(result.stdout))).toContain(JSON.stringify(hostile).slice(1, -1));
  });
});

describe("the registry's text on stderr", () => {
  it('an error code with control characters is printed escaped, in one line, by both CLIs', async () => {
    proxy.reset();
    proxy.add({ path: TAG, fault: { kind: 'status', status: 404, code: 'MANIFEST_UNKNOWN\n\u001b[2J\u009b31m\u007f\tx' } });
    const image = `${proxy.host}/hostile/lz4:1`;
    const store = await tempDir('store');
    for (const run of [() => ocipkg(['get', image], { OCIPKG_DATA_DIR: store }), () => ocipkgLink(['--libs', image], { OCIPKG_DATA_DIR: store })]) {
      const result = await run();
      expect(result.code, result.stderr).not.toBe(0);
      expect(result.stderr).toMatch(/^ocipkg(-link)?: .*not found \(MANIFEST_UNKNOWN\\n\\u001b\[2J\\u009b31m\\u007f\\tx\)\n$/);
    }
  });
});


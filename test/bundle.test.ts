import { createHash, createSign, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ocipkg, tempDir, type RunResult } from './helpers/cli.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { debianPrefix } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

/**
 * cosign 3's signatures, produced here without ocipkg from cosign's specs/BUNDLE_SPEC.md and
 * cmd/cosign/cli/sign/sign.go: an in-toto v1 statement naming the image digest, in a DSSE envelope
 * signed with node:crypto, in a v0.3 bundle; the bundle as the one layer of a referrer manifest
 * (artifactType the bundle type, empty config, subject the image), listed in the fallback index
 * `sha256-<hex>`, all pushed over the distribution API directly.
 */
let registry: TestRegistry;
let work: string;
let archive: string;

const BUNDLE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';
const INTOTO = 'application/vnd.in-toto+json';

/** One line on stderr, and exit 7: a policy failure (no trusted signature). */
function expectOneLine(result: RunResult, pattern: RegExp): void {
  expect(result.code, result.stdout + result.stderr).toBe(7);
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toMatch(pattern);
}

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function pushBlob(repository: string, bytes: Buffer): Promise<{ digest: string; size: number }> {
  const digest = sha256(bytes);
  const started = await fetch(`${registry.url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  expect(started.status).toBe(202);
  const location = new URL(started.headers.get('location')!, registry.url);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, { method: 'PUT', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
  expect(put.status, await put.text()).toBe(201);
  return { digest, size: bytes.length };
}

async function pushManifest(repository: string, reference: string, mediaType: string, doc: unknown): Promise<{ mediaType: string; digest: string; size: number }> {
  const bytes = Buffer.from(JSON.stringify(doc));
  const res = await fetch(`${registry.url}/v2/${repository}/manifests/${reference}`, { method: 'PUT', body: bytes, headers: { 'content-type': mediaType } });
  expect(res.status, await res.text()).toBe(201);
  return { mediaType, digest: sha256(bytes), size: bytes.length };
}

async function push(repository: string): Promise<{ image: string; digest: string }> {
  const image = `${registry.host}/${repository}:1`;
  const pushed = await ocipkg(['push', archive, image]);
  expect(pushed.code, pushed.stderr).toBe(0);
  return { image, digest: pushed.stdout.trim().split('@')[1]! };
}

/** DSSE's pre-authentication encoding, what the envelope's signature covers. */
function pae(type: string, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${payload.length} `), payload]);
}

/** Attaches to `digest` in `repository` a bundle by `key` whose statement names `claimed`. */
async function attachBundle(repository: string, digest: string, claimed: string, key: { privateKey: KeyObject; publicKey: KeyObject }, fallbackTag = true): Promise<{ mediaType: string; digest: string; size: number }> {
  const statement = Buffer.from(JSON.stringify({
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ digest: { sha256: claimed.slice(7) } }],
    predicateType: 'https://sigstore.dev/cosign/sign/v1',
    predicate: {},
  }));
  const sig = createSign('sha256').update(pae(INTOTO, statement)).sign(key.privateKey).toString('base64');
  const hint = createHash('sha256').update(key.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
  const bundle = Buffer.from(JSON.stringify({
    mediaType: BUNDLE,
    verificationMaterial: { publicKey: { hint }, tlogEntries: [], timestampVerificationData: { rfc3161Timestamps: [] } },
    dsseEnvelope: { payload: statement.toString('base64'), payloadType: INTOTO, signatures: [{ sig, keyid: '' }] },
  }));
  const subjectRes = await fetch(`${registry.url}/v2/${repository}/manifests/${digest}`, { method: 'HEAD', headers: { accept: `${MANIFEST}, ${INDEX}` } });
  expect(subjectRes.status).toBe(200);
  const subject = { mediaType: subjectRes.headers.get('content-type')!, digest, size: Number(subjectRes.headers.get('content-length')) };
  const layer = { mediaType: BUNDLE, ...(await pushBlob(repository, bundle)) };
  const config = { mediaType: 'application/vnd.oci.empty.v1+json', ...(await pushBlob(repository, Buffer.from('{}'))) };
  const referrer = { schemaVersion: 2, mediaType: MANIFEST, artifactType: BUNDLE, config, layers: [layer], subject, annotations: { 'dev.sigstore.bundle.content': 'dsse-envelope' } };
  const bytes = Buffer.from(JSON.stringify(referrer));
  const desc = await pushManifest(repository, sha256(bytes), MANIFEST, referrer);
  if (!fallbackTag) return desc;
  // The fallback tag's index, read, extended and written back as a client without the API does.
  const tag = `sha256-${digest.slice(7)}`;
  const existing = await fetch(`${registry.url}/v2/${repository}/manifests/${tag}`, { headers: { accept: INDEX } });
  const manifests = existing.status === 200 ? ((await existing.json()) as { manifests: unknown[] }).manifests : [];
  await pushManifest(repository, tag, INDEX, { schemaVersion: 2, mediaType: INDEX, manifests: [...manifests, { ...desc, artifactType: BUNDLE }] });
  return desc;
}

async function publicKeyFile(name: string, key: KeyObject): Promise<string> {
  const path = join(work, `${name}.pub`);
  await writeFile(path, key.export({ type: 'spki', format: 'pem' }));
  return path;
}

beforeAll(async () => {
  registry = await startRegistry();
  work = await tempDir('bundle');
  archive = join(work, 'lz4.tar');
  const prefix = await debianPrefix(join(work, 'lz4'), 'lz4', ['lz4.h']);
  expect((await ocipkg(['pack', prefix, archive, '-t', `${registry.host}/acme/lz4:1`])).code).toBe(0);
});

afterAll(async () => {
  await registry?.stop();
});

describe("cosign 3's sigstore bundles", () => {
  it('ocipkg verify accepts a bundle by the key over the digest, and refuses other digests and keys', async () => {
    const alice = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const mallory = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pub = await publicKeyFile('alice', alice.publicKey);

    const good = await push('bundled/good');
    await attachBundle('bundled/good', good.digest, good.digest, alice);
    const verified = await ocipkg(['verify', '--key', pub, good.image]);
    expect(verified.code, verified.stderr).toBe(0);
    const statements = JSON.parse(verified.stdout) as { subject: { digest: { sha256: string } }[]; predicateType: string }[];
    expect(statements.map((s) => s.subject[0]!.digest.sha256)).toEqual([good.digest.slice(7)]);
    expect(statements[0]!.predicateType).toBe('https://sigstore.dev/cosign/sign/v1');
    // Another key's public key does not verify it.
    expectOneLine(await ocipkg(['verify', '--key', await publicKeyFile('mallory', mallory.publicKey), good.image]), /no matching signatures/);

    const elsewhere = await push('bundled/elsewhere');
    await attachBundle('bundled/elsewhere', elsewhere.digest, `sha256:${'0'.repeat(64)}`, alice);
    expectOneLine(await ocipkg(['verify', '--key', pub, elsewhere.image]), /no matching signatures/);

    const forged = await push('bundled/forged');
    await attachBundle('bundled/forged', forged.digest, forged.digest, mallory);
    expectOneLine(await ocipkg(['verify', '--key', pub, forged.image]), /no matching signatures/);

    // A second bundle, by the right key, added to the same list: the first still fails, this one counts.
    await attachBundle('bundled/forged', forged.digest, forged.digest, alice);
    expect(JSON.parse((await ocipkg(['verify', '--key', pub, forged.image])).stdout)).toHaveLength(1);

    const unsigned = await push('bundled/unsigned');
    expectOneLine(await ocipkg(['verify', '--key', pub, unsigned.image]), /no signatures found/);
  });

  it('satisfies the trust policy: an image signed only by a bundle enters the store', async () => {
    const trusted = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pub = await publicKeyFile('trusted', trusted.publicKey);
    const dir = await tempDir('bundle-project');
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'addon', ocipkg: { trust: { [`${registry.host}/policy`]: { keys: [pub] } } } }));
    const store = await tempDir('store');
    const env = { OCIPKG_DATA_DIR: store, OCIPKG_PROJECT_DIR: dir };
    const packagesIn = () => (existsSync(join(store, 'packages', 'sha256')) ? readdirSync(join(store, 'packages', 'sha256')) : []);

    const wrong = await push('policy/wrong');
    await attachBundle('policy/wrong', wrong.digest, wrong.digest, other);
    expectOneLine(await ocipkg(['get', wrong.image], env), /has no signature by a key .*package\.json trusts for .*policy" \(tried .*trusted\.pub/);
    expect(packagesIn()).toEqual([]);

    const signed = await push('policy/signed');
    await attachBundle('policy/signed', signed.digest, signed.digest, trusted);
    const got = await ocipkg(['get', signed.image], env);
    expect(got.code, got.stderr).toBe(0);
    expect(packagesIn()).toHaveLength(1);
  });

  it('reads bundles from the referrers API where the registry has one, before the fallback tag', async () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pub = await publicKeyFile('referrers', key.publicKey);
    const target = await push('acme/referrers');
    // Attached as a registry with the API keeps it: a referrer manifest, no fallback tag.
    const referrer = await attachBundle('acme/referrers', target.digest, target.digest, key, false);
    expectOneLine(await ocipkg(['verify', '--key', pub, target.image]), /no signatures found/);
    // distribution 2 has no referrers API; the fault proxy answers for it as one that has.
    const proxy = await startFaultProxy(registry.url);
    try {
      proxy.add({ method: 'GET', path: new RegExp(`/referrers/${target.digest}$`), fault: { kind: 'serve', contentType: INDEX, body: Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: [{ ...referrer, artifactType: BUNDLE }] })) } });
      const verified = await ocipkg(['verify', '--key', pub, target.image.replace(registry.host, proxy.host)]);
      expect(verified.code, verified.stderr).toBe(0);
      expect(proxy.requests.some((r) => r.path.endsWith(`/referrers/${target.digest}`))).toBe(true);
    } finally {
      await proxy.close();
    }
  });
});

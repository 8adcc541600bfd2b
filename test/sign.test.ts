import { execFileSync } from 'node:child_process';
import { createHash, createPublicKey, createSign, createVerify, generateKeyPairSync } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ocipkg, ocipkgLink, tempDir, type RunResult } from './helpers/cli.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { debianPrefix } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

/**
 * Signing against the real registry, checked from outside: ocipkg's signatures are verified by an
 * independent check written here from cosign's format (fetch the `sha256-<hex>.sig` manifest over
 * the distribution API, verify the ECDSA signature with node:crypto), and signatures this file
 * writes itself (a layout pushed with skopeo) are verified by ocipkg. Then the trust policy: an
 * image the policy covers enters the store only when a trusted key signed it.
 */
let registry: TestRegistry;
let work: string;
let archive: string;
const PASSWORD = { COSIGN_PASSWORD: 'correct horse' };

/** One line on stderr; exit 7 (policy) from ocipkg, 1 from ocipkg-link (pkg-config's one failure status). */
function expectOneLine(result: RunResult, pattern: RegExp, status = 7): void {
  expect(result.code, result.stdout + result.stderr).toBe(status);
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toMatch(pattern);
}

async function keyPair(name: string): Promise<{ key: string; pub: string }> {
  const prefix = join(work, name);
  const made = await ocipkg(['generate-key-pair', '--output-key-prefix', prefix], PASSWORD);
  expect(made.code, made.stderr).toBe(0);
  return { key: `${prefix}.key`, pub: `${prefix}.pub` };
}

async function push(repository: string): Promise<{ image: string; digest: string }> {
  const image = `${registry.host}/${repository}:1`;
  const pushed = await ocipkg(['push', archive, image]);
  expect(pushed.code, pushed.stderr).toBe(0);
  return { image, digest: pushed.stdout.trim().split('@')[1]! };
}

/** The distribution API, read directly: no ocipkg code involved. */
async function registryGet(path: string, accept = 'application/vnd.oci.image.manifest.v1+json'): Promise<Buffer> {
  const res = await fetch(`${registry.url}/v2/${path}`, { headers: { accept } });
  expect(res.status, path).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

/** cosign's check, written from its format: the payloads under `sha256-<hex>.sig` a key signed. */
async function independentlyVerified(repository: string, digest: string, pubPem: string): Promise<Record<string, unknown>[]> {
  const manifest = JSON.parse((await registryGet(`${repository}/manifests/sha256-${digest.slice(7)}.sig`)).toString()) as {
    layers: { mediaType: string; digest: string; annotations: Record<string, string> }[];
  };
  const verified = [];
  for (const layer of manifest.layers) {
    expect(layer.mediaType).toBe('application/vnd.dev.cosign.simplesigning.v1+json');
    const payload = await registryGet(`${repository}/blobs/${layer.digest}`, '*/*');
    const ok = createVerify('sha256').update(payload).verify(createPublicKey(pubPem), Buffer.from(layer.annotations['dev.cosignproject.cosign/signature']!, 'base64'));
    const claims = JSON.parse(payload.toString()) as { critical: { image: { 'docker-manifest-digest': string }; type: string } };
    if (ok && claims.critical.type === 'cosign container image signature' && claims.critical.image['docker-manifest-digest'] === digest) verified.push(claims);
  }
  return verified;
}

/**
 * A signature written without ocipkg: payload, config and manifest as cosign lays them out, in an
 * OCI layout that skopeo pushes to `sha256-<hex>.sig`. `claimed` is the digest the payload names.
 */
async function foreignSignature(repository: string, digest: string, claimed: string, sign: (payload: Buffer) => string): Promise<void> {
  const dir = join(work, `foreign-${Math.random().toString(36).slice(2)}`);
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  const blob = async (bytes: Buffer) => {
    const hex = createHash('sha256').update(bytes).digest('hex');
    await writeFile(join(dir, 'blobs', 'sha256', hex), bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  };
  const payload = Buffer.from(JSON.stringify({
    critical: { identity: { 'docker-reference': `${registry.host}/${repository}` }, image: { 'docker-manifest-digest': claimed }, type: 'cosign container image signature' },
    optional: null,
  }));
  const layer = { mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', ...(await blob(payload)), annotations: { 'dev.cosignproject.cosign/signature': sign(payload) } };
  const config = { mediaType: 'application/vnd.oci.image.config.v1+json', ...(await blob(Buffer.from(JSON.stringify({ architecture: '', os: '', config: {}, rootfs: { type: 'layers', diff_ids: [layer.digest] } })))) };
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [layer] }));
  const m = await blob(manifest);
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, annotations: { 'org.opencontainers.image.ref.name': 'sig' } }] }));
  execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${dir}:sig`, `docker://${registry.host}/${repository}:sha256-${digest.slice(7)}.sig`]);
}

beforeAll(async () => {
  registry = await startRegistry();
  work = await tempDir('sign');
  archive = join(work, 'lz4.tar');
  const prefix = await debianPrefix(join(work, 'lz4'), 'lz4', ['lz4.h']);
  expect((await ocipkg(['pack', prefix, archive, '-t', `${registry.host}/acme/lz4:1`])).code).toBe(0);
});

afterAll(async () => {
  await registry?.stop();
});

describe('ocipkg sign and verify', () => {
  it('signs what a tag names; an independent check and ocipkg verify both accept it, for that key only', async () => {
    const { key, pub } = await keyPair('alice');
    const other = await keyPair('mallory');
    const { image, digest } = await push('acme/signed');
    const signed = await ocipkg(['sign', '--key', key, image, '-a', 'team=native'], PASSWORD);
    expect(signed.code, signed.stderr).toBe(0);
    expect(signed.stdout.trim()).toBe(`${registry.host}/acme/signed@${digest}`);

    const independent = await independentlyVerified('acme/signed', digest, await readFile(pub, 'utf8'));
    expect(independent).toHaveLength(1);
    expect(independent[0]).toMatchObject({ optional: { team: 'native' } });

    const verified = await ocipkg(['verify', '--key', pub, image]);
    expect(verified.code, verified.stderr).toBe(0);
    const payloads = JSON.parse(verified.stdout) as { critical: { image: Record<string, string> } }[];
    expect(payloads.map((p) => p.critical.image['docker-manifest-digest'])).toEqual([digest]);

    expectOneLine(await ocipkg(['verify', '--key', other.pub, image]), /no matching signatures/);
    // A second signer appends; both verify.
    expect((await ocipkg(['sign', '--key', other.key, image], PASSWORD)).code).toBe(0);
    expect(JSON.parse((await ocipkg(['verify', '--key', other.pub, image])).stdout)).toHaveLength(1);
    expect(await independentlyVerified('acme/signed', digest, await readFile(pub, 'utf8'))).toHaveLength(1);
  });

  it('verifies signatures written without ocipkg, and refuses tampered, misdirected and missing ones', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pub = join(work, 'foreign.pub');
    await writeFile(pub, publicKey.export({ type: 'spki', format: 'pem' }));
    const sign = (payload: Buffer) => createSign('sha256').update(payload).sign(privateKey).toString('base64');

    const good = await push('acme/foreign');
    await foreignSignature('acme/foreign', good.digest, good.digest, sign);
    expect((await ocipkg(['verify', '--key', pub, good.image])).code).toBe(0);

    const unsigned = await push('acme/unsigned');
    expectOneLine(await ocipkg(['verify', '--key', pub, unsigned.image]), /no signatures found/);

    const tampered = await push('acme/tampered');
    await foreignSignature('acme/tampered', tampered.digest, tampered.digest, (payload) => sign(Buffer.from(payload.toString().replace('null', '{}'))));
    expectOneLine(await ocipkg(['verify', '--key', pub, tampered.image]), /no matching signatures/);

    const elsewhere = await push('acme/elsewhere');
    await foreignSignature('acme/elsewhere', elsewhere.digest, `sha256:${'0'.repeat(64)}`, sign);
    expectOneLine(await ocipkg(['verify', '--key', pub, elsewhere.image]), /no matching signatures/);

    const keyless = await ocipkg(['verify', unsigned.image]);
    expect(keyless.code).toBe(2);
    expect(keyless.stderr).toMatch(/^ocipkg: verify: give --key PUB .*checking the store moved to `ocipkg store verify`\n$/);
  });

  it('refuses signature manifests that are malformed or oversized in one line', async () => {
    const { pub } = await keyPair('strict');
    const target = await push('acme/hostile-sig');
    const proxy = await startFaultProxy(registry.url);
    try {
      const image = target.image.replace(registry.host, proxy.host);
      const cases: [string, Buffer, RegExp][] = [
        ['malformed', Buffer.from('{"schemaVersion": 2, "layers": "none"}'), /manifest without "config" and "layers"/],
        ['not JSON', Buffer.from('<html>'), /not JSON/],
        ['oversized', Buffer.alloc(5 << 20, 0x20), /larger than|over the/],
        ['too many signatures', Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'1'.repeat(64)}`, size: 2 }, layers: Array.from({ length: 300 }, () => ({ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', digest: `sha256:${'2'.repeat(64)}`, size: 2 })) })), /300 signatures, more than 256/],
      ];
      for (const [what, body, pattern] of cases) {
        proxy.reset();
        proxy.add({ path: /\/manifests\/sha256-[0-9a-f]{64}\.sig$/, fault: { kind: 'serve', body, contentType: 'application/vnd.oci.image.manifest.v1+json' } });
        const result = await ocipkg(['verify', '--key', pub, image]);
        // A signature manifest refused as content: 6 (integrity or unsafe content).
        expect(result.code, what).toBe(6);
        expect(result.stderr.trim().split('\n'), what).toHaveLength(1);
        expect(result.stderr, what).toMatch(pattern);
      }
    } finally {
      await proxy.close();
    }
  });

  it('verifies the digest a lockfile pins, not where the tag points now', async () => {
    const { key, pub } = await keyPair('locker');
    const locked = await push('acme/locked');
    expect((await ocipkg(['sign', '--key', key, locked.image], PASSWORD)).code).toBe(0);
    const dir = await tempDir('locked-project');
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'p', ocipkg: { packages: { lz4: locked.image } } }));
    expect((await ocipkg(['install'], { OCIPKG_PROJECT_DIR: dir, OCIPKG_DATA_DIR: await tempDir('store'), CI: '' })).code).toBe(0);
    // The tag moves to an unsigned build; the locked digest is still the signed one.
    const other = join(work, 'locked-other.tar');
    expect((await ocipkg(['pack', await debianPrefix(join(work, 'locked-other'), 'lz4', ['lz4.h', 'lz4hc.h']), other, '-t', locked.image])).code).toBe(0);
    expect((await ocipkg(['push', other, locked.image])).code).toBe(0);
    expectOneLine(await ocipkg(['verify', '--key', pub, locked.image]), /no signatures found/);
    const pinned = await ocipkg(['verify', '--key', pub, locked.image], { OCIPKG_PROJECT_DIR: dir });
    expect(pinned.code, pinned.stderr).toBe(0);
    expect((JSON.parse(pinned.stdout) as { critical: { image: Record<string, string> } }[])[0]!.critical.image['docker-manifest-digest']).toBe(locked.digest);
  });

  it('publish --sign-key signs the index and every target manifest', async () => {
    const { key, pub } = await keyPair('publisher');
    const image = `${registry.host}/acme/published:1`;
    const published = await ocipkg(['publish', image, '--target', `x86_64-unknown-linux-gnu=${archive}`, '--sign-key', key], PASSWORD);
    expect(published.code, published.stderr).toBe(0);
    const indexDigest = published.stdout.trim().split('@')[1]!;
    expect(await independentlyVerified('acme/published', indexDigest, await readFile(pub, 'utf8'))).toHaveLength(1);
    const index = JSON.parse((await registryGet(`acme/published/manifests/${indexDigest}`, 'application/vnd.oci.image.index.v1+json')).toString()) as { manifests: { digest: string }[] };
    for (const entry of index.manifests) expect(await independentlyVerified('acme/published', entry.digest, await readFile(pub, 'utf8'))).toHaveLength(1);
  });
});

describe('the trust policy', () => {
  async function project(trust: Record<string, { keys: string[] }>): Promise<string> {
    const dir = await tempDir('trusting-project');
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'addon', ocipkg: { trust } }));
    return dir;
  }
  const packagesIn = (store: string) => (existsSync(join(store, 'packages', 'sha256')) ? readdirSync(join(store, 'packages', 'sha256')) : []);

  it('lets a signed image in, keeps an unsigned or otherwise-signed one out, and records the key for the warm path', async () => {
    const { key, pub } = await keyPair('trusted');
    const other = await keyPair('untrusted');
    const signed = await push('trusted/lz4');
    expect((await ocipkg(['sign', '--key', key, signed.image], PASSWORD)).code).toBe(0);
    const unsigned = await push('trusted/unsigned');
    const wrong = await push('trusted/wrong');
    expect((await ocipkg(['sign', '--key', other.key, wrong.image], PASSWORD)).code).toBe(0);
    const dir = await project({ [`${registry.host}/trusted`]: { keys: [pub] } });
    const store = await tempDir('store');
    const env = { OCIPKG_DATA_DIR: store, OCIPKG_PROJECT_DIR: dir };

    for (const image of [unsigned.image, wrong.image]) {
      const refused = await ocipkgLink(['--libs', image], env);
      expectOneLine(refused, /has no signature by a key .*package\.json trusts for .*trusted" \(tried .*trusted\.pub/, 1);
      expect(packagesIn(store)).toEqual([]);
    }
    // A reference that pins the digest names it once.
    const pinned = await ocipkgLink(['--libs', `${wrong.image}@${wrong.digest}`], env);
    expectOneLine(pinned, new RegExp(`trusted/wrong:1@${wrong.digest} has no signature`), 1);
    expect(pinned.stderr.split(wrong.digest)).toHaveLength(2);
    const accepted = await ocipkgLink(['--libs', signed.image], env);
    expect(accepted.code, accepted.stderr).toBe(0);
    // Warm and offline: the recorded verification stands in for the registry.
    const offline = await ocipkgLink(['--libs', signed.image], { ...env, OCIPKG_OFFLINE: '1' });
    expect(offline.code, offline.stderr).toBe(0);
    expect(offline.stdout).toBe(accepted.stdout);

    // A policy that trusts another key only must verify again, which offline cannot.
    const changed = await project({ [`${registry.host}/trusted`]: { keys: [other.pub] } });
    expectOneLine(await ocipkgLink(['--libs', signed.image], { ...env, OCIPKG_PROJECT_DIR: changed, OCIPKG_OFFLINE: '1' }), /not verified with a key .* trusts/, 1);
    // ocipkg install records which key verified the pin.
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'addon', ocipkg: { packages: { lz4: signed.image }, trust: { [`${registry.host}/trusted`]: { keys: [pub] } } } }));
    const installed = await ocipkg(['install'], { ...env, CI: '' });
    expect(installed.code, installed.stderr).toBe(0);
    const lock = JSON.parse(await readFile(join(dir, 'ocipkg-lock.json'), 'utf8')) as { packages: Record<string, { signedBy?: string }> };
    const spki = createPublicKey(await readFile(pub, 'utf8')).export({ type: 'spki', format: 'der' });
    expect(lock.packages[signed.image]?.signedBy).toBe(`sha256:${createHash('sha256').update(spki).digest('hex')}`);

    // Images the policy does not cover are not asked for signatures.
    const free = await push('elsewhere/lz4');
    expect((await ocipkgLink(['--libs', free.image], env)).code).toBe(0);
  });

  it('names the policy, the key file and the prefix when a trusted key is no public key', async () => {
    const notAKey = join(work, 'not-a-key.pub');
    await writeFile(notAKey, 'root:x:0:0:root:/root:/bin/sh\n');
    const image = (await push('badkey/lz4')).image;
    const dir = await project({ [`${registry.host}/badkey`]: { keys: [notAKey] } });
    const result = await ocipkg(['get', image], { OCIPKG_DATA_DIR: await tempDir('store'), OCIPKG_PROJECT_DIR: dir });
    expectOneLine(result, new RegExp(`package\\.json: trusted key ${notAKey} for "${registry.host}/badkey": .*not PEM`), 1);
  });

  it('applies the machine-wide policy.json where no project rule covers the image', async () => {
    const { key, pub } = await keyPair('machine');
    const config = await tempDir('config');
    await writeFile(join(config, 'policy.json'), JSON.stringify({ trust: { [`${registry.host}/fleet`]: { keys: [pub] } } }));
    const unsigned = await push('fleet/unsigned');
    const signed = await push('fleet/signed');
    expect((await ocipkg(['sign', '--key', key, signed.image], PASSWORD)).code).toBe(0);
    const store = await tempDir('store');
    const env = { OCIPKG_DATA_DIR: store, OCIPKG_CONFIG_DIR: config, OCIPKG_PROJECT_DIR: await tempDir('no-project') };
    expectOneLine(await ocipkg(['get', unsigned.image], env), new RegExp(`has no signature by a key ${config}/policy\\.json trusts`));
    expect(packagesIn(store)).toEqual([]);
    expect((await ocipkg(['get', signed.image], env)).code).toBe(0);
  });

  it('covers requirements too: a signed package that requires an unsigned one is not installed', async () => {
    const { key, pub } = await keyPair('closure');
    const base = await push('closure/base');
    const topImage = `${registry.host}/closure/top:1`;
    const topArchive = join(work, 'top.tar');
    const prefix = await debianPrefix(join(work, 'top'), 'lz4', ['lz4.h'], { 'ocipkg.json': JSON.stringify({ requires: [base.image] }) });
    expect((await ocipkg(['pack', prefix, topArchive, '-t', topImage])).code).toBe(0);
    expect((await ocipkg(['push', topArchive, topImage])).code).toBe(0);
    expect((await ocipkg(['sign', '--key', key, topImage], PASSWORD)).code).toBe(0);
    const dir = await project({ [`${registry.host}/closure`]: { keys: [pub] } });
    const store = await tempDir('store');
    const env = { OCIPKG_DATA_DIR: store, OCIPKG_PROJECT_DIR: dir };
    expectOneLine(await ocipkgLink(['--libs', topImage], env), new RegExp(`closure/base:1@sha256:[0-9a-f]{64} has no signature`), 1);
    expect(packagesIn(store)).toEqual([]);
    expect((await ocipkg(['sign', '--key', key, base.image], PASSWORD)).code).toBe(0);
    expect((await ocipkgLink(['--libs', topImage], env)).code).toBe(0);
    expect(packagesIn(store)).toHaveLength(2);
  });

  it('picks the longest prefix on component boundaries', async () => {
    const { pub } = await keyPair('narrow');
    const wide = await keyPair('wide');
    const image = (await push('prefix/sub/lz4')).image;
    const dir = await project({ [`${registry.host}/prefix`]: { keys: [wide.pub] }, [`${registry.host}/prefix/sub`]: { keys: [pub] }, [`${registry.host}/prefix/su`]: { keys: [wide.pub] } });
    const refused = await ocipkg(['get', image], { OCIPKG_DATA_DIR: await tempDir('store'), OCIPKG_PROJECT_DIR: dir });
    // The rule for prefix/sub, not prefix/su (no component boundary) nor the shorter prefix.
    expectOneLine(refused, new RegExp(`trusts for "${registry.host}/prefix/sub" \\(tried .*narrow\\.pub`));
  });

  it('refuses a signature over the digest a tag pointed at before it moved', async () => {
    const { key, pub } = await keyPair('mover');
    const before = await push('trusted/moving');
    expect((await ocipkg(['sign', '--key', key, before.image], PASSWORD)).code).toBe(0);
    // The tag moves to another build, which nobody signed.
    const other = join(work, 'other.tar');
    const prefix = await debianPrefix(join(work, 'other'), 'lz4', ['lz4.h', 'lz4hc.h']);
    expect((await ocipkg(['pack', prefix, other, '-t', before.image])).code).toBe(0);
    expect((await ocipkg(['push', other, before.image])).code).toBe(0);
    const dir = await project({ '*': { keys: [pub] } });
    const store = await tempDir('store');
    expectOneLine(await ocipkg(['get', before.image], { OCIPKG_DATA_DIR: store, OCIPKG_PROJECT_DIR: dir }), /has no signature by a key/);
    expect(packagesIn(store)).toEqual([]);
  });
});

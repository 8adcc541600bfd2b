import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LayoutDirectory } from '../src/layout/directory.js';
import { fetchSmallBlob, parseManifest } from '../src/oci/manifest.js';
import { ANNOTATION_REF_NAME, OCI_INDEX, OCI_MANIFEST } from '../src/oci/mediatypes.js';
import type { ContentSource } from '../src/oci/content.js';
import { descriptorFor } from '../src/oci/verify.js';
import { RegistryRepository } from '../src/registry/client.js';
import { closeDispatchers } from '../src/registry/http.js';
import { referrersTag } from '../src/sign/bundles.js';
import { signatureTag } from '../src/sign/signatures.js';
import { ocipkg, tempDir, type RunResult } from './helpers/cli.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { debianPrefix } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

/**
 * `ocipkg copy` between registries, layouts and archives, and `copy --lockfile` into an internal
 * registry: every target of the index, every signature and referrer attached to the index and to
 * each target, with the same digests; then a build that reaches only the internal copy (through a
 * registries.conf rewrite) installs the locked packages.
 */
const PASSWORD = { COSIGN_PASSWORD: 'copy test password' };
const TARGETS = ['x86_64-unknown-linux-gnu', 'x86_64-unknown-linux-musl'];

let work: string;
let publicRegistry: TestRegistry;
/** What builds see as the public registry: a proxy that records every request. */
let upstream: FaultProxy;
let internal: TestRegistry;
let index: { digest: string; manifests: string[] };
let publicKey: string;

const image = () => `${upstream.host}/acme/multi:1`;

function ok(result: RunResult): string {
  expect(result.code, result.stderr).toBe(0);
  return result.stdout;
}

/** Every digest a consumer may ask a copy for: the index, its manifests, their signatures and referrers. */
async function attachedDigests(source: ContentSource): Promise<Record<string, string>> {
  const found: Record<string, string> = { index: (await source.resolve('1')).digest };
  for (const digest of [index.digest, ...index.manifests]) {
    for (const tag of [signatureTag(digest), referrersTag(digest)]) {
      found[tag] = await source.resolve(tag).then((d) => d.digest, () => 'missing');
    }
  }
  return found;
}

beforeAll(async () => {
  work = await tempDir('copy-command');
  process.env.OCIPKG_RETRY_BASE_MS = '5';
  [publicRegistry, internal] = await Promise.all([startRegistry(), startRegistry()]);
  upstream = await startFaultProxy(publicRegistry.url);
  const prefix = await debianPrefix(join(work, 'prefix'), 'zstd', ['zstd.h']);
  ok(await ocipkg(['publish', image(), ...TARGETS.flatMap((t) => ['--target', `${t}=${prefix}`])]));
  ok(await ocipkg(['generate-key-pair', '--output-key-prefix', join(work, 'cosign')], PASSWORD));
  publicKey = join(work, 'cosign.pub');
  ok(await ocipkg(['sign', '--key', join(work, 'cosign.key'), '--recursive', image()], PASSWORD));

  const repo = new RegistryRepository(upstream.host, 'acme/multi');
  const root = await repo.resolve('1');
  const parsed = parseManifest(await fetchSmallBlob(repo, root), root.mediaType, 'index');
  if (parsed.kind !== 'index') throw new Error('publish wrote no index');
  index = { digest: root.digest, manifests: parsed.index.manifests.map((m) => m.digest) };
  // An OCI 1.1 referrer of the index (an SBOM, say), listed under the fallback tag as cosign and
  // oras write it where the registry has no referrers API.
  const emptyConfig = Buffer.from('{}');
  const sbom = Buffer.from('{"sbom": "zstd"}');
  await repo.push(descriptorFor('application/vnd.oci.empty.v1+json', emptyConfig), emptyConfig);
  await repo.push(descriptorFor('application/spdx+json', sbom), sbom);
  const referrer = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/spdx+json',
    config: descriptorFor('application/vnd.oci.empty.v1+json', emptyConfig), layers: [descriptorFor('application/spdx+json', sbom)],
    subject: { mediaType: root.mediaType, digest: root.digest, size: root.size },
  }));
  const referrerDesc = { ...descriptorFor(OCI_MANIFEST, referrer), artifactType: 'application/spdx+json' };
  await repo.push(referrerDesc, referrer);
  const list = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [referrerDesc] }));
  const listDesc = descriptorFor(OCI_INDEX, list);
  await repo.push(listDesc, list);
  await repo.tag(listDesc, referrersTag(root.digest));
});

afterAll(async () => {
  await closeDispatchers();
  await upstream?.close();
  await Promise.all([publicRegistry?.stop(), internal?.stop()]);
  await rm(work, { recursive: true, force: true });
});

describe('ocipkg copy SRC DEST', () => {
  it('registry to registry: every target and every signature and referrer, with the source digests', async () => {
    const dest = `${internal.host}/mirror/acme/multi:1`;
    const out = ok(await ocipkg(['copy', image(), dest]));
    expect(out).toBe(`${internal.host}/mirror/acme/multi@${index.digest}\n`);
    const before = await attachedDigests(new RegistryRepository(upstream.host, 'acme/multi'));
    // The fixture has what is to be carried: a signature of the index and of each target, a referrer of the index.
    for (const digest of [index.digest, ...index.manifests]) expect(before[signatureTag(digest)]).not.toBe('missing');
    expect(before[referrersTag(index.digest)]).not.toBe('missing');
    expect(await attachedDigests(new RegistryRepository(internal.host, 'mirror/acme/multi'))).toEqual(before);
    // Each target's manifest and blobs are there: a build for either triple can install from the copy.
    for (const triple of TARGETS) {
      const store = await tempDir('store');
      const got = await ocipkg(['get', `${internal.host}/mirror/acme/multi:1`, '--target', triple], { OCIPKG_DATA_DIR: store });
      expect(existsSync(join(ok(got).trim(), 'lib', 'libzstd.a'))).toBe(true);
    }
    // The signatures still verify at the copy.
    const verified = JSON.parse(ok(await ocipkg(['verify', '--key', publicKey, dest]))) as { critical: { image: Record<string, string> } }[];
    expect(verified[0]!.critical.image['docker-manifest-digest']).toBe(index.digest);
  });

  it('registry -> oci: layout -> oci-archive: -> registry keeps every digest, and skopeo reads the archive', async () => {
    const layout = join(work, 'layout');
    const archive = join(work, 'multi.tar');
    expect(ok(await ocipkg(['copy', image(), `oci:${layout}`]))).toBe(`oci:${layout}@${index.digest}\n`);
    expect(await attachedDigests(new LayoutDirectory(layout))).toEqual(await attachedDigests(new RegistryRepository(upstream.host, 'acme/multi')));
    // No tag named: the one image in the layout (its signature tags ride along).
    expect(ok(await ocipkg(['copy', `oci:${layout}`, `oci-archive:${archive}`]))).toBe(`oci-archive:${archive}@${index.digest}\n`);
    const raw = execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${archive}:1`]);
    expect(`sha256:${createHash('sha256').update(raw).digest('hex')}`).toBe(index.digest);
    const back = `${internal.host}/roundtrip/multi`;
    expect(ok(await ocipkg(['copy', `oci-archive:${archive}:1`, `${back}:1`]))).toBe(`${back}@${index.digest}\n`);
    expect(await attachedDigests(new RegistryRepository(internal.host, 'roundtrip/multi'))).toEqual(await attachedDigests(new LayoutDirectory(layout)));
    // The archive is an ordinary layout: one entry per tag.
    const names = (JSON.parse(execFileSync('tar', ['-xOf', archive, 'index.json']).toString()) as { manifests: { annotations: Record<string, string> }[] }).manifests.map((m) => m.annotations[ANNOTATION_REF_NAME]);
    expect(names).toContain('1');
    expect(names).toContain(signatureTag(index.digest));
  });

  it.each([
    [['copy', 'only-one-argument'], 2, 'expected SRC and DEST'],
    [['copy', 'a', 'b', 'c'], 2, 'expected SRC and DEST'],
    [['copy', '--lockfile'], 2, 'DEST-PREFIX'],
    [['copy', 'oci:/nonexistent/layout:1', 'oci:/tmp/unused'], 1, 'not an OCI image layout'],
    [['copy', 'oci-archive:/nonexistent.tar', 'oci:/tmp/unused'], 1, 'does not exist'],
  ])('%j fails in one line (exit %i)', async (args, code, why) => {
    const result = await ocipkg(args as string[]);
    expect(result.code).toBe(code);
    expect(result.stdout).toBe('');
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(why);
  });

  it('a destination naming a digest is refused', async () => {
    const result = await ocipkg(['copy', image(), `${internal.host}/x/y@${index.digest}`]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('cannot name a digest');
  });
});

describe('ocipkg copy --lockfile DEST-PREFIX', () => {
  let project: string;

  beforeAll(async () => {
    project = join(work, 'project');
    await mkdir(project, { recursive: true });
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'addon', ocipkg: { packages: { zstd: image() } } }));
    ok(await ocipkg(['install'], { OCIPKG_PROJECT_DIR: project, OCIPKG_DATA_DIR: join(work, 'install-store') }));
    expect(existsSync(join(project, 'ocipkg-lock.json'))).toBe(true);
  });

  it('copies every pinned package, all targets and signatures, to DEST-PREFIX/<repository>', async () => {
    const out = ok(await ocipkg(['copy', '--lockfile', join(project, 'ocipkg-lock.json'), `${internal.host}/internal`]));
    expect(out).toBe(`${internal.host}/internal/acme/multi@${index.digest}\n`);
    expect(await attachedDigests(new RegistryRepository(internal.host, 'internal/acme/multi'))).toEqual(await attachedDigests(new RegistryRepository(upstream.host, 'acme/multi')));
  });

  it("defaults to the project's lockfile, and copies into a layout per repository", async () => {
    const layouts = join(work, 'layouts');
    const out = ok(await ocipkg(['copy', '--lockfile', `oci:${layouts}`], { OCIPKG_PROJECT_DIR: project }));
    expect(out).toBe(`oci:${join(layouts, 'acme/multi')}@${index.digest}\n`);
    expect((await new LayoutDirectory(join(layouts, 'acme', 'multi')).resolve('1')).digest).toBe(index.digest);
  });

  it('a build that reaches only the internal copy, through a registries.conf rewrite, installs the locked packages', async () => {
    ok(await ocipkg(['copy', '--lockfile', project, `${internal.host}/internal`]));
    const conf = join(work, 'registries.conf');
    await writeFile(conf, `[[registry]]\nprefix = "${upstream.host}"\nlocation = "${internal.host}/internal"\n`);
    upstream.reset();
    const store = join(work, 'air-gapped-store');
    const result = await ocipkg(['install', '--frozen-lockfile'], { OCIPKG_PROJECT_DIR: project, OCIPKG_DATA_DIR: store, CONTAINERS_REGISTRIES_CONF: conf });
    ok(result);
    expect(upstream.requests).toEqual([]);
    const lock = JSON.parse(readFileSync(join(project, 'ocipkg-lock.json'), 'utf8')) as { packages: Record<string, { manifests: Record<string, string> }> };
    const manifest = lock.packages[image()]!.manifests[TARGETS[0]!]!;
    expect(existsSync(join(store, 'packages', 'sha256', manifest.slice(7), 'root', 'lib', 'libzstd.a'))).toBe(true);
  });
});

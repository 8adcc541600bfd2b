import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { copyFile, cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANNOTATION_TARGET, OCI_INDEX } from '../src/oci/mediatypes.js';
import type { Descriptor, ImageIndex } from '../src/oci/types.js';
import { publish } from '../src/publish.js';
import { resolvePackage } from '../src/resolve.js';
import { ocipkg, ocipkgLink, tempDir } from './helpers/cli.js';
import { codeOf } from './helpers/errors.js';
import { debianPrefix } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

/**
 * Multi-target packages against a real registry: Debian's x86-64 libzstd.a and the real arm64 build
 * of the same Debian version, published under one tag as an OCI image index, then selected by
 * triple. skopeo is the independent reader of the index.
 */

const X64 = 'x86_64-unknown-linux-gnu';
const ARM64 = 'aarch64-unknown-linux-gnu';
const EM_X86_64 = 62;
const EM_AARCH64 = 183;

/**
 * Debian's libzstd-dev for arm64, extracted. The test never touches the network; create it with:
 *   dpkg --add-architecture arm64 && apt-get update && (cd /tmp && apt-get download libzstd-dev:arm64)
 *   mkdir -p /var/cache/ocipkg-test/arm64-zstd && dpkg-deb -x /tmp/libzstd-dev_*_arm64.deb /var/cache/ocipkg-test/arm64-zstd
 */
const ARM64_ZSTD = process.env.OCIPKG_TEST_ARM64_ZSTD || '/var/cache/ocipkg-test/arm64-zstd';

let registry: TestRegistry;
let work: string;
let x64Dir: string;
let arm64Dir: string;
let image: string;
let pinned: string;

/** An install prefix from the extracted arm64 package: lib/libzstd.a and include/zstd.h. */
async function arm64Prefix(dir: string): Promise<string> {
  const lib = join(ARM64_ZSTD, 'usr', 'lib', 'aarch64-linux-gnu', 'libzstd.a');
  const header = join(ARM64_ZSTD, 'usr', 'include', 'zstd.h');
  if (!existsSync(lib) || !existsSync(header)) {
    throw new Error(
      `${ARM64_ZSTD} lacks usr/lib/aarch64-linux-gnu/libzstd.a or usr/include/zstd.h (set OCIPKG_TEST_ARM64_ZSTD or create it: ` +
        'dpkg --add-architecture arm64 && apt-get update && cd /tmp && apt-get download libzstd-dev:arm64 && ' +
        `mkdir -p ${ARM64_ZSTD} && dpkg-deb -x /tmp/libzstd-dev_*_arm64.deb ${ARM64_ZSTD})`,
    );
  }
  await mkdir(join(dir, 'lib'), { recursive: true });
  await mkdir(join(dir, 'include'), { recursive: true });
  await copyFile(lib, join(dir, 'lib', 'libzstd.a'));
  await copyFile(header, join(dir, 'include', 'zstd.h'));
  return dir;
}

/** e_machine of the first ELF object inside a static archive (the ar format itself is arch-neutral). */
async function firstMemberMachine(archive: string): Promise<number> {
  const bytes = await readFile(archive);
  const elf = bytes.indexOf(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  expect(elf).toBeGreaterThan(0);
  return bytes.readUInt16LE(elf + 18);
}

const skopeo = (...args: string[]) => execFileSync('skopeo', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const rawIndex = (ref: string): ImageIndex => JSON.parse(skopeo('inspect', '--raw', '--tls-verify=false', `docker://${ref}`)) as ImageIndex;

/** Blobs (manifests included) the distribution registry holds, from its storage directory. */
function registryBlobs(reg: TestRegistry): string[] {
  const dir = join(reg.root, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((prefix) => readdirSync(join(dir, prefix)));
}

function expectOneLineError(result: { code: number | null; stdout: string; stderr: string }, status = 1): void {
  expect(result.code).toBe(status);
  expect(result.stdout).toBe('');
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
}

beforeAll(async () => {
  work = await tempDir('publish');
  // In-process calls (publish, resolvePackage) must not read the real home's credentials or store.
  process.env.OCIPKG_CONFIG_DIR = join(work, 'config');
  process.env.DOCKER_CONFIG = join(work, 'docker');
  process.env.XDG_RUNTIME_DIR = join(work, 'run');
  await mkdir(process.env.XDG_RUNTIME_DIR, { recursive: true });
  process.env.OCIPKG_DATA_DIR = join(work, 'store');
  delete process.env.REGISTRY_AUTH_FILE;
  arm64Dir = await arm64Prefix(join(work, 'arm64'));
  x64Dir = await debianPrefix(join(work, 'x64'), 'zstd', ['zstd.h']);
  registry = await startRegistry();
  image = `${registry.host}/acme/zstd:1.5.4`;
  // aarch64 first on the command line: the index order must not depend on it.
  const result = await ocipkg(['publish', image, '--target', `${ARM64}=${arm64Dir}`, '--target', `${X64}=${x64Dir}`, '--version', '1.5.4']);
  expect(result.code, result.stderr).toBe(0);
  pinned = result.stdout;
});

afterAll(async () => {
  await registry?.stop();
});

describe('ocipkg publish', () => {
  it('prints the index pinned by digest and pushes an index with platform and target annotation per build', () => {
    expect(pinned).toMatch(new RegExp(`^${registry.host}/acme/zstd@sha256:[a-f0-9]{64}\\n$`));
    const index = rawIndex(image);
    expect(index.mediaType).toBe(OCI_INDEX);
    expect(index.manifests.map((m) => [m.platform, m.annotations?.[ANNOTATION_TARGET]])).toEqual([
      [{ os: 'linux', architecture: 'amd64' }, X64],
      [{ os: 'linux', architecture: 'arm64' }, ARM64],
    ]);
    expect(index.annotations?.['org.opencontainers.image.created']).toBeUndefined();
  });

  it('tags each build TAG-TRIPLE, pointing at the manifest the index lists', () => {
    const index = rawIndex(image);
    const tags = (JSON.parse(skopeo('list-tags', '--tls-verify=false', `docker://${registry.host}/acme/zstd`)) as { Tags: string[] }).Tags;
    expect(tags.sort()).toEqual(['1.5.4', `1.5.4-${ARM64}`, `1.5.4-${X64}`]);
    for (const entry of index.manifests) {
      const tag = `1.5.4-${entry.annotations![ANNOTATION_TARGET]}`;
      const raw = execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/acme/zstd:${tag}`]);
      expect(`sha256:${createHash('sha256').update(raw).digest('hex')}`).toBe(entry.digest);
    }
  });

  it('gives the same index digest when the same inputs are published again, in any order', async () => {
    const again = await ocipkg(['publish', image, '--target', `${X64}=${x64Dir}`, '--target', `${ARM64}=${arm64Dir}`, '--version', '1.5.4']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe(pinned);
  });

  it('skopeo copy --all copies the whole index to a layout, and ocipkg selects from that copy', async () => {
    const dir = join(await tempDir('skopeo'), 'layout');
    skopeo('copy', '--all', '--src-tls-verify=false', `docker://${image}`, `oci:${dir}:copied`);
    // skopeo re-serialises the index it copies (its own key order, no descriptor artifactType), so
    // its digest differs; the manifests it lists, their platforms and annotations must not.
    const copied = JSON.parse(skopeo('inspect', '--raw', `oci:${dir}:copied`)) as ImageIndex;
    const summary = (i: ImageIndex) => i.manifests.map((m) => ({ digest: m.digest, platform: m.platform, annotations: m.annotations }));
    expect(summary(copied)).toEqual(summary(rawIndex(image)));
    const store = await tempDir('store');
    const got = await ocipkg(['get', `oci:${dir}:copied`, '--target', ARM64], { OCIPKG_DATA_DIR: store });
    expect(got.code, got.stderr).toBe(0);
    expect(await firstMemberMachine(join(got.stdout.trim(), 'lib', 'libzstd.a'))).toBe(EM_AARCH64);
  });
});

describe('selection', () => {
  let store: string;
  beforeAll(async () => {
    store = await tempDir('store');
  });

  it('--target aarch64-unknown-linux-gnu resolves the AArch64 archive', async () => {
    const got = await ocipkg(['get', image, '--target', ARM64], { OCIPKG_DATA_DIR: store, OCIPKG_TARGET: '', npm_config_arch: '' });
    expect(got.code, got.stderr).toBe(0);
    expect(await firstMemberMachine(join(got.stdout.trim(), 'lib', 'libzstd.a'))).toBe(EM_AARCH64);
  });

  it('the host default resolves the x86-64 archive', async () => {
    const got = await ocipkg(['image-directory', image], { OCIPKG_DATA_DIR: store, OCIPKG_TARGET: '', npm_config_arch: '' });
    expect(got.code, got.stderr).toBe(0);
    expect(await firstMemberMachine(join(got.stdout.trim(), 'lib', 'libzstd.a'))).toBe(EM_X86_64);
  });

  it('ocipkg-link follows node-gyp\'s --arch (npm_config_arch) to the arm64 build', async () => {
    const linked = await ocipkgLink(['--lib-files', image], { OCIPKG_DATA_DIR: store, OCIPKG_TARGET: '', npm_config_arch: 'arm64' });
    expect(linked.code, linked.stderr).toBe(0);
    expect(await firstMemberMachine(linked.stdout.trim())).toBe(EM_AARCH64);
  });

  it('ocipkg list shows both targets of the tag side by side', async () => {
    const listed = await ocipkg(['list', '--json'], { OCIPKG_DATA_DIR: store });
    const rows = (JSON.parse(listed.stdout) as { reference: string; target: string; manifest: string }[]).filter((r) => r.reference === image);
    expect(rows.map((r) => r.target)).toEqual([ARM64, X64]);
    const index = rawIndex(image);
    for (const row of rows) expect(row.manifest).toBe(index.manifests.find((m) => m.annotations?.[ANNOTATION_TARGET] === row.target)!.digest);
  });

  it('an unpublished target fails with ENOTARGET, listing the published ones (CLI: one line, exit 3)', async () => {
    const target = 'riscv64gc-unknown-linux-gnu';
    expect(await codeOf(resolvePackage(image, { target, storeRoot: await tempDir('store') }))).toBe('ENOTARGET');
    const result = await ocipkg(['get', image, '--target', target], { OCIPKG_DATA_DIR: await tempDir('store') });
    expectOneLineError(result, 3);
    expect(result.stderr).toContain(target);
    expect(result.stderr).toContain(`${X64}, ${ARM64}`);
  });

  it('a plain manifest is used when it records the target asked for, and refused for another', async () => {
    const archive = join(work, 'arm64.tar');
    const plain = `${registry.host}/acme/zstd-plain:1`;
    expect((await ocipkg(['pack', arm64Dir, archive, '-t', plain])).code).toBe(0);
    expect((await ocipkg(['push', archive])).code).toBe(0);
    const own = await tempDir('store');
    expect(await codeOf(resolvePackage(plain, { target: X64, storeRoot: own }))).toBe('ENOTARGET');
    const pkg = await resolvePackage(plain, { target: ARM64, storeRoot: own });
    expect(pkg.target).toBe(ARM64);
  });

  it('a plain manifest that records no target serves any target', async () => {
    const archive = join(work, 'headers.tar');
    const plain = `${registry.host}/acme/zstd-headers:1`;
    expect((await ocipkg(['compose', join(x64Dir, 'include', 'zstd.h'), '-o', archive, '-t', plain])).code).toBe(0);
    expect((await ocipkg(['push', archive])).code).toBe(0);
    const own = await tempDir('store');
    expect((await resolvePackage(plain, { target: ARM64, storeRoot: own })).config.package?.target).toBeUndefined();
    expect(existsSync(join((await resolvePackage(plain, { target: X64, storeRoot: own })).root, 'zstd.h'))).toBe(true);
  });
});

describe('publish inputs', () => {
  it('takes an oci-archive from pack for its recorded target: the same index as from the directory', async () => {
    const archive = join(work, 'arm64-packed.tar');
    expect((await ocipkg(['pack', arm64Dir, archive, '-t', `${registry.host}/acme/zstd:1.5.4`, '--version', '1.5.4'])).code).toBe(0);
    const result = await ocipkg(['publish', `${registry.host}/acme/zstd:1.5.4`, '--target', `${X64}=${x64Dir}`, '--target', `${ARM64}=${archive}`, '--version', '1.5.4']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(pinned);
  });

  it('refuses an archive packed for another target, and a directory built for another architecture', async () => {
    const archive = join(work, 'arm64-other.tar');
    expect((await ocipkg(['pack', arm64Dir, archive, '-t', `${registry.host}/acme/wrong:1`])).code).toBe(0);
    const ref = `${registry.host}/acme/wrong:1`;
    expect(await codeOf(publish(ref, [{ triple: X64, path: archive }]))).toBe('EINPUT');
    expect(await codeOf(publish(ref, [{ triple: X64, path: arm64Dir }]))).toBe('EINPUT');
    expectOneLineError(await ocipkg(['publish', ref, '--target', `${X64}=${arm64Dir}`]));
    expect(await codeOf(publish(ref, [{ triple: X64, path: join(work, 'missing') }]))).toBe('EINPUT');
    // Refused before anything was pushed: the repository does not exist.
    expect(() => skopeo('list-tags', '--tls-verify=false', `docker://${registry.host}/acme/wrong`)).toThrow();
  });

  it('refuses bad --target values and a target given twice as usage errors', async () => {
    const ref = `${registry.host}/acme/usage:1`;
    for (const args of [[], ['--target', 'x86_64-unknown-linux-gnu'], ['--target', `nope=${x64Dir}`], ['--target', `${X64}=${x64Dir}`, '--target', `${X64}=${x64Dir}`]]) {
      const result = await ocipkg(['publish', ref, ...args]);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('publish --append', () => {
  let own: TestRegistry;
  beforeAll(async () => {
    own = await startRegistry();
  });
  afterAll(async () => {
    await own?.stop();
  });

  it('adds a target to the index without touching the published ones, giving the index of publishing both', async () => {
    const ref = `${own.host}/acme/zstd:1.5.4`;
    const first = await ocipkg(['publish', ref, '--target', `${X64}=${x64Dir}`, '--version', '1.5.4']);
    expect(first.code, first.stderr).toBe(0);
    const x64Index = rawIndex(ref);
    expect(x64Index.manifests).toHaveLength(1);
    const x64Graph = new Set([x64Index.manifests[0]!.digest]);
    const x64Manifest = JSON.parse(skopeo('inspect', '--raw', '--tls-verify=false', `docker://${own.host}/acme/zstd@${x64Index.manifests[0]!.digest}`)) as { config: Descriptor; layers: Descriptor[] };
    for (const blob of [x64Manifest.config, ...x64Manifest.layers]) x64Graph.add(blob.digest);
    const before = registryBlobs(own);

    const copied: Descriptor[] = [];
    const appended = await publish(ref, [{ triple: ARM64, path: arm64Dir }], { append: true, pack: { version: '1.5.4' }, onCopied: (desc) => copied.push(desc) });
    // Nothing of the x86-64 build was read, checked or sent: not even a HEAD.
    expect(copied.filter((d) => x64Graph.has(d.digest))).toEqual([]);
    // New in the registry: the arm64 layer, config and manifest, and the new index.
    const added = registryBlobs(own).filter((b) => !before.includes(b));
    expect(added).toHaveLength(4);
    expect(added).toContain(appended.index.digest.slice('sha256:'.length));
    // Same content as publishing both at once into the main registry.
    expect(`${appended.pinned.split('@')[1]}\n`).toBe(pinned.split('@')[1]);
    expect(Object.keys(appended.targets)).toEqual([X64, ARM64]);
  });

  it('replaces a target that is appended again, keeping the others', async () => {
    const ref = `${own.host}/acme/zstd:1.5.4`;
    const index = rawIndex(ref);
    const again = await ocipkg(['publish', ref, '--append', '--target', `${ARM64}=${arm64Dir}`, '--version', '1.5.4']);
    expect(again.code, again.stderr).toBe(0);
    expect(rawIndex(ref)).toEqual(index);
  });

  it('a get following a tag moved for one target keeps the store\'s record of the others it still lists', async () => {
    const ref = `${own.host}/acme/moving:1`;
    const store = { OCIPKG_DATA_DIR: await tempDir('store') };
    expect((await ocipkg(['publish', ref, '--target', `${X64}=${x64Dir}`, '--target', `${ARM64}=${arm64Dir}`, '--version', '1'])).code).toBe(0);
    for (const target of [X64, ARM64]) expect((await ocipkg(['get', '--target', target, ref], store)).code).toBe(0);
    // A new x86_64 build only: the arm64 entry of the new index is the build the store holds.
    const changed = join(work, 'x64-changed');
    await cp(x64Dir, changed, { recursive: true });
    await writeFile(join(changed, 'include', 'extra.h'), '#define CHANGED 1\n');
    expect((await ocipkg(['publish', ref, '--append', '--target', `${X64}=${changed}`, '--version', '1'])).code).toBe(0);
    const moved = await ocipkg(['get', ref], store);
    expect(moved.code, moved.stderr).toBe(0);
    const offline = await ocipkgLink(['--offline', '--target', ARM64, '--libs', ref], store);
    expect(offline.code, offline.stderr).toBe(0);
    expect(await firstMemberMachine(offline.stdout.trim().split(" ")[0]!)).toBe(EM_AARCH64);
  });

  it('starts a new index when the tag does not exist yet', async () => {
    const ref = `${own.host}/acme/fresh:1`;
    const result = await publish(ref, [{ triple: ARM64, path: arm64Dir }], { append: true });
    expect(Object.keys(result.targets)).toEqual([ARM64]);
  });
});

describe('publish to an OCI layout directory', () => {
  it('writes the index under oci:DIR:TAG and per-target tags, readable by skopeo and ocipkg', async () => {
    const dir = join(await tempDir('layout'), 'zstd');
    const result = await ocipkg(['publish', `oci:${dir}:1.5.4`, '--target', `${X64}=${x64Dir}`, '--target', `${ARM64}=${arm64Dir}`]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^oci:${dir}@sha256:[a-f0-9]{64}\\n$`));
    const raw = JSON.parse(skopeo('inspect', '--raw', `oci:${dir}:1.5.4`)) as ImageIndex;
    expect(raw.manifests.map((m) => m.annotations?.[ANNOTATION_TARGET])).toEqual([X64, ARM64]);
    expect(skopeo('inspect', '--raw', `oci:${dir}:1.5.4-${ARM64}`)).toContain('application/vnd.ocipkg.v1.artifact');
    const store = await tempDir('store');
    const got = await ocipkg(['get', `oci:${dir}:1.5.4`, '--target', ARM64], { OCIPKG_DATA_DIR: store });
    expect(got.code, got.stderr).toBe(0);
    expect(await firstMemberMachine(join(got.stdout.trim(), 'lib', 'libzstd.a'))).toBe(EM_AARCH64);
  });
});

import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ocipkg, tempDir } from './helpers/cli.js';
import { debianPrefix, LZ4_PROGRAM, writeProgram } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

/**
 * The core loop through the real CLI and a real registry: pack Debian's liblz4, push it, get it into
 * an empty store, compile and run a C program against what came out. skopeo is the peer that checks
 * we speak OCI, in both directions.
 */
let registry: TestRegistry;
let work: string;
let archive: string;

beforeAll(async () => {
  registry = await startRegistry();
  work = await tempDir('roundtrip');
  const prefix = await debianPrefix(join(work, 'prefix'), 'lz4', ['lz4.h', 'lz4hc.h', 'lz4frame.h']);
  archive = join(work, 'lz4.tar');
  const packed = await ocipkg(['pack', prefix, archive, '-t', `${registry.host}/acme/lz4:1.9.4`, '--version', '1.9.4']);
  expect(packed.stderr).toBe('');
  expect(packed.code).toBe(0);
});

afterAll(async () => {
  await registry?.stop();
});

const skopeo = (...args: string[]) => execFileSync('skopeo', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describe('pack, push, get', () => {
  it('links a C program against a package fetched into an empty store', async () => {
    const image = `${registry.host}/acme/lz4:1.9.4`;
    const pushed = await ocipkg(['push', archive]);
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.stdout.trim()).toMatch(new RegExp(`^${registry.host}/acme/lz4@sha256:[a-f0-9]{64}$`));

    const store = await tempDir('store');
    const got = await ocipkg(['get', image], { OCIPKG_DATA_DIR: store });
    expect(got.code, got.stderr).toBe(0);
    const root = got.stdout.trim();
    expect(readdirSync(join(root, 'lib'))).toEqual(['liblz4.a']);

    const exe = join(work, 'lz4-demo');
    execFileSync('gcc', [await writeProgram(work, LZ4_PROGRAM), '-I', join(root, 'include'), join(root, 'lib', 'liblz4.a'), '-o', exe]);
    expect(execFileSync(exe, { encoding: 'utf8' })).toMatch(/^lz4 \d+ roundtrip ok$/m);

    const dir = await ocipkg(['image-directory', image], { OCIPKG_DATA_DIR: store });
    expect(dir.stdout.trim()).toBe(root);
    const listed = await ocipkg(['list'], { OCIPKG_DATA_DIR: store });
    expect(listed.stdout).toContain(`${image}\tx86_64-unknown-linux-gnu\tsha256:`);
  });

  it('serves the warm path from the store once the registry is gone', async () => {
    const own = await startRegistry();
    const image = `${own.host}/acme/lz4:warm`;
    expect((await ocipkg(['push', archive, image])).code).toBe(0);
    const store = await tempDir('store');
    const cold = await ocipkg(['image-directory', image], { OCIPKG_DATA_DIR: store });
    expect(cold.code, cold.stderr).toBe(0);
    await own.stop();
    const warm = await ocipkg(['image-directory', image], { OCIPKG_DATA_DIR: store });
    expect(warm.code, warm.stderr).toBe(0);
    expect(warm.stdout).toBe(cold.stdout);
    const forced = await ocipkg(['get', '-f', image], { OCIPKG_DATA_DIR: store });
    expect(forced.code).toBe(4);
    expect(forced.stderr).toMatch(/^ocipkg: .*127\.0\.0\.1/);
  });
});

describe('interop with skopeo', () => {
  it('skopeo reads what ocipkg pushed, byte for byte', async () => {
    const image = `${registry.host}/acme/lz4:skopeo-reads`;
    const pushed = await ocipkg(['push', archive, image]);
    expect(pushed.code, pushed.stderr).toBe(0);
    const digest = pushed.stdout.trim().split('@')[1];
    const raw = skopeo('inspect', '--raw', '--tls-verify=false', `docker://${image}`);
    const { createHash } = await import('node:crypto');
    expect(`sha256:${createHash('sha256').update(raw).digest('hex')}`).toBe(digest);
    const manifest = JSON.parse(raw) as { artifactType: string; config: { mediaType: string }; layers: { mediaType: string }[] };
    expect(manifest.artifactType).toBe('application/vnd.ocipkg.v1.artifact');
    expect(manifest.config.mediaType).toBe('application/vnd.ocipkg.v1.config+json');
    expect(manifest.layers.map((l) => l.mediaType)).toEqual(['application/vnd.ocipkg.v1.layer.tar+gzip']);
  });

  it('ocipkg gets what skopeo pushed from an ocipkg oci-archive', async () => {
    const image = `${registry.host}/acme/lz4-by-skopeo:1`;
    skopeo('copy', '--dest-tls-verify=false', `oci-archive:${archive}`, `docker://${image}`);
    const store = await tempDir('store');
    const got = await ocipkg(['get', image], { OCIPKG_DATA_DIR: store });
    expect(got.code, got.stderr).toBe(0);
    expect(readdirSync(join(got.stdout.trim(), 'include'))).toContain('lz4.h');
    const inspected = JSON.parse((await ocipkg(['inspect', archive])).stdout) as { descriptor: { digest: string } };
    const listed = JSON.parse((await ocipkg(['list', '--json'], { OCIPKG_DATA_DIR: store })).stdout) as { manifest: string }[];
    expect(listed.map((r) => r.manifest)).toEqual([inspected.descriptor.digest]);
  });

  it('skopeo can read the store as an OCI image layout', async () => {
    const image = `${registry.host}/acme/lz4:store-layout`;
    expect((await ocipkg(['push', archive, image])).code).toBe(0);
    const store = await tempDir('store');
    expect((await ocipkg(['get', image], { OCIPKG_DATA_DIR: store })).code).toBe(0);
    const raw = skopeo('inspect', '--raw', `oci:${store}:${image}`);
    expect(JSON.parse(raw)).toMatchObject({ artifactType: 'application/vnd.ocipkg.v1.artifact' });
  });
});

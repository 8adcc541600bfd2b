import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_REQUIREMENT_DEPTH } from '../src/requirements.js';
import { RegistryRepository } from '../src/registry/client.js';
import { closeDispatchers } from '../src/registry/http.js';
import { ocipkg, ocipkgLink, tempDir } from './helpers/cli.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { buildImage } from './helpers/layers.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { expectNothingInstalled } from './helpers/store-check.js';

/**
 * A long `requires` chain (c0 requires c1, c1 requires c2, ...) on a real registry, fetched through
 * a counting proxy: a cold get costs a few requests per package, not a few per package per level
 * above it (each level once re-resolved every tag below it: 66 requests at depth 10, 5,160 at 100).
 */
const DEPTH = 12;

let registry: TestRegistry;
let proxy: FaultProxy;
let nowhere: string;

const image = (i: number, prefix = 'chain') => `${proxy.host}/${prefix}/c${i}:1`;

/** The requests a cold run made, /v2/ pings aside, as `METHOD path`. */
const asked = () => proxy.requests.filter((r) => r.path !== '/v2/').map((r) => `${r.method} ${r.path}`);

/** Pushes c0 .. c(depth-1) under `prefix`, each requiring the next. */
async function pushChain(prefix: string, depth: number): Promise<void> {
  for (let i = depth - 1; i >= 0; i--) {
    const built = buildImage([[{ path: `include/c${i}.h`, body: Buffer.from(`#define C${i} ${i}\n`) }]], {
      name: `c${i}`,
      metadata: { requires: i + 1 < depth ? [image(i + 1, prefix)] : [] },
    });
    const repo = new RegistryRepository(registry.host, `${prefix}/c${i}`);
    for (const layer of built.layers) await repo.push(layer.desc, layer.bytes);
    await repo.push(built.configDesc, built.configBytes);
    await repo.push(built.manifestDesc, built.manifestBytes, '1');
  }
}

beforeAll(async () => {
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.url);
  nowhere = await tempDir('chain-nowhere');
  await pushChain('chain', DEPTH);
  await pushChain('deep', MAX_REQUIREMENT_DEPTH + 2);
});

afterAll(async () => {
  await closeDispatchers();
  await proxy?.close();
  await registry?.stop();
});

describe('a requires chain', () => {
  it(`a cold get of a chain of ${DEPTH} asks for each tag, config and layer once`, async () => {
    const store = await tempDir('chain-store');
    const env = { OCIPKG_DATA_DIR: store, OCIPKG_PROJECT_DIR: nowhere };
    proxy.reset();
    const got = await ocipkg(['get', image(0)], env);
    expect(got.stderr).toBe('');
    expect(got.code).toBe(0);
    // Per package: its tag (the manifest comes with it), its config and its layer.
    const paths = asked();
    expect(new Set(paths).size, paths.join('\n')).toBe(paths.length);
    expect(paths).toHaveLength(3 * DEPTH);
    expect(proxy.requests.length, 'with the pings').toBeLessThanOrEqual(4 * DEPTH);

    // Every package is there, each after the one that requires it.
    const linked = await ocipkgLink(['--prefix', image(0)], env);
    expect(linked.code, linked.stderr).toBe(0);
    const headers = linked.stdout.trim().split(' ').map((dir) => readdirSync(join(dir, 'root', 'include'))[0]);
    expect(headers).toEqual(Array.from({ length: DEPTH }, (_, i) => `c${i}.h`));
  });

  // ocipkg-link never re-resolves a stored tag; its cold path shares the get's walks all the same.
  it('ocipkg-link on a cold store fetches it as linearly', async () => {
    const store = await tempDir('chain-store');
    proxy.reset();
    const linked = await ocipkgLink(['--prefix', image(0)], { OCIPKG_DATA_DIR: store, OCIPKG_PROJECT_DIR: nowhere });
    expect(linked.code, linked.stderr).toBe(0);
    expect(linked.stdout.trim().split(' ')).toHaveLength(DEPTH);
    const paths = asked();
    expect(new Set(paths).size, paths.join('\n')).toBe(paths.length);
    expect(paths).toHaveLength(3 * DEPTH);
  });

  it(`refuses requirements nested deeper than ${MAX_REQUIREMENT_DEPTH} in one line naming the chain, installing nothing`, async () => {
    const store = await tempDir('chain-store');
    proxy.reset();
    const got = await ocipkg(['get', image(0, 'deep')], { OCIPKG_DATA_DIR: store, OCIPKG_PROJECT_DIR: nowhere });
    expect(got.code).not.toBe(0);
    const chain = [...[0, 1, 2].map((i) => image(i, 'deep')), '...', ...[62, 63, 64].map((i) => image(i, 'deep'))].join(' -> ');
    expect(got.stderr).toBe(`ocipkg: ${image(0, 'deep')} has requirements nested more than ${MAX_REQUIREMENT_DEPTH} deep (${chain}, 65 packages)\n`);
    // Manifests and configs down to the limit, no layer, nothing past it.
    expect(asked().filter((path) => path.includes('/c65/'))).toEqual([]);
    expect(asked().length).toBeLessThanOrEqual(2 * MAX_REQUIREMENT_DEPTH);
    expectNothingInstalled(store);
  });
});

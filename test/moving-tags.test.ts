import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ocipkg, ocipkgLink, tempDir } from './helpers/cli.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { debianPrefix } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

/**
 * Tags that move at the registry, through the installed bins: `get` follows them as `docker pull`
 * does, `ocipkg-link` stays on the store (offline), `outdated` lists them, `update` says what it
 * moved from what to what.
 */
let registry: TestRegistry;
let proxy: FaultProxy;
let work: string;
const archives = { lz4: '', zstd: '' };

/** No project anywhere above: OCIPKG_PROJECT_DIR is a directory without a package.json. */
let nowhere: string;
const env = (store: string, project = nowhere): NodeJS.ProcessEnv => ({ OCIPKG_DATA_DIR: store, OCIPKG_PROJECT_DIR: project });

async function push(archive: string, image: string): Promise<string> {
  const pushed = await ocipkg(['push', archive, image]);
  expect(pushed.code, pushed.stderr).toBe(0);
  return pushed.stdout.trim().split('@')[1]!;
}

const lines = (text: string) => text.split('\n').filter((l) => l !== '');

beforeAll(async () => {
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.url);
  work = await tempDir('moving');
  nowhere = await tempDir('nowhere');
  for (const lib of ['lz4', 'zstd'] as const) {
    const prefix = await debianPrefix(join(work, lib), lib, [`${lib}.h`]);
    archives[lib] = join(work, `${lib}.tar`);
    expect((await ocipkg(['pack', prefix, archives[lib], '-t', `${registry.host}/acme/${lib}:1`])).code).toBe(0);
  }
});

afterAll(async () => {
  await proxy?.close();
  await registry?.stop();
});

describe('a tag that moves', () => {
  it('ocipkg-link keeps the stored build offline; outdated lists the tag; get follows it and says from what to what', async () => {
    const store = await tempDir('store');
    const image = `${proxy.host}/acme/moving:1`;
    const first = await push(archives.lz4, `${registry.host}/acme/moving:1`);
    const got = await ocipkg(['get', image], env(store));
    expect(got.code, got.stderr).toBe(0);
    const old = got.stdout.trim();

    const second = await push(archives.zstd, `${registry.host}/acme/moving:1`);
    proxy.reset();
    // The warm path asks nobody: the build stays on what the store has.
    const linked = await ocipkgLink(['--cflags', image], env(store));
    expect(linked.stdout.trim()).toBe(`-I${join(old, 'include')}`);
    expect(proxy.requests).toEqual([]);

    const outdated = await ocipkg(['outdated'], env(store));
    expect(outdated.code).toBe(1);
    expect(lines(outdated.stdout)).toEqual([`${image}\t${first}\t${second}\tstore`]);
    expect(outdated.stderr).toBe('');
    const json = await ocipkg(['outdated', '--json'], env(store));
    expect(JSON.parse(json.stdout)).toEqual([{ image, from: first, to: second, where: 'store' }]);

    const followed = await ocipkg(['get', image], env(store));
    expect(followed.code, followed.stderr).toBe(0);
    expect(followed.stderr).toBe(`ocipkg: ${image} has moved from ${first} to ${second}\n`);
    const current = followed.stdout.trim();
    expect(current).not.toBe(old);
    expect(readFileSync(join(current, 'include', 'zstd.h'), 'utf8')).toContain('ZSTD');
    expect((await ocipkgLink(['--cflags', image], env(store))).stdout.trim()).toBe(`-I${join(current, 'include')}`);
    expect((await ocipkg(['outdated'], env(store))).code).toBe(0);

    // Unmoved: one lookup of the tag, no blob, nothing said.
    proxy.reset();
    const again = await ocipkg(['get', image], env(store));
    expect(again.stdout.trim()).toBe(current);
    expect(again.stderr).toBe('');
    expect(proxy.requests.filter((r) => r.path.includes('/blobs/'))).toEqual([]);
    expect(proxy.requests.filter((r) => r.path.endsWith('/manifests/1'))).toHaveLength(1);
    // --offline does not ask.
    proxy.reset();
    expect((await ocipkg(['get', image, '--offline'], env(store))).stdout.trim()).toBe(current);
    expect(proxy.requests).toEqual([]);
  });

  it('in a project: outdated compares with the lockfile, update moves the pin and prints what moved from what to what', async () => {
    const store = await tempDir('store');
    const project = await tempDir('project');
    const image = `${registry.host}/acme/pinned:1`;
    const first = await push(archives.lz4, image);
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'addon', ocipkg: { packages: { native: image } } }));
    expect((await ocipkg(['install'], env(store, project))).code).toBe(0);
    expect((await ocipkg(['outdated'], env(store, project))).code).toBe(0);

    const second = await push(archives.zstd, image);
    const outdated = await ocipkg(['outdated'], env(store, project));
    expect(outdated.code).toBe(1);
    expect(lines(outdated.stdout)).toEqual([`${image}\t${first}\t${second}\tlockfile`]);
    // By alias too.
    expect(lines((await ocipkg(['outdated', 'native'], env(store, project))).stdout)).toEqual([`${image}\t${first}\t${second}\tlockfile`]);
    // A lockfile pin is a digest: get does not follow the tag inside the project.
    const pinned = await ocipkg(['get', 'native'], env(store, project));
    expect(readFileSync(join(pinned.stdout.trim(), 'include', 'lz4.h'), 'utf8')).toContain('LZ4');

    const updated = await ocipkg(['update'], env(store, project));
    expect(updated.code, updated.stderr).toBe(0);
    expect(lines(updated.stdout)).toEqual([`moved ${image} from ${first} to ${second}`, join(project, 'ocipkg-lock.json')]);
    const lock = JSON.parse(readFileSync(join(project, 'ocipkg-lock.json'), 'utf8')) as { packages: Record<string, { digest: string }> };
    expect(lock.packages[image]!.digest).toBe(second);
    expect((await ocipkg(['outdated'], env(store, project))).code).toBe(0);
    // Nothing left to move: nothing printed.
    expect((await ocipkg(['update'], env(store, project))).stdout).toBe('');
  });

  it('a tag whose registry cannot say is an error naming it, in one line', async () => {
    const store = await tempDir('store');
    const image = `${proxy.host}/acme/unreachable:1`;
    await push(archives.lz4, `${registry.host}/acme/unreachable:1`);
    expect((await ocipkg(['get', image], env(store))).code).toBe(0);
    proxy.reset();
    proxy.add({ path: /\/manifests\//, fault: { kind: 'status', status: 404 } });
    const result = await ocipkg(['outdated'], env(store));
    expect(result.code).toBe(3);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(`could not check ${image}`);
    proxy.reset();
  });
});

import { execFileSync, spawnSync } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installProject } from '../src/install.js';
import { codeOf } from './helpers/errors.js';
import { OCIPKG, OCIPKG_LINK, ocipkg, ocipkgLink, REPO, tempDir } from './helpers/cli.js';
import { DEBIAN_LIB, debianPrefix } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

/**
 * Declared packages, ocipkg-lock.json and offline builds, against a real registry: sqlite3 (Debian's
 * static libsqlite3) requires zlib (Debian's static libz) through an ocipkg.json in its packed
 * directory; an addon-like project declares `sqlite3` in its package.json.
 */
const HOST = 'x86_64-unknown-linux-gnu';
const MAC = 'aarch64-apple-darwin';

let registry: TestRegistry;
let work: string;
let project: string;
let store: string;
let zlib: string;
let sqlite: string;
/** CI=true would freeze the lockfile: these runs write it unless a test says otherwise. */
let env: NodeJS.ProcessEnv;
let stopped = false;

const PROGRAM = `
#include <sqlite3.h>
#include <zlib.h>
#include <stdio.h>
int main(void) {
  sqlite3 *db;
  sqlite3_stmt *st;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) return 2;
  sqlite3_prepare_v2(db, "select 40 + 2", -1, &st, 0);
  sqlite3_step(st);
  int answer = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  printf("sqlite %d zlib %s crc %lx\\n", answer, zlibVersion(), crc32(0L, (const Bytef *)"ocipkg", 6));
  return answer != 42;
}
`;


async function publish(image: string, targets: string[]): Promise<void> {
  const result = await ocipkg(['publish', image, ...targets.flatMap((t) => ['--target', t])], env);
  // Debian's archives are not PIC, which publish warns about: only errors fail here.
  expect(result.stderr).not.toMatch(/^ocipkg: (?!warning:)/m);
  expect(result.code).toBe(0);
}

const readLock = async () => JSON.parse(await readFile(join(project, 'ocipkg-lock.json'), 'utf8'));

/** `npx ocipkg-link ...` as binding.gyp's `<!@(...)` runs it: in the addon's directory. */
function linkFromProject(args: string[], extraEnv: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [OCIPKG_LINK, ...args], { cwd: project, env: { ...process.env, ...env, ...extraEnv }, encoding: 'utf8' });
}

beforeAll(async () => {
  registry = await startRegistry();
  work = await tempDir('project');
  store = join(work, 'store');
  env = { OCIPKG_DATA_DIR: store, CI: '', OCIPKG_PROJECT_DIR: '', OCIPKG_OFFLINE: '' };
  zlib = `${registry.host}/acme/zlib:1`;
  sqlite = `${registry.host}/acme/sqlite3:3`;
  await publish(zlib, [`${HOST}=${await debianPrefix(join(work, 'zlib'), 'z', ['zlib.h', 'zconf.h'])}`]);
  const sqliteDir = await debianPrefix(join(work, 'sqlite'), 'sqlite3', ['sqlite3.h'], { 'ocipkg.json': JSON.stringify({ requires: [zlib] }) });
  // A headers-only macOS build beside it: the lockfile must pin it without fetching it.
  const macDir = join(work, 'sqlite-mac');
  await mkdir(join(macDir, 'include'), { recursive: true });
  await copyFile('/usr/include/sqlite3.h', join(macDir, 'include', 'sqlite3.h'));
  await publish(sqlite, [`${HOST}=${sqliteDir}`, `${MAC}=${macDir}`]);

  project = join(work, 'addon');
  await mkdir(project);
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'addon', ocipkg: { packages: { sqlite3: sqlite } } }, null, 2));
});

afterAll(async () => {
  if (!stopped) await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('ocipkg add, several at once in one project', () => {
  it('takes turns: every declaration is kept and locked, and the lockfile agrees with package.json', async () => {
    const dir = await tempDir('concurrent-add');
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'concurrent', private: true }, null, 2));
    const prefix = await debianPrefix(join(dir, 'zlib'), 'z', ['zlib.h', 'zconf.h']);
    const names = ['za', 'zb', 'zc', 'zd'];
    for (const name of names) await publish(`${registry.host}/acme/${name}:1`, [`${HOST}=${prefix}`]);
    const inProject = { ...env, OCIPKG_PROJECT_DIR: dir };
    const results = await Promise.all(names.map((name) => ocipkg(['add', name, `${registry.host}/acme/${name}:1`], inProject)));
    for (const result of results) expect(result.code, result.stderr).toBe(0);
    const declared = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { ocipkg: { packages: Record<string, string> } };
    expect(Object.keys(declared.ocipkg.packages).sort()).toEqual(names);
    const locked = JSON.parse(await readFile(join(dir, 'ocipkg-lock.json'), 'utf8')) as { packages: Record<string, unknown> };
    expect(Object.keys(locked.packages).sort()).toEqual(names.map((name) => `${registry.host}/acme/${name}:1`));
    const frozen = await ocipkg(['install', '--frozen-lockfile'], inProject);
    expect(frozen.code, frozen.stderr).toBe(0);
  });
});

describe('ocipkg install', () => {
  it('locks every declared package and what it requires, with every target the index lists', async () => {
    const result = await ocipkg(['install'], { ...env, OCIPKG_PROJECT_DIR: project });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${join(project, 'ocipkg-lock.json')}\n`);
    const lock = await readLock();
    expect(Object.keys(lock.packages)).toEqual([sqlite, zlib].sort());
    expect(Object.keys(lock.packages[sqlite].manifests)).toEqual([MAC, HOST]);
    expect(lock.packages[sqlite].requires).toEqual([zlib]);
    expect(lock.packages[zlib].requires).toEqual([]);
    // Nothing changed: nothing written, nothing printed.
    const again = await ocipkg(['install'], { ...env, OCIPKG_PROJECT_DIR: project });
    expect([again.code, again.stdout, again.stderr]).toEqual([0, '', '']);
  });

  it('links an alias from the project directory (as gyp runs it): sqlite3, then the zlib it requires, into a working program', async () => {
    const result = linkFromProject(['--cflags', '--libs', 'sqlite3']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const flags = result.stdout.trim().split(' ');
    expect(flags.filter((f) => f.endsWith('.a') && !f.startsWith('-')).map((f) => basename(f))).toEqual(['libsqlite3.a', 'libz.a']);
    const source = join(work, 'main.c');
    await writeFile(source, PROGRAM);
    const exe = join(work, 'main');
    // Debian's archives are not PIC: an executable, not a shared object.
    execFileSync('cc', ['-o', exe, source, ...flags, '-lm', '-lpthread', '-ldl']);
    expect(execFileSync(exe, { encoding: 'utf8' })).toMatch(/^sqlite 42 zlib \S+ crc /);
  });

  it('keeps the locked bytes when a tag moves, reports the drift, and moves the pin only on update', async () => {
    const lock = await readLock();
    const lockedZlib = lock.packages[zlib].manifests[HOST];
    // Republish zlib:1 with different contents: the tag now points elsewhere.
    await publish(zlib, [`${HOST}=${await debianPrefix(join(work, 'zlib-moved'), 'z', ['zlib.h', 'zconf.h'], { 'NOTICE': 'moved\n' })}`]);

    const json = linkFromProject(['--json', 'sqlite3']);
    expect(json.stderr).toBe('');
    const packages = JSON.parse(json.stdout).packages as { image: string; manifestDigest: string }[];
    expect(packages.map((p) => p.manifestDigest)).toEqual([lock.packages[sqlite].manifests[HOST], lockedZlib]);
    // A full reference works the same way: the lock pins it, not the tag.
    const direct = linkFromProject(['--json', zlib]);
    expect(JSON.parse(direct.stdout).packages[0].manifestDigest).toBe(lockedZlib);

    const install = await ocipkg(['install'], { ...env, OCIPKG_PROJECT_DIR: project });
    expect(install.code).toBe(0);
    expect(install.stdout).toBe('');
    expect(install.stderr).toContain(zlib);
    expect(install.stderr.trim().split('\n')).toHaveLength(1);
    expect(await readLock()).toEqual(lock);

    const update = await ocipkg(['update', zlib], { ...env, OCIPKG_PROJECT_DIR: project });
    expect(update.stderr).toBe('');
    expect(update.code).toBe(0);
    const moved = await readLock();
    expect(moved.packages[zlib].digest).not.toBe(lock.packages[zlib].digest);
    expect(moved.packages[sqlite]).toEqual(lock.packages[sqlite]);
    const after = linkFromProject(['--json', 'sqlite3']);
    expect(JSON.parse(after.stdout).packages[1].manifestDigest).toBe(moved.packages[zlib].manifests[HOST]);
    expect(JSON.parse(after.stdout).packages[1].manifestDigest).not.toBe(lockedZlib);
  });

  it('fails in frozen mode (--frozen-lockfile, CI=true) when package.json and the lockfile disagree, leaving it as it was', async () => {
    const before = await readFile(join(project, 'ocipkg-lock.json'), 'utf8');
    const manifest = JSON.parse(await readFile(join(project, 'package.json'), 'utf8'));
    await writeFile(join(project, 'package.json'), JSON.stringify({ ...manifest, ocipkg: { packages: { sqlite3: sqlite, z: `${registry.host}/acme/lz:9` } } }));
    try {
      expect(await codeOf(installProject({ start: project, storeRoot: store, frozen: true }))).toBe('ELOCKFILE');
      const frozen = await ocipkg(['install', '--frozen-lockfile'], { ...env, OCIPKG_PROJECT_DIR: project });
      expect(frozen.code).toBe(7);
      expect(frozen.stderr.trim().split('\n')).toHaveLength(1);
      // CI as CI services set it (AppVeyor's True, 1), not only GitHub's true.
      for (const value of ['true', 'True', '1']) {
        const ci = await ocipkg(['install'], { ...env, CI: value, OCIPKG_PROJECT_DIR: project });
        expect(ci.code, `CI=${value}`).toBe(7);
      }
      expect(await readFile(join(project, 'ocipkg-lock.json'), 'utf8')).toBe(before);
      // The same disagreement the other way: a locked package no longer declared.
      await writeFile(join(project, 'package.json'), JSON.stringify({ ...manifest, ocipkg: { packages: {} } }));
      expect(await codeOf(installProject({ start: project, storeRoot: store, frozen: true }))).toBe('ELOCKFILE');
      expect(await readFile(join(project, 'ocipkg-lock.json'), 'utf8')).toBe(before);
    } finally {
      await writeFile(join(project, 'package.json'), JSON.stringify(manifest, null, 2));
    }
    // Agreeing again, frozen mode passes and writes nothing.
    const ok = await ocipkg(['install'], { ...env, CI: 'true', OCIPKG_PROJECT_DIR: project });
    expect([ok.code, ok.stdout]).toEqual([0, '']);
  });

  it('refuses two versions of one repository (a declared zlib:2 beside the zlib:1 sqlite3 requires)', async () => {
    const other = join(work, 'conflict');
    await mkdir(other);
    await writeFile(join(other, 'package.json'), JSON.stringify({ ocipkg: { packages: { sqlite3: sqlite, zlib: `${registry.host}/acme/zlib:2` } } }));
    await publish(`${registry.host}/acme/zlib:2`, [`${HOST}=${join(work, 'zlib')}`]);
    expect(await codeOf(installProject({ start: other, storeRoot: await tempDir('conflict-store') }))).toBe('ECONFLICT');
  });

  // Last: stops the registry.
  it('builds a CMake project declaring an alias with the registry stopped (lockfile + warm store, offline)', async () => {
    const modules = join(work, 'node_modules');
    await mkdir(modules);
    await symlink(REPO, join(modules, 'ocipkg'), 'dir');
    await writeFile(join(project, 'main.c'), PROGRAM);
    await writeFile(
      join(project, 'CMakeLists.txt'),
      `cmake_minimum_required(VERSION 3.19)
project(consumer C)
find_package(ocipkg CONFIG REQUIRED)
ocipkg_add_package(sqlite IMAGE sqlite3)
add_executable(app main.c)
target_link_libraries(app PRIVATE ocipkg::sqlite)
# Debian's libsqlite3.a needs libm and friends after it; the package records no link flags.
set_property(TARGET ocipkg::sqlite APPEND PROPERTY INTERFACE_LINK_LIBRARIES m pthread dl)
`,
    );
    await registry.stop();
    stopped = true;
    // A build directory outside the project: the alias is found from the source directory.
    const build = join(work, 'build-offline');
    const cmakeEnv: NodeJS.ProcessEnv = { ...process.env, ...env, OCIPKG_OFFLINE: '1' };
    delete cmakeEnv.OCIPKG_PROJECT_DIR;
    execFileSync('cmake', ['-S', project, '-B', build, `-DCMAKE_PREFIX_PATH=${modules}`], { env: cmakeEnv, cwd: work, stdio: 'pipe' });
    execFileSync('cmake', ['--build', build], { env: cmakeEnv, stdio: 'pipe' });
    expect(execFileSync(join(build, 'app'), { encoding: 'utf8' })).toMatch(/^sqlite 42 zlib /);

    // Offline and not in the store: an error naming what to fetch, not a network attempt.
    const missing = await ocipkg(['install', '--offline', '--target', MAC], { ...env, OCIPKG_PROJECT_DIR: project });
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/offline/);
  });
});

describe('declared linkage', () => {
  it('links the shared build of an alias declared "linkage": "shared", the static one otherwise', async () => {
    const dir = await tempDir('linkage');
    // Debian's libzstd, both builds, as a library author would install them.
    const prefixDir = await debianPrefix(join(dir, 'prefix'), 'zstd', ['zstd.h']);
    await copyFile(join(DEBIAN_LIB, 'libzstd.so.1'), join(prefixDir, 'lib', 'libzstd.so.1'));
    await symlink('libzstd.so.1', join(prefixDir, 'lib', 'libzstd.so'));
    const archive = join(dir, 'zstd.tar');
    expect((await ocipkg(['pack', prefixDir, archive, '-t', 'example.com/acme/zstd:1'])).code).toBe(0);
    expect((await ocipkg(['push', archive, `oci:${join(dir, 'layout')}:1`])).code).toBe(0);
    const project = join(dir, 'project');
    await mkdir(project);
    const image = `oci:${join(dir, 'layout')}:1`;
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'addon', ocipkg: { packages: { zshared: { image, linkage: 'shared' }, zstatic: image } } }));
    const env = { OCIPKG_DATA_DIR: join(dir, 'store'), OCIPKG_PROJECT_DIR: project };
    const shared = await ocipkgLink(['--libs', 'zshared'], env);
    expect(shared.stderr).toBe('');
    expect(shared.stdout).toMatch(/libzstd\.so/);
    expect((await ocipkgLink(['--libs', 'zstatic'], env)).stdout).toMatch(/libzstd\.a\n$/);
    expect((await ocipkgLink(['--libs', '--static', 'zshared'], env)).stdout).toMatch(/libzstd\.a\n$/);
  });
});

describe('vendored packages', () => {
  it('finds a layout declared with a relative oci: path from any directory of the project, and locks it as written', async () => {
    const dir = await tempDir('vendored');
    const addon = join(dir, 'addon');
    const build = join(addon, 'build');
    await mkdir(build, { recursive: true });
    const prefixDir = await debianPrefix(join(dir, 'prefix'), 'lz4', ['lz4.h']);
    const archive = join(dir, 'lz4.tar');
    expect((await ocipkg(['pack', prefixDir, archive, '-t', 'example.com/acme/lz4:1'])).code).toBe(0);
    expect((await ocipkg(['push', archive, `oci:${join(addon, 'vendor', 'lz4')}:1`])).code).toBe(0);
    await writeFile(join(addon, 'package.json'), JSON.stringify({ name: 'addon', ocipkg: { packages: { lz4: 'oci:vendor/lz4:1' } } }));
    // From build/, as cmake-js runs its commands; every run with a store of its own, so nothing is warm.
    const inBuild = (bin: string, args: string[], storeName: string) =>
      spawnSync(process.execPath, [bin, ...args], { cwd: build, env: { ...process.env, OCIPKG_PROJECT_DIR: '', OCIPKG_DATA_DIR: join(dir, storeName) }, encoding: 'utf8' });

    const beforeLock = inBuild(OCIPKG_LINK, ['--cflags', '--libs', 'lz4'], 'store-1');
    expect(beforeLock.stderr).toBe('');
    expect(beforeLock.stdout).toMatch(/^-I\S+\/include \S+\/liblz4\.a -Wl,--exclude-libs,liblz4\.a\n$/);

    const install = inBuild(OCIPKG, ['install'], 'store-2');
    expect(install.stderr).not.toMatch(/^ocipkg: (?!warning:)/m);
    expect(install.status).toBe(0);
    const lock = JSON.parse(await readFile(join(addon, 'ocipkg-lock.json'), 'utf8')) as { packages: Record<string, unknown> };
    expect(Object.keys(lock.packages)).toEqual(['oci:vendor/lz4:1']);

    for (const [image, storeName] of [['lz4', 'store-3'], ['oci:vendor/lz4:1', 'store-4']] as const) {
      const locked = inBuild(OCIPKG_LINK, ['--cflags', '--libs', image], storeName);
      expect(locked.stderr, image).toBe('');
      expect(locked.stdout).toBe(beforeLock.stdout.replaceAll(join(dir, 'store-1'), join(dir, storeName)));
    }
  });
});

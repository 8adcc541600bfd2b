import { execFileSync, spawnSync } from 'node:child_process';
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitFlags } from '../src/pkgconfig.js';
import { parseReference } from '../src/reference.js';
import { resolvePackage } from '../src/resolve.js';
import { readRef } from '../src/store/refs.js';
import { ocipkg, ocipkgLink, tempDir } from './helpers/cli.js';
import { codeOf } from './helpers/errors.js';
import { debianPrefix } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

/**
 * The generated `.pc` and CMake config of a package that requires another: Debian's static
 * libsqlite3 (package `sqlite3`) requiring Debian's static libz (package `zlib`), published to a
 * real registry. Plain pkg-config and plain find_package, pointed at the directories
 * `ocipkg-link --prefix` prints, link both in order. The archives are not PIC: executables only.
 */
const HOST = 'x86_64-unknown-linux-gnu';
/** Debian's libsqlite3.a needs these after it; the packages record no link flags. */
const SYSTEM_LIBS = ['-lm', '-lpthread', '-ldl'];

const PROGRAM = `
#include <sqlite3.h>
#include <zlib.h>
#include <stdio.h>
int main(void) {
  sqlite3 *db;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) return 2;
  sqlite3_close(db);
  printf("sqlite %s zlib %s crc %lx\\n", sqlite3_libversion(), zlibVersion(), crc32(0L, (const Bytef *)"ocipkg", 6));
  return 0;
}
`;

let registry: TestRegistry;
let work: string;
let store: string;
let sqlite: string;


async function publish(image: string, dir: string): Promise<void> {
  const result = await ocipkg(['publish', image, '--target', `${HOST}=${dir}`], { OCIPKG_DATA_DIR: store });
  // Debian's archives are not PIC, which publish warns about: only errors fail here.
  expect(result.stderr).not.toMatch(/^ocipkg: (?!warning:)/m);
  expect(result.code).toBe(0);
}

/** The package directories `ocipkg-link --prefix` prints for `image`, with the store at `storeDir`. */
async function prefixes(image: string, storeDir: string): Promise<string[]> {
  const result = await ocipkgLink(['--prefix', '--target', HOST, image], { OCIPKG_DATA_DIR: storeDir, OCIPKG_PROJECT_DIR: work });
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return splitFlags(result.stdout);
}

/** Plain pkg-config (pkgconf) with PKG_CONFIG_PATH made of the prefixes' lib/pkgconfig. */
function pkgConfig(dirs: string[], ...args: string[]): string[] {
  const PKG_CONFIG_PATH = dirs.map((dir) => join(dir, 'lib', 'pkgconfig')).join(':');
  return splitFlags(execFileSync('pkg-config', [...args, 'sqlite3'], { env: { ...process.env, PKG_CONFIG_PATH }, encoding: 'utf8' }));
}

async function buildWithPkgConfig(dirs: string[], name: string): Promise<string> {
  const flags = pkgConfig(dirs, '--cflags', '--libs');
  expect(flags.filter((f) => f.endsWith('.a') && !f.startsWith('-')).map((f) => basename(f))).toEqual(['libsqlite3.a', 'libz.a']);
  const exe = join(work, name);
  execFileSync('cc', [join(work, 'main.c'), '-o', exe, ...flags, ...SYSTEM_LIBS]);
  return execFileSync(exe, { encoding: 'utf8' });
}

beforeAll(async () => {
  registry = await startRegistry();
  work = await tempDir('requires-generated');
  store = join(work, 'store');
  await writeFile(join(work, 'main.c'), PROGRAM);
  const zlib = `${registry.host}/acme/zlib:1`;
  sqlite = `${registry.host}/acme/sqlite3:3`;
  await publish(zlib, await debianPrefix(join(work, 'zlib'), 'z', ['zlib.h', 'zconf.h']));
  await publish(sqlite, await debianPrefix(join(work, 'sqlite'), 'sqlite3', ['sqlite3.h'], { 'ocipkg.json': JSON.stringify({ requires: [zlib] }) }));
});

afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('requirements in the generated files', () => {
  it('pkg-config --cflags --libs sqlite3 gives sqlite3 then the zlib it requires, and the program runs', async () => {
    const dirs = await prefixes(sqlite, store);
    expect(dirs).toHaveLength(2);
    const pc = await readFile(join(dirs[0]!, 'lib', 'pkgconfig', 'sqlite3.pc'), 'utf8');
    expect(pc).toMatch(/^Requires: zlib$/m);
    expect(pkgConfig(dirs, '--print-requires')).toEqual(['zlib']);
    expect(await buildWithPkgConfig(dirs, 'prog-pc')).toMatch(/^sqlite 3\.\S+ zlib \S+ crc /);
  });

  it('find_package(sqlite3 CONFIG) links sqlite3::sqlite3 and, through it, zlib; without zlib on the prefix path it is not found', async () => {
    const dirs = await prefixes(sqlite, store);
    const project = join(work, 'cmake-project');
    await mkdir(project);
    await copyFile(join(work, 'main.c'), join(project, 'main.c'));
    await writeFile(
      join(project, 'CMakeLists.txt'),
      `cmake_minimum_required(VERSION 3.19)
project(consumer C)
find_package(sqlite3 CONFIG REQUIRED)
if(NOT TARGET zlib::zlib)
  message(FATAL_ERROR "zlib::zlib was not brought in by sqlite3")
endif()
add_executable(app main.c)
target_link_libraries(app PRIVATE sqlite3::sqlite3)
set_property(TARGET sqlite3::sqlite3 APPEND PROPERTY INTERFACE_LINK_LIBRARIES m pthread dl)
`,
    );
    const build = join(work, 'cmake-build');
    execFileSync('cmake', ['-S', project, '-B', build, `-DCMAKE_PREFIX_PATH=${dirs.join(';')}`], { stdio: 'pipe' });
    execFileSync('cmake', ['--build', build], { stdio: 'pipe' });
    const linkLine = splitFlags(await readFile(join(build, 'CMakeFiles', 'app.dir', 'link.txt'), 'utf8'));
    expect(linkLine.filter((f) => f.endsWith('.a') && !f.startsWith('-')).map((f) => basename(f))).toEqual(['libsqlite3.a', 'libz.a']);
    // Linked by CMake from the generated config, the archives are kept out of the exports too.
    expect(linkLine).toContain('-Wl,--exclude-libs,libsqlite3.a');
    expect(execFileSync(join(build, 'app'), { encoding: 'utf8' })).toMatch(/^sqlite 3\.\S+ zlib \S+ crc /);

    const missing = spawnSync('cmake', ['-S', project, '-B', join(work, 'cmake-build-missing'), `-DCMAKE_PREFIX_PATH=${dirs[0]}`], { encoding: 'utf8' });
    expect(missing.status).not.toBe(0);
    // Refused for want of the requirement, not for anything else.
    expect(missing.stderr).toMatch(/zlib/);
  });

  it('keeps working after the store is moved: nothing generated holds a store path', async () => {
    const moved = join(work, 'moved-store');
    await rename(store, moved);
    try {
      const dirs = await prefixes(sqlite, moved);
      expect(dirs.every((dir) => dir.startsWith(`${moved}/`))).toBe(true);
      expect(await buildWithPkgConfig(dirs, 'prog-moved')).toMatch(/^sqlite 3\./);
    } finally {
      await rename(moved, store);
    }
  });

  it('refuses a requirement cycle with EMANIFEST instead of fetching forever', async () => {
    const a = `${registry.host}/acme/cycle-a:1`;
    const b = `${registry.host}/acme/cycle-b:1`;
    await publish(a, await debianPrefix(join(work, 'cycle-a'), 'z', ['zlib.h'], { 'ocipkg.json': JSON.stringify({ requires: [b] }) }));
    await publish(b, await debianPrefix(join(work, 'cycle-b'), 'z', ['zlib.h'], { 'ocipkg.json': JSON.stringify({ requires: [a] }) }));
    const cycleStore = await tempDir('requires-cycle');
    try {
      expect(await codeOf(resolvePackage(a, { target: HOST, storeRoot: cycleStore, project: false }))).toBe('EMANIFEST');
    } finally {
      await rm(cycleStore, { recursive: true, force: true });
    }
  });

  it('resolves requirements with the options of the package that requires them', async () => {
    const base = `${registry.host}/acme/options-base:1`;
    const top = `${registry.host}/acme/options-top:1`;
    await publish(base, await debianPrefix(join(work, 'options-base'), 'z', ['zlib.h']));
    await publish(top, await debianPrefix(join(work, 'options-top'), 'sqlite3', ['sqlite3.h'], { 'ocipkg.json': JSON.stringify({ requires: [base] }) }));
    const own = await tempDir('requires-options');
    // A project whose lockfile pins the requirement to a manifest that exists nowhere: with
    // `project: false` (as under `ocipkg install`) nothing may read it.
    const project = await tempDir('requires-options-project');
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'p', ocipkg: { packages: { base } } }));
    const bogus = `sha256:${'0'.repeat(64)}`;
    await writeFile(join(project, 'ocipkg-lock.json'), JSON.stringify({ lockfileVersion: 1, packages: { [base]: { digest: bogus, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: { [HOST]: bogus }, requires: [] } } }));
    const previous = process.env.OCIPKG_PROJECT_DIR;
    process.env.OCIPKG_PROJECT_DIR = project;
    try {
      const pkg = await resolvePackage(top, { target: HOST, storeRoot: own, project: false });
      const baseRecord = readRef(own, parseReference(base));
      expect(baseRecord?.manifests[HOST]).toMatch(/^sha256:/);
      expect(baseRecord?.manifests[HOST]).not.toBe(bogus);

      // `force` reaches the requirement: after its tag moved, a forced resolve of the package that
      // requires it fetches the requirement again too.
      await publish(base, await debianPrefix(join(work, 'options-base-2'), 'z', ['zlib.h', 'zconf.h']));
      const again = await resolvePackage(top, { target: HOST, storeRoot: own, project: false, force: true });
      expect(again.manifestDigest).toBe(pkg.manifestDigest);
      const moved = readRef(own, parseReference(base));
      expect(moved?.digest).not.toBe(baseRecord?.digest);
    } finally {
      if (previous === undefined) delete process.env.OCIPKG_PROJECT_DIR;
      else process.env.OCIPKG_PROJECT_DIR = previous;
      await rm(own, { recursive: true, force: true });
      await rm(project, { recursive: true, force: true });
    }
  });
});

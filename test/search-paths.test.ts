import { execFileSync } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, isAbsolute, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitFlags } from '../src/pkgconfig.js';
import { ocipkg, ocipkgLink, tempDir } from './helpers/cli.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { DEBIAN_LIB, debianPrefix } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

/**
 * The names builds already write, answered from the store: Debian's static libpng16 (package `png`,
 * shipping Debian's libpng16.pc and libpng.pc) requiring Debian's static libz (package `z`, shipping
 * zlib.pc), published to a real registry. This machine has libpng-dev and zlib1g-dev installed, so
 * any lookup that falls through to the system finds /usr's copies, and the assertions that every
 * path is in the store fail. The archives are not PIC: executables only.
 */
const HOST = 'x86_64-unknown-linux-gnu';
const DEBIAN_PC = join(DEBIAN_LIB, 'pkgconfig');

const PROGRAM = `
#include <png.h>
#include <zlib.h>
#include <stdio.h>
int main(void) {
  printf("png %lu zlib %s\\n", (unsigned long)png_access_version_number(), zlibVersion());
  return 0;
}
`;

let registry: TestRegistry;
let work: string;
let store: string;
let z: string;
let png: string;

async function publish(image: string, dir: string, version: string): Promise<void> {
  const result = await ocipkg(['publish', image, '--target', `${HOST}=${dir}`, '--version', version], { OCIPKG_DATA_DIR: store });
  // Debian's archives are not PIC, which publish warns about: only errors fail here.
  expect(result.stderr).not.toMatch(/^ocipkg: (?!warning:)/m);
  expect(result.code).toBe(0);
}

async function link(...args: string[]): Promise<string> {
  const result = await ocipkgLink(['--target', HOST, ...args], { OCIPKG_DATA_DIR: store, OCIPKG_PROJECT_DIR: work });
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return result.stdout.replace(/\n$/, '');
}

/** pkgconf with nothing but `path` on PKG_CONFIG_PATH (the system's own directories stay searched). */
function pkgConfig(path: string, ...args: string[]): string[] {
  return splitFlags(execFileSync('pkg-config', args, { env: { ...process.env, PKG_CONFIG_PATH: path }, encoding: 'utf8' }));
}

const inStore = (path: string) => path.startsWith(`${store}/packages/`);

beforeAll(async () => {
  registry = await startRegistry();
  work = await tempDir('search-paths');
  store = join(work, 'store');
  z = `${registry.host}/acme/z:1.2.13`;
  png = `${registry.host}/acme/png:1.6`;
  await publish(z, await debianPrefix(join(work, 'z'), 'z', ['zlib.h', 'zconf.h'], {
    'lib/pkgconfig/zlib.pc': await readFile(join(DEBIAN_PC, 'zlib.pc'), 'utf8'),
  }), '1.2.13');
  const libpng16 = await readFile(join(DEBIAN_PC, 'libpng16.pc'), 'utf8');
  await publish(png, await debianPrefix(join(work, 'png'), 'png16', ['png.h', 'pngconf.h', 'pnglibconf.h'], {
    'lib/pkgconfig/libpng16.pc': libpng16,
    'lib/pkgconfig/libpng.pc': libpng16,
    'ocipkg.json': JSON.stringify({ requires: [z] }),
  }), '1.6.39');
  await writeFile(join(work, 'main.c'), PROGRAM);
});

afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('--pkg-config-path and the module names packages ship', () => {
  it('lists the generated .pc directories of the image and everything it requires, in link order', async () => {
    const dirs = (await link('--pkg-config-path', png)).split(':');
    const packages = splitFlags(await link('--prefix', png));
    expect(packages).toHaveLength(2);
    expect(dirs).toEqual(packages.map((dir) => `${dir}/lib/pkgconfig`));
    expect(dirs.every(inStore)).toBe(true);
    const json = JSON.parse(await link('--json', png));
    expect(json.pkgConfigPath).toEqual(dirs);
    expect(json.cmakePrefixPath).toEqual((await link('--cmake-prefix-path', png)).split(';'));
  });

  it('pkg-config libpng, libpng16 and zlib resolve into the store, requirement included, and the program links and runs', async () => {
    const path = await link('--pkg-config-path', png);
    // Without the path, the same names are the system's: what a build silently got before.
    expect(pkgConfig('', '--libs', 'libpng')).toEqual(['-lpng16']);

    for (const module of ['libpng', 'libpng16']) {
      const flags = pkgConfig(path, '--cflags', '--libs', module);
      const includes = flags.filter((f) => f.startsWith('-I')).map((f) => f.slice(2));
      const archives = flags.filter((f) => f.endsWith('.a') && !f.startsWith('-'));
      expect(includes.length).toBeGreaterThan(0);
      expect(includes.every(inStore), flags.join(' ')).toBe(true);
      expect(archives.map((f) => basename(f))).toEqual(['libpng16.a', 'libz.a']);
      expect(archives.every(inStore)).toBe(true);
      // libpng's own Libs.private, recorded at pack; no -lpng16 or -lz that would reach /usr.
      expect(flags.filter((f) => f.startsWith('-l'))).toEqual(['-lm']);
      expect(pkgConfig(path, '--modversion', module)).toEqual(['1.6.39']);
    }
    const zlib = pkgConfig(path, '--libs', 'zlib');
    expect(zlib.map((f) => basename(f))).toEqual(['libz.a', '-Wl,--exclude-libs,libz.a']);
    expect(inStore(zlib[0]!)).toBe(true);

    const exe = join(work, 'prog-pc');
    execFileSync('cc', [join(work, 'main.c'), '-o', exe, ...pkgConfig(path, '--cflags', '--libs', 'libpng16'), '-lm']);
    expect(execFileSync(exe, { encoding: 'utf8' })).toMatch(/^png 10639 zlib 1\.2\.13\n$/);
  });

  it('writes generated module files, never the shipped ones, which name /usr', async () => {
    const path = await link('--pkg-config-path', png);
    const [pngDir] = path.split(':');
    const generated = await readFile(join(pngDir!, 'libpng16.pc'), 'utf8');
    expect(generated).toMatch(/^Name: libpng16$/m);
    expect(generated).toMatch(/^Requires: z$/m);
    expect(generated).not.toMatch(/\/usr/);
    expect(execFileSync('pkg-config', ['--validate', 'libpng16'], { env: { ...process.env, PKG_CONFIG_PATH: path }, encoding: 'utf8' })).toBe('');
  });
});

describe('--cmake-prefix-path and CMake find modules', () => {
  /** Configures a project whose CMakeLists.txt is `body` and returns the variables it writes to found.txt. */
  async function configure(name: string, body: string, prefixPath: string | undefined): Promise<{ vars: Record<string, string[]>; build: string }> {
    const project = join(work, name);
    await mkdir(project, { recursive: true });
    await writeFile(join(project, 'main.c'), PROGRAM);
    await writeFile(join(project, 'CMakeLists.txt'), `cmake_minimum_required(VERSION 3.19)\nproject(${name} C)\n${body}`);
    const build = join(work, `${name}-build${prefixPath === undefined ? '-system' : ''}`);
    execFileSync('cmake', ['-S', project, '-B', build, ...(prefixPath === undefined ? [] : [`-DCMAKE_PREFIX_PATH=${prefixPath}`])], { stdio: 'pipe' });
    const found = await readFile(join(build, 'found.txt'), 'utf8');
    const vars = Object.fromEntries(found.trim().split('\n').map((line) => {
      const [key, value] = line.split('=') as [string, string];
      return [key, value.split(';').filter(Boolean)];
    }));
    return { vars, build };
  }

  const record = (names: string[]) => `file(WRITE "\${CMAKE_BINARY_DIR}/found.txt" "${names.map((n) => `${n}=\${${n}}\\n`).join('')}")\n`;

  it('lists the package directories (generated configs) then the package roots, of the whole closure', async () => {
    const packages = splitFlags(await link('--prefix', png));
    expect((await link('--cmake-prefix-path', png)).split(';')).toEqual([...packages, ...packages.map((dir) => `${dir}/root`)]);
  });

  it('find_package(ZLIB), CMake\'s own FindZLIB, finds the store\'s zlib, not /usr\'s', async () => {
    const body = `find_package(ZLIB REQUIRED)\nfind_package(z CONFIG REQUIRED)\n${record(['ZLIB_INCLUDE_DIRS', 'ZLIB_LIBRARIES', 'z_DIR'])}`;
    const { vars: system } = await configure('zlib-consumer', body.replace('find_package(z CONFIG REQUIRED)\n', ''), undefined);
    // The fallback this guards against is real here.
    expect(system.ZLIB_INCLUDE_DIRS).toEqual(['/usr/include']);

    const { vars: found } = await configure('zlib-consumer', body, await link('--cmake-prefix-path', z));
    const [zDir] = splitFlags(await link('--prefix', z));
    expect(found.ZLIB_INCLUDE_DIRS).toEqual([`${zDir}/root/include`]);
    expect(found.ZLIB_LIBRARIES).toEqual([`${zDir}/root/lib/libz.a`]);
    expect(found.z_DIR).toEqual([`${zDir}/lib/cmake/z`]);
  });

  it('find_package(PNG) finds the store\'s libpng and, through FindZLIB, the zlib it requires; the program links and runs', async () => {
    const body = `find_package(PNG REQUIRED)\n${record(['PNG_INCLUDE_DIRS', 'PNG_LIBRARIES', 'ZLIB_LIBRARIES'])}add_executable(app main.c)\ntarget_link_libraries(app PRIVATE PNG::PNG m)\n`;
    const { vars: found, build } = await configure('png-consumer', body, await link('--cmake-prefix-path', png));
    const [pngDir, zDir] = splitFlags(await link('--prefix', png));
    expect(found.PNG_INCLUDE_DIRS!.length).toBeGreaterThan(0);
    expect(found.PNG_INCLUDE_DIRS!.every(inStore)).toBe(true);
    expect(found.PNG_LIBRARIES!.filter((lib) => isAbsolute(lib))).toEqual([`${pngDir}/root/lib/libpng16.a`, `${zDir}/root/lib/libz.a`]);
    expect(found.ZLIB_LIBRARIES).toEqual([`${zDir}/root/lib/libz.a`]);

    execFileSync('cmake', ['--build', build], { stdio: 'pipe' });
    expect(execFileSync(join(build, 'app'), { encoding: 'utf8' })).toMatch(/^png 10639 zlib 1\.2\.13\n$/);
  });
});

describe('OCIPKG_OFFLINE=1', () => {
  let proxy: FaultProxy;
  let empty: string;

  beforeAll(async () => {
    proxy = await startFaultProxy(registry.url);
    empty = join(work, 'empty-store');
  });

  afterAll(async () => {
    await proxy?.close();
  });

  const offline = /^ocipkg(-link)?: \S+ \(x86_64-unknown-linux-gnu\) is not in the store and ocipkg is offline; run `ocipkg get --target x86_64-unknown-linux-gnu \S+` with network first\n$/;

  it('keeps ocipkg-link, get and image-directory off the network with an empty store', async () => {
    const image = `${proxy.host}/acme/z:1.2.13`;
    const env = { OCIPKG_DATA_DIR: empty, OCIPKG_PROJECT_DIR: work, OCIPKG_OFFLINE: '1' };
    const runs = [
      await ocipkgLink(['--libs', '--target', HOST, image], env),
      await ocipkgLink(['--pkg-config-path', '--target', HOST, image], env),
      await ocipkg(['get', '--target', HOST, image], env),
      await ocipkg(['image-directory', '--target', HOST, image], env),
    ];
    for (const run of runs) {
      expect(run.stderr).toMatch(offline);
      // ocipkg-link exits 1 on every failure, as pkg-config does; ocipkg says "not found" (3).
      expect([run.code, run.stdout]).toEqual([run === runs[0] || run === runs[1] ? 1 : 3, '']);
    }
    expect(proxy.requests).toEqual([]);

    // The same command with the variable unset goes through the proxy: zero requests above is the variable's doing.
    const online = await ocipkg(['get', '--target', HOST, image], { ...env, OCIPKG_OFFLINE: '' });
    expect(online.code, online.stderr).toBe(0);
    expect(proxy.requests.length).toBeGreaterThan(0);

    // And once the store has it, offline answers come from the store alone.
    proxy.reset();
    const warm = await ocipkgLink(['--pkg-config-path', '--target', HOST, image], env);
    expect(warm.code, warm.stderr).toBe(0);
    expect(warm.stdout.trim().startsWith(`${empty}/packages/`)).toBe(true);
    expect(proxy.requests).toEqual([]);
  });

  it('keeps ocipkg install off the network', async () => {
    const project = join(work, 'offline-project');
    await mkdir(project);
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'p', private: true, ocipkg: { packages: { z: `${proxy.host}/acme/z:1.2.13` } } }));
    proxy.reset();
    const result = await ocipkg(['install', '--target', HOST], { OCIPKG_DATA_DIR: join(work, 'empty-store-install'), OCIPKG_PROJECT_DIR: project, OCIPKG_OFFLINE: '1' });
    expect(result.stderr).toMatch(/is not in ocipkg-lock\.json and ocipkg is offline/);
    expect(result.code).toBe(3);
    expect(proxy.requests).toEqual([]);
  });
});

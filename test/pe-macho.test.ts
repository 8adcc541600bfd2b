import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LibraryInfo, PackageMetadata } from '../src/artifact/config.js';
import { readLinkDescription } from '../src/link/description.js';
import { computeLinkFlags } from '../src/link/flags.js';
import { preparePackage } from '../src/link/generate.js';
import { splitFlags } from '../src/pkgconfig.js';
import type { PackageInfo } from '../src/store/package.js';
import { ocipkg, ocipkgLink, REPO, tempDir } from './helpers/cli.js';
import { versionAddon } from './helpers/napi.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

/**
 * Windows and macOS packages, proven with real PE and Mach-O toolchains on Linux: clang for
 * x86_64-pc-windows-msvc with lld-link and llvm-dlltool, MinGW-w64's gcc, clang for
 * arm64-apple-macos11 with ld64.lld. Each library is built here, packed and pushed (or loaded)
 * with the CLI, and a Node-API addon (a DLL, a Mach-O bundle) is linked with exactly what
 * `ocipkg-link` or the CMake module hands out; llvm-readobj and llvm-objdump then show that the
 * addon imports the DLL / dylib by the name of the file that ships beside it. Nothing runs the
 * binaries: no Windows or macOS loader exists here.
 */
let registry: TestRegistry;
let work: string;
let store: string;
const NODE_INCLUDE = resolve(dirname(process.execPath), '..', 'include', 'node');
const ADDON = versionAddon('greet.h', 'greet()');
const GREET_C = '__declspec(dllexport) const char *greet(void) { return "hello"; }\n';
const GREET_H = 'const char *greet(void);\n';

/** Debian names LLVM 14's Mach-O tools with their version; newer packages also without. */
const tool = (name: string) => [name, `${name}-14`].find((candidate) => execFileSync('sh', ['-c', `command -v ${candidate} || true`], { encoding: 'utf8' }).trim() !== '') ?? name;
const LD64 = tool('ld64.lld');
const LIPO = tool('llvm-lipo');

function sh(cmd: string, args: string[], cwd = work): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `llvm-readobj --coff-imports`: DLL name -> the symbols imported from it. */
function coffImports(file: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  let dll = '';
  for (const line of sh('llvm-readobj', ['--coff-imports', file]).split('\n')) {
    const name = /^\s*Name: (.+)$/.exec(line);
    if (name) out[(dll = name[1]!)] = [];
    const symbol = /^\s*Symbol: (\S+)/.exec(line);
    if (symbol && dll) out[dll]!.push(symbol[1]!);
  }
  return out;
}

/** `llvm-objdump --macho --dylibs-used --rpaths`: the install names loaded and the LC_RPATHs. */
function machoLoads(file: string): { dylibs: string[]; rpaths: string[] } {
  const dylibs = sh('llvm-objdump', ['--macho', '--dylibs-used', file]).split('\n').slice(1).map((l) => l.trim().replace(/ \(compatibility.*$/, '')).filter(Boolean);
  const rpaths = sh('llvm-objdump', ['--macho', '--rpaths', file]).split('\n').slice(1).map((l) => l.trim()).filter(Boolean);
  return { dylibs, rpaths };
}

async function files(dir: string, contents: Record<string, string>): Promise<string> {
  for (const [path, source] of Object.entries(contents)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    if (source.startsWith('->')) await symlink(source.slice(2), join(dir, path));
    else if (source.startsWith('/')) await copyFile(source, join(dir, path));
    else await writeFile(join(dir, path), source);
  }
  return dir;
}

/** `ocipkg pack` then `ocipkg push`; returns the package metadata the archive records and pack's stderr. */
async function publish(dir: string, image: string, extra: string[] = []): Promise<{ meta: Record<string, unknown>; stderr: string }> {
  const archive = join(work, `${basename(dir)}.tar`);
  const packed = await ocipkg(['pack', dir, archive, '-t', image, ...extra]);
  expect(packed.code, packed.stderr).toBe(0);
  const pushed = await ocipkg(['push', archive]);
  expect(pushed.code, pushed.stderr).toBe(0);
  const inspected = JSON.parse((await ocipkg(['inspect', archive])).stdout) as { config: { package: Record<string, unknown> } };
  return { meta: inspected.config.package, stderr: packed.stderr };
}

/** A package as the installer leaves it (the prepare step on its extracted files), for `target`, with `libraries` as metadata. */
async function installed(dir: string, target: string, contents: Record<string, string>, libraries: LibraryInfo[]): Promise<string> {
  await files(join(dir, 'root'), contents);
  const meta: PackageMetadata = { schema: 1, name: basename(dir), target, libraries, includeDirs: [], defines: [], linkFlags: [], staticLinkFlags: [], requires: [] };
  const info: PackageInfo = {
    manifestDigest: `sha256:${'0'.repeat(64)}`,
    manifest: { schemaVersion: 2, config: { mediaType: 'application/vnd.ocipkg.v1.config+json', digest: `sha256:${'1'.repeat(64)}`, size: 2 }, layers: [] },
    config: { layers: {}, package: meta },
    target,
  };
  await preparePackage(dir, info, [], 'test package');
  return dir;
}

async function link(args: string[]): Promise<string[]> {
  const result = await ocipkgLink(args, { OCIPKG_DATA_DIR: store });
  expect(result.code, result.stderr).toBe(0);
  return splitFlags(result.stdout);
}

/** The Node-API functions the addon calls, as node.exe exports them: the import library of node.exe. */
async function nodeImportLibrary(): Promise<string> {
  await writeFile(join(work, 'node.def'), 'LIBRARY node.exe\nEXPORTS\n  napi_create_function\n  napi_create_string_utf8\n  napi_set_named_property\n');
  sh('llvm-dlltool', ['-m', 'i386:x86-64', '-d', 'node.def', '-l', 'node.lib']);
  return join(work, 'node.lib');
}

/** An MSVC-ABI DLL: clang for x86_64-pc-windows-msvc, lld-link /dll with its import library. */
function msvcDll(name: string, implib: string): void {
  sh('clang', ['--target=x86_64-pc-windows-msvc', '-c', 'greet.c', '-o', `${name}.obj`]);
  sh('lld-link', ['-dll', '-noentry', '-nodefaultlib', `${name}.obj`, `-out:${name}.dll`, `-implib:${implib}`]);
}

/** The addon compiled for MSVC with the package's --cflags and linked as a DLL by lld-link with `libs`. */
function msvcAddon(out: string, cflags: string[], libs: string[]): string {
  sh('clang', ['--target=x86_64-pc-windows-msvc', '-ffreestanding', `-I${NODE_INCLUDE}`, ...cflags, '-c', 'addon.c', '-o', `${out}.obj`]);
  sh('lld-link', ['-dll', '-noentry', '-nodefaultlib', `${out}.obj`, join(work, 'node.lib'), ...libs, `-out:${out}.node`]);
  return join(work, `${out}.node`);
}

beforeAll(async () => {
  registry = await startRegistry();
  work = await tempDir('pe-macho');
  store = await tempDir('pe-macho-store');
  await writeFile(join(work, 'greet.c'), GREET_C);
  await writeFile(join(work, 'greet.h'), GREET_H);
  await writeFile(join(work, 'addon.c'), ADDON);
  await nodeImportLibrary();
});

afterAll(async () => {
  await registry?.stop();
});

describe('MSVC packages: the import library links, the DLL ships', () => {
  it('bin/greet.dll with lib/greet.lib: recorded as one library, --libs names the .lib, --runtime-files the DLL, and the addon imports greet.dll', async () => {
    msvcDll('greet', 'greet.lib');
    const prefix = await files(join(work, 'msvc'), { 'include/greet.h': GREET_H, 'bin/greet.dll': join(work, 'greet.dll'), 'lib/greet.lib': join(work, 'greet.lib') });
    const image = `${registry.host}/acme/greet-msvc:1`;
    const { meta } = await publish(prefix, image);
    expect(meta.target).toBe('x86_64-pc-windows-msvc');
    expect(meta.libraries).toEqual([{ name: 'greet', kind: 'shared', file: 'lib/greet.lib', runtime: 'bin/greet.dll' }]);

    const target = ['--target', 'x86_64-pc-windows-msvc'];
    const libs = await link([...target, '--libs', image]);
    expect(libs.map((f) => basename(f))).toEqual(['greet.lib']);
    const runtime = await link([...target, '--runtime-files', image]);
    expect(runtime.map((f) => basename(f))).toEqual(['greet.dll']);
    expect(existsSync(runtime[0]!)).toBe(true);

    const addon = msvcAddon('addon-msvc', await link([...target, '--cflags', image]), libs);
    const imports = coffImports(addon);
    // The name the addon asks the loader for is the file --runtime-files ships beside it.
    expect(imports[basename(runtime[0]!)]).toEqual(['greet']);
    expect(Object.keys(imports).sort()).toEqual(['greet.dll', 'node.exe']);

    const json = JSON.parse((await ocipkgLink([...target, '--json', image], { OCIPKG_DATA_DIR: store })).stdout) as { libraries: Record<string, unknown>[] };
    expect(json.libraries).toEqual([{ package: 'greet-msvc', name: 'greet', kind: 'shared', file: libs[0], runtime: runtime[0], importLibrary: libs[0] }]);
    const dir = dirname(dirname(dirname(libs[0]!)));
    const config = await readFile(join(dir, 'lib', 'cmake', 'greet-msvc', 'greet-msvcConfig.cmake'), 'utf8');
    expect(config).toContain('IMPORTED_IMPLIB "${_ocipkg_package_dir}/root/lib/greet.lib" IMPORTED_LOCATION "${_ocipkg_package_dir}/root/bin/greet.dll"');
  });

  it('a static greet.lib beside greet.dll and its import library greet.dll.lib: static links the archive, shared the import library', async () => {
    msvcDll('greet', 'greet.dll.lib');
    sh('clang', ['--target=x86_64-pc-windows-msvc', '-c', 'greet.c', '-o', 'greet-static.obj']);
    sh('llvm-lib', ['-out:greet-static.lib', 'greet-static.obj']);
    const prefix = await files(join(work, 'msvc-both'), {
      'include/greet.h': GREET_H, 'bin/greet.dll': join(work, 'greet.dll'), 'lib/greet.dll.lib': join(work, 'greet.dll.lib'), 'lib/greet.lib': join(work, 'greet-static.lib'),
    });
    const image = `${registry.host}/acme/greet-both:1`;
    const { meta } = await publish(prefix, image);
    expect(meta.libraries).toEqual([
      { name: 'greet', kind: 'shared', file: 'lib/greet.dll.lib', runtime: 'bin/greet.dll' },
      { name: 'greet', kind: 'static', file: 'lib/greet.lib' },
    ]);
    const target = ['--target', 'x86_64-pc-windows-msvc'];
    const cflags = await link([...target, '--cflags', image]);

    const staticLibs = await link([...target, '--libs', image]);
    expect(staticLibs.map((f) => basename(f))).toEqual(['greet.lib']);
    expect(await link([...target, '--runtime-files', image])).toEqual([]);
    expect(Object.keys(coffImports(msvcAddon('addon-static', cflags, staticLibs)))).toEqual(['node.exe']);

    const sharedLibs = await link([...target, '--libs', '--shared', image]);
    expect(sharedLibs.map((f) => basename(f))).toEqual(['greet.dll.lib']);
    expect((await link([...target, '--runtime-files', '--shared', image])).map((f) => basename(f))).toEqual(['greet.dll']);
    expect(coffImports(msvcAddon('addon-shared', cflags, sharedLibs))['greet.dll']).toEqual(['greet']);
  });

  it("zlib's own Windows layout, the import library zlib.lib beside the archive zlibstatic.lib: one library, static links the archive alone", async () => {
    // zlib's CMake installs zlib.lib for zlib1.dll and zlibstatic.lib; libpng and zstd do the same (_static).
    msvcDll('greet', 'greet.lib');
    sh('clang', ['--target=x86_64-pc-windows-msvc', '-c', 'greet.c', '-o', 'greet-static.obj']);
    sh('llvm-lib', ['-out:greetstatic.lib', 'greet-static.obj']);
    const prefix = await files(join(work, 'msvc-zlib-layout'), {
      'include/greet.h': GREET_H, 'bin/greet.dll': join(work, 'greet.dll'), 'lib/greet.lib': join(work, 'greet.lib'), 'lib/greetstatic.lib': join(work, 'greetstatic.lib'),
    });
    const image = `${registry.host}/acme/greet-zlib-layout:1`;
    const { meta } = await publish(prefix, image);
    expect(meta.libraries).toEqual([
      { name: 'greet', kind: 'shared', file: 'lib/greet.lib', runtime: 'bin/greet.dll' },
      { name: 'greet', kind: 'static', file: 'lib/greetstatic.lib' },
    ]);
    const target = ['--target', 'x86_64-pc-windows-msvc'];
    const cflags = await link([...target, '--cflags', image]);
    const staticLibs = await link([...target, '--libs', '--static', image]);
    expect(staticLibs.map((f) => basename(f))).toEqual(['greetstatic.lib']);
    expect(await link([...target, '--runtime-files', '--static', image])).toEqual([]);
    expect(Object.keys(coffImports(msvcAddon('addon-zlib-layout-static', cflags, staticLibs)))).toEqual(['node.exe']);
    const sharedLibs = await link([...target, '--libs', '--shared', image]);
    expect(sharedLibs.map((f) => basename(f))).toEqual(['greet.lib']);
    expect(coffImports(msvcAddon('addon-zlib-layout-shared', cflags, sharedLibs))['greet.dll']).toEqual(['greet']);
  });

  it('an older package that recorded the .lib alone still links it, and ships the DLL its members name', async () => {
    msvcDll('greet', 'greet.lib');
    // What earlier versions of ocipkg recorded: the import library as a shared library, no runtime.
    const dir = await installed(join(work, 'msvc-legacy'), 'x86_64-pc-windows-msvc', { 'bin/greet.dll': join(work, 'greet.dll'), 'lib/greet.lib': join(work, 'greet.lib') }, [
      { name: 'greet', kind: 'shared', file: 'lib/greet.lib' },
    ]);
    expect(readLinkDescription(dir)!.libraries).toEqual([{ name: 'greet', kind: 'shared', file: 'root/lib/greet.lib', runtime: 'root/bin/greet.dll', importLibrary: 'root/lib/greet.lib' }]);
    const flags = computeLinkFlags([{ dir, description: readLinkDescription(dir)! }], { target: 'x86_64-pc-windows-msvc' });
    expect(flags.libs).toEqual([`${dir}/root/lib/greet.lib`]);
    expect(flags.runtimeFiles).toEqual([`${dir}/root/bin/greet.dll`]);
  });
});

describe('MinGW packages', () => {
  it('libgreet.dll.a is understood as the import library of bin/libgreet.dll, and the triple is x86_64-pc-windows-gnu', async () => {
    sh('x86_64-w64-mingw32-gcc', ['-shared', 'greet.c', '-o', 'libgreet.dll', '-Wl,--out-implib,libgreet.dll.a']);
    sh('x86_64-w64-mingw32-gcc', ['-c', 'greet.c', '-o', 'greet-mingw.o']);
    sh('x86_64-w64-mingw32-ar', ['rc', 'libgreet.a', 'greet-mingw.o']);
    const prefix = await files(join(work, 'mingw'), {
      'include/greet.h': GREET_H, 'bin/libgreet.dll': join(work, 'libgreet.dll'), 'lib/libgreet.dll.a': join(work, 'libgreet.dll.a'), 'lib/libgreet.a': join(work, 'libgreet.a'),
    });
    const image = `${registry.host}/acme/greet-mingw:1`;
    const { meta } = await publish(prefix, image);
    expect(meta.target).toBe('x86_64-pc-windows-gnu');
    expect(meta.libraries).toEqual([
      { name: 'greet', kind: 'static', file: 'lib/libgreet.a' },
      { name: 'greet', kind: 'shared', file: 'lib/libgreet.dll.a', runtime: 'bin/libgreet.dll' },
    ]);
    // Selection is exact: the MinGW build is not the MSVC one Node's own Windows builds need.
    const msvc = await ocipkgLink(['--target', 'x86_64-pc-windows-msvc', '--libs', image], { OCIPKG_DATA_DIR: store });
    expect(msvc.code).toBe(1);
    expect(msvc.stderr).toContain('has no build for x86_64-pc-windows-msvc (available: x86_64-pc-windows-gnu)');

    const target = ['--target', 'x86_64-pc-windows-gnu'];
    const libs = await link([...target, '--libs', '--shared', image]);
    expect(libs.map((f) => basename(f))).toEqual(['libgreet.dll.a']);
    const runtime = await link([...target, '--runtime-files', '--shared', image]);
    expect(runtime.map((f) => basename(f))).toEqual(['libgreet.dll']);
    const addon = join(work, 'addon-mingw.node');
    sh('x86_64-w64-mingw32-gcc', ['-shared', 'addon.c', `-I${NODE_INCLUDE}`, ...(await link([...target, '--cflags', image])), join(work, 'node.lib'), ...libs, '-o', addon]);
    expect(coffImports(addon)['libgreet.dll']).toEqual(['greet']);
    const staticAddon = join(work, 'addon-mingw-static.node');
    sh('x86_64-w64-mingw32-gcc', ['-shared', 'addon.c', `-I${NODE_INCLUDE}`, ...(await link([...target, '--cflags', image])), join(work, 'node.lib'), ...(await link([...target, '--libs', image])), '-o', staticAddon]);
    expect(Object.keys(coffImports(staticAddon))).not.toContain('libgreet.dll');
  });

  it('a GNU-ABI C++ library is refused for an MSVC triple in one line, and packs as x86_64-pc-windows-gnu', async () => {
    await writeFile(join(work, 'greetpp.cc'), '#include <string>\n__declspec(dllexport) std::string greet_cpp() { return "hi"; }\n');
    sh('x86_64-w64-mingw32-g++', ['-shared', 'greetpp.cc', '-o', 'libgreetpp.dll', '-Wl,--out-implib,libgreetpp.dll.a']);
    const prefix = await files(join(work, 'mingw-cxx'), { 'bin/libgreetpp.dll': join(work, 'libgreetpp.dll'), 'lib/libgreetpp.dll.a': join(work, 'libgreetpp.dll.a') });
    const archive = join(work, 'cxx.tar');
    const refused = await ocipkg(['pack', prefix, archive, '-t', `${registry.host}/acme/greetpp:1`, '--target', 'x86_64-pc-windows-msvc']);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/libgreetpp\.dll\.a\(.*\) is GNU-ABI C\+\+ \(_Z9greet_cpp\S* is Itanium-mangled\), which an MSVC build \(x86_64-pc-windows-msvc\) cannot link/);
    expect(existsSync(archive)).toBe(false);
    const { meta } = await publish(prefix, `${registry.host}/acme/greetpp:1`);
    expect(meta.target).toBe('x86_64-pc-windows-gnu');
    // A package that claims MSVC anyway (another tool made it, or an older ocipkg) is refused at install.
    const claimed = installed(join(work, 'mingw-cxx-installed'), 'x86_64-pc-windows-msvc', { 'bin/libgreetpp.dll': join(work, 'libgreetpp.dll'), 'lib/libgreetpp.dll.a': join(work, 'libgreetpp.dll.a') }, [
      { name: 'greetpp', kind: 'shared', file: 'lib/libgreetpp.dll.a', runtime: 'bin/libgreetpp.dll' },
    ]);
    await expect(claimed).rejects.toMatchObject({ code: 'EMANIFEST', message: expect.stringMatching(/^test package: lib\/libgreetpp\.dll\.a\(.*\) is GNU-ABI C\+\+/) });
  });
});

describe('load of an archive built for another target', () => {
  it('installs it for the triple it records, without --target', async () => {
    msvcDll('greet', 'greet.lib');
    const prefix = await files(join(work, 'load'), { 'include/greet.h': GREET_H, 'bin/greet.dll': join(work, 'greet.dll'), 'lib/greet.lib': join(work, 'greet.lib') });
    const archive = join(work, 'load.tar');
    const image = `${registry.host}/acme/greet-load:1`;
    expect((await ocipkg(['pack', prefix, archive, '-t', image])).code).toBe(0);
    const fresh = await tempDir('pe-macho-load');
    const loaded = await ocipkg(['load', archive], { OCIPKG_DATA_DIR: fresh });
    expect(loaded.code, loaded.stderr).toBe(0);
    const listed = await ocipkgLink(['--target', 'x86_64-pc-windows-msvc', '--offline', '--runtime-files', image], { OCIPKG_DATA_DIR: fresh });
    expect(listed.code, listed.stderr).toBe(0);
    expect(basename(listed.stdout.trim())).toBe('greet.dll');
    // An explicit --target that the archive does not have is still refused.
    const other = await ocipkg(['load', '-f', archive, '--target', 'x86_64-unknown-linux-gnu'], { OCIPKG_DATA_DIR: fresh });
    expect(other.code).toBe(3);
    expect(other.stderr).toContain('has no build for x86_64-unknown-linux-gnu');
  });
});

describe('the CMake module and generated configs, with a MinGW toolchain', () => {
  const TOOLCHAIN = 'set(CMAKE_SYSTEM_NAME Windows)\nset(CMAKE_SYSTEM_PROCESSOR x86_64)\nset(CMAKE_C_COMPILER x86_64-w64-mingw32-gcc)\n';
  const project = (body: string) => `cmake_minimum_required(VERSION 3.19)
project(addon C)
find_package(ocipkg CONFIG REQUIRED)
${body}
add_library(addon SHARED addon.c)
set_target_properties(addon PROPERTIES PREFIX "" SUFFIX ".node")
target_include_directories(addon PRIVATE "\${NODE_INCLUDE}")
target_link_libraries(addon PRIVATE \${PACKAGE} "\${NODE_LIB}")
ocipkg_bundle_runtime(addon)
`;

  async function build(name: string, body: string, defines: string[]): Promise<string> {
    const src = await files(join(work, name), { 'CMakeLists.txt': project(body), 'addon.c': ADDON, 'mingw.cmake': TOOLCHAIN });
    const env = { ...process.env, OCIPKG_DATA_DIR: store };
    const configure = [
      '-S', src, '-B', join(src, 'build'), `-DCMAKE_TOOLCHAIN_FILE=${join(src, 'mingw.cmake')}`, `-Docipkg_DIR=${join(REPO, 'cmake')}`,
      `-DNODE_INCLUDE=${NODE_INCLUDE}`, `-DNODE_LIB=${join(work, 'node.lib')}`, ...defines,
    ];
    execFileSync('cmake', configure, { env, stdio: 'pipe' });
    execFileSync('cmake', ['--build', join(src, 'build')], { env, stdio: 'pipe' });
    return join(src, 'build');
  }

  it('ocipkg_add_package SHARED links greet.lib through IMPORTED_IMPLIB and ocipkg_bundle_runtime copies greet.dll beside the addon', async () => {
    const image = `${registry.host}/acme/greet-msvc:1`;
    const out = await build('cmake-module', 'ocipkg_add_package(greet IMAGE "${IMAGE}" TARGET x86_64-pc-windows-msvc SHARED)', [`-DIMAGE=${image}`, '-DPACKAGE=ocipkg::greet']);
    expect(coffImports(join(out, 'addon.node'))['greet.dll']).toEqual(['greet']);
    expect(existsSync(join(out, 'greet.dll'))).toBe(true);
  });

  it('find_package of the generated config, shared: the addon imports libgreet.dll and ocipkg_bundle_runtime copies it', async () => {
    const image = `${registry.host}/acme/greet-mingw:1`;
    const prefixPath = (await link(['--target', 'x86_64-pc-windows-gnu', '--cmake-prefix-path', image])).join('');
    const out = await build('cmake-config', 'find_package(greet-mingw CONFIG REQUIRED)', [`-DCMAKE_PREFIX_PATH=${prefixPath}`, '-Dgreet-mingw_USE_SHARED=ON', '-DPACKAGE=greet-mingw::greet-mingw']);
    expect(coffImports(join(out, 'addon.node'))['libgreet.dll']).toEqual(['greet']);
    expect(existsSync(join(out, 'libgreet.dll'))).toBe(true);
  });
});

/** A Mach-O object for arm64 macOS 11 from C source. */
function machoObject(source: string, out: string, cflags: string[] = []): void {
  sh('clang', ['-target', 'arm64-apple-macos11', '-ffreestanding', ...cflags, '-c', source, '-o', out]);
}

/** What a clang driver does with ocipkg-link's flags for a macOS addon: a bundle, linked by ld64.lld. */
function machoBundle(out: string, objects: string[], libs: string[]): string {
  sh('clang', ['-target', 'arm64-apple-macos11', `--ld-path=${execFileSync('sh', ['-c', `command -v ${LD64}`], { encoding: 'utf8' }).trim()}`, '-mlinker-version=609', '-nostdlib', '-bundle', '-undefined', 'dynamic_lookup', ...objects, ...libs, '-o', out]);
  return join(work, out);
}

function dylib(object: string, installName: string, out: string): void {
  sh(LD64, ['-arch', 'arm64', '-platform_version', 'macos', '11.0', '11.0', '-dylib', '-install_name', installName, '-o', out, object]);
}

describe('macOS packages', () => {
  const target = ['--target', 'aarch64-apple-darwin'];

  it('a dylib with an @rpath/ install name: --libs --shared links it, the bundle loads it by @rpath/ through @loader_path, and the runtime file has that name', async () => {
    machoObject('greet.c', 'greet-macho.o', ['-D__declspec(x)=']);
    dylib('greet-macho.o', '@rpath/libgreet.1.dylib', 'libgreet.1.dylib');
    const prefix = await files(join(work, 'mac'), { 'include/greet.h': GREET_H, 'lib/libgreet.1.dylib': join(work, 'libgreet.1.dylib'), 'lib/libgreet.dylib': '->libgreet.1.dylib' });
    const image = `${registry.host}/acme/greet-mac:1`;
    const { meta, stderr } = await publish(prefix, image);
    expect(stderr).not.toContain('warning');
    expect(meta.target).toBe('aarch64-apple-darwin');
    expect(meta.libraries).toEqual([{ name: 'greet', kind: 'shared', file: 'lib/libgreet.1.dylib', soname: '@rpath/libgreet.1.dylib' }]);

    const libs = await link([...target, '--libs', '--shared', image]);
    expect(libs.at(-1)).toBe('-Wl,-rpath,@loader_path');
    const runtime = await link([...target, '--runtime-files', '--shared', image]);
    expect(runtime.map((f) => basename(f))).toEqual(['libgreet.1.dylib']);
    machoObject('addon.c', 'addon-macho.o', [`-I${NODE_INCLUDE}`, ...(await link([...target, '--cflags', image]))]);
    const bundle = machoBundle('addon-mac.node', ['addon-macho.o'], libs);
    // The loader resolves @rpath/libgreet.1.dylib through @loader_path: the runtime file beside the bundle.
    expect(machoLoads(bundle)).toEqual({ dylibs: [`@rpath/${basename(runtime[0]!)}`], rpaths: ['@loader_path'] });
  });

  it('an install name that is a path of the build machine is warned about at pack time, naming the @rpath/ form', async () => {
    machoObject('greet.c', 'greet-macho.o', ['-D__declspec(x)=']);
    dylib('greet-macho.o', '/Users/me/build/lib/libabs.1.dylib', 'libabs.1.dylib');
    const prefix = await files(join(work, 'mac-abs'), { 'lib/libabs.1.dylib': join(work, 'libabs.1.dylib') });
    const { stderr } = await publish(prefix, `${registry.host}/acme/abs:1`);
    expect(stderr).toContain('warning: lib/libabs.1.dylib: install name /Users/me/build/lib/libabs.1.dylib is a path on this machine');
    expect(stderr).toContain('@rpath/libabs.1.dylib');
  });

  it('a .tbd stub of a system library links by its install name and ships nothing', async () => {
    const tbd = ['--- !tapi-tbd', 'tbd-version:     4', 'targets:         [ arm64-macos, x86_64-macos ]', "install-name:    '/usr/lib/libgreetsys.dylib'",
      'exports:', '  - targets:         [ arm64-macos, x86_64-macos ]', '    symbols:         [ _greet ]', '...', ''].join('\n');
    const prefix = await files(join(work, 'mac-tbd'), { 'include/greet.h': GREET_H, 'lib/libgreetsys.tbd': tbd });
    const image = `${registry.host}/acme/greetsys:1`;
    const { meta } = await publish(prefix, image, ['--target', 'aarch64-apple-darwin']);
    expect(meta.libraries).toEqual([{ name: 'greetsys', kind: 'shared', file: 'lib/libgreetsys.tbd', soname: '/usr/lib/libgreetsys.dylib' }]);
    const libs = await link([...target, '--libs', image]);
    expect(libs).toContain('-lgreetsys');
    expect(await link([...target, '--runtime-files', image])).toEqual([]);
    machoObject('addon.c', 'addon-tbd.o', [`-I${NODE_INCLUDE}`, ...(await link([...target, '--cflags', image]))]);
    expect(machoLoads(machoBundle('addon-tbd.node', ['addon-tbd.o'], libs)).dylibs).toEqual(['/usr/lib/libgreetsys.dylib']);
  });

  it('a framework: -F and -framework link it by its @rpath/ install name, and the runtime file is the whole .framework', async () => {
    machoObject('greet.c', 'greet-fw.o', ['-D__declspec(x)=']);
    const fw = join(work, 'mac-fw', 'lib', 'Greet.framework');
    await mkdir(join(fw, 'Versions', 'A', 'Headers'), { recursive: true });
    dylib('greet-fw.o', '@rpath/Greet.framework/Versions/A/Greet', join(fw, 'Versions', 'A', 'Greet'));
    await files(fw, { 'Versions/A/Headers/greet.h': GREET_H, 'Versions/Current': '->A', Greet: '->Versions/Current/Greet', Headers: '->Versions/Current/Headers' });
    const image = `${registry.host}/acme/greet-fw:1`;
    const { meta } = await publish(join(work, 'mac-fw'), image);
    expect(meta.target).toBe('aarch64-apple-darwin');
    expect(meta.libraries).toEqual([{ name: 'Greet', kind: 'shared', file: 'lib/Greet.framework/Greet', soname: '@rpath/Greet.framework/Versions/A/Greet' }]);

    const cflags = await link([...target, '--cflags', image]);
    const libs = await link([...target, '--libs', image]);
    const frameworks = cflags.find((flag) => flag.startsWith('-F'))!;
    expect(libs).toEqual([frameworks, '-framework', 'Greet', '-Wl,-rpath,@loader_path']);
    const runtime = await link([...target, '--runtime-files', image]);
    expect(runtime).toEqual([`${frameworks.slice(2)}/Greet.framework`]);
    await writeFile(join(work, 'addon-fw.c'), versionAddon('Greet/greet.h', 'greet()'));
    machoObject('addon-fw.c', 'addon-fw.o', [`-I${NODE_INCLUDE}`, ...cflags]);
    const loads = machoLoads(machoBundle('addon-fw.node', ['addon-fw.o'], libs));
    expect(loads).toEqual({ dylibs: ['@rpath/Greet.framework/Versions/A/Greet'], rpaths: ['@loader_path'] });
    // Copied beside the addon, the framework holds the file that install name names under @loader_path.
    expect(existsSync(join(runtime[0]!, 'Versions', 'A', 'Greet'))).toBe(true);
  });

  it('a universal static archive is packed for the architecture asked for, and refused without one', async () => {
    machoObject('greet.c', 'greet-arm64.o', ['-D__declspec(x)=']);
    sh('clang', ['-target', 'x86_64-apple-macos11', '-D__declspec(x)=', '-c', 'greet.c', '-o', 'greet-x86_64.o']);
    sh('llvm-ar', ['rc', 'libgreet-arm64.a', 'greet-arm64.o']);
    sh('llvm-ar', ['rc', 'libgreet-x86_64.a', 'greet-x86_64.o']);
    sh(LIPO, ['-create', 'libgreet-arm64.a', 'libgreet-x86_64.a', '-output', 'libgreet-universal.a']);
    const prefix = await files(join(work, 'mac-fat'), { 'include/greet.h': GREET_H, 'lib/libgreet.a': join(work, 'libgreet-universal.a') });
    const refused = await ocipkg(['pack', prefix, join(work, 'fat.tar'), '-t', `${registry.host}/acme/greet-fat:1`]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/darwin\/(amd64|arm64), darwin\/(amd64|arm64)\) \(a universal binary: pass --target/);
    // publish checks TRIPLE=PATH against the slice for that triple, as the linker picks it.
    const image = `${registry.host}/acme/greet-fat:1`;
    const published = await ocipkg(['publish', image, '--target', `aarch64-apple-darwin=${prefix}`, '--target', `x86_64-apple-darwin=${prefix}`]);
    expect(published.code, published.stderr).toBe(0);
    const libs = await link([...target, '--libs', image]);
    expect(libs.map((f) => basename(f))).toEqual(['libgreet.a']);
    machoObject('addon.c', 'addon-fat.o', [`-I${NODE_INCLUDE}`, ...(await link([...target, '--cflags', image]))]);
    const bundle = machoBundle('addon-fat.node', ['addon-fat.o'], libs);
    expect(machoLoads(bundle).dylibs).toEqual([]);
    expect(sh('llvm-nm', ['--defined-only', bundle])).toMatch(/ T _greet$/m);
  });
});

describe('ocipkg_bundle_runtime with a framework among the runtime files', () => {
  it('copies the .framework directory whole and the other runtime files as files', async () => {
    // A stand-in for ocipkg-link (the module's whole interface is its --json output), so that this
    // runs with the host's compiler: what is under test is the copying CMake sets up.
    const pkg = await files(join(work, 'bundle-runtime'), {
      'Greet.framework/Versions/A/Greet': 'framework binary\n', 'Greet.framework/Greet': '->Versions/A/Greet', 'libother.so.1': 'shared object\n',
      'main.c': 'int main(void) { return 0; }\n',
      'stand-in.mjs': `console.log(JSON.stringify({ packages: [{ target: 'aarch64-apple-darwin', manifestDigest: 'sha256:${'0'.repeat(64)}', version: '1', root: '/' }],
        libraries: [], includeDirs: [], defines: [], cflags: [], libs: [], prefix: [], runtimeFiles: process.argv.slice(2, 4) }));`,
      'CMakeLists.txt': `cmake_minimum_required(VERSION 3.19)
project(app C)
find_package(ocipkg CONFIG REQUIRED)
ocipkg_add_package(fw IMAGE example.com/acme/fw:1)
add_executable(app main.c)
target_link_libraries(app PRIVATE ocipkg::fw)
ocipkg_bundle_runtime(app)
`,
    });
    const stub = [process.execPath, join(pkg, 'stand-in.mjs'), join(pkg, 'Greet.framework'), join(pkg, 'libother.so.1')].join(';');
    const build = join(pkg, 'build');
    execFileSync('cmake', ['-S', pkg, '-B', build, `-Docipkg_DIR=${join(REPO, 'cmake')}`, `-DOCIPKG_LINK=${stub}`], { stdio: 'pipe' });
    execFileSync('cmake', ['--build', build], { stdio: 'pipe' });
    expect(await readFile(join(build, 'Greet.framework', 'Versions', 'A', 'Greet'), 'utf8')).toBe('framework binary\n');
    expect(await readFile(join(build, 'libother.so.1'), 'utf8')).toBe('shared object\n');
  });
});

import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isOcipkgError } from '../src/errors.js';
import { readLinkDescription } from '../src/link/description.js';
import { computeLinkFlags } from '../src/link/flags.js';
import { parsePcFile, splitFlags } from '../src/pkgconfig.js';
import type { PackageMetadata } from '../src/artifact/config.js';
import { tempDir } from './helpers/cli.js';
import { DEBIAN_LIB, LZ4_PROGRAM } from './helpers/prefix.js';
import { laidOut, TARGET } from './helpers/laid-out.js';


const SQLITE_ZLIB_PROGRAM = `
#include <sqlite3.h>
#include <zlib.h>
#include <stdio.h>
int main(void) {
  sqlite3 *db;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) return 1;
  sqlite3_close(db);
  printf("sqlite %s zlib %s\\n", sqlite3_libversion(), zlibVersion());
  return 0;
}
`;


/** Flags with every path normalised: pkg-config prints `${pcfiledir}/../..` paths unresolved. */
function normalized(flags: string[]): string[] {
  return flags.map((flag) => {
    const m = /^(-[IL])?(\/.*)$/.exec(flag);
    return m ? `${m[1] ?? ''}${normalize(m[2]!)}` : flag;
  });
}

function pkgConfig(dir: string, name: string, ...args: string[]): string[] {
  const out = execFileSync('pkg-config', [...args, name], { env: { ...process.env, PKG_CONFIG_PATH: join(dir, 'lib', 'pkgconfig') }, encoding: 'utf8' });
  return normalized(splitFlags(out));
}

const lz4: { files: Record<string, string>; meta: PackageMetadata } = {
  files: { 'include/lz4.h': '/usr/include/lz4.h', 'lib/liblz4.a': `${DEBIAN_LIB}/liblz4.a` },
  meta: {
    schema: 1,
    name: 'lz4',
    version: '1.9.4',
    libraries: [{ name: 'lz4', kind: 'static', file: 'lib/liblz4.a' }],
    includeDirs: ['include'],
    defines: ['LZ4_STATIC=1'],
    linkFlags: ['-lm'],
    staticLinkFlags: [],
    requires: [],
  },
};

describe('.pc files', () => {
  it('parses variables, continuations, comments and fields, relocating prefix and paths under the old prefix', () => {
    const pc = parsePcFile(
      [
        '# comment',
        'prefix=/usr',
        'exec_prefix=${prefix}',
        'libdir=/usr/lib # literal path under the original prefix',
        'includedir=${pcfiledir}/../../include',
        'other=/opt/x',
        'hash=a\\#b',
        'Name: demo',
        'Version: 2.1',
        'Cflags: -I${includedir} -DDEMO \\',
        '  "-DWITH SPACE"',
        'Libs: -L${libdir} -ldemo -Wl,-rpath,$ORIGIN',
        'Libs.private: -lm',
        'Requires: zlib >= 1.2, libfoo',
      ].join('\n'),
      'demo.pc',
      { pcfiledir: '/pkg/root/lib/pkgconfig', prefix: '/pkg/root' },
    );
    expect(pc.variables).toMatchObject({ prefix: '/pkg/root', exec_prefix: '/pkg/root', libdir: '/pkg/root/lib', other: '/opt/x', hash: 'a#b' });
    expect(pc.cflags).toEqual(['-I/pkg/root/lib/pkgconfig/../../include', '-DDEMO', '-DWITH SPACE']);
    expect(pc.libs).toEqual(['-L/pkg/root/lib', '-ldemo', '-Wl,-rpath,$ORIGIN']);
    expect(pc.libsPrivate).toEqual(['-lm']);
    expect(pc.requires).toEqual([{ name: 'zlib', version: '>= 1.2' }, { name: 'libfoo' }]);
    expect([pc.name, pc.version]).toEqual(['demo', '2.1']);
  });

  it('refuses a reference to an undefined variable with EINPUT', () => {
    let caught: unknown;
    try {
      parsePcFile('Libs: -L${nowhere}', 'bad.pc', { pcfiledir: '/x' });
    } catch (err) {
      caught = err;
    }
    expect(isOcipkgError(caught, 'EINPUT')).toBe(true);
  });

  it('describes a package from the .pc files it ships: relocated, Requires ordered, Libs.private kept for static links', async () => {
    const work = await tempDir('pc-shipped');
    const dir = await laidOut(join(work, 'pkg'), {
      'include/sqlite3.h': '/usr/include/sqlite3.h',
      'include/zlib.h': '/usr/include/zlib.h',
      'include/zconf.h': '/usr/include/zconf.h',
      'lib/libsqlite3.a': `${DEBIAN_LIB}/libsqlite3.a`,
      'lib/libz.a': `${DEBIAN_LIB}/libz.a`,
      // Debian's own files, as a package built on Debian would ship them: prefix=/usr everywhere.
      'lib/pkgconfig/sqlite3.pc':
        'prefix=/usr\nlibdir=${prefix}/lib\nincludedir=${prefix}/include\nName: SQLite\nVersion: 3.40.1\nRequires.private: zlib, libexternal\nLibs: -L${libdir} -lsqlite3\nLibs.private: -lm\nCflags: -I${includedir}\n',
      'lib/pkgconfig/zlib.pc': 'prefix=/usr\nlibdir=/usr/lib\nsharedlibdir=${libdir}\nincludedir=${prefix}/include\nName: zlib\nVersion: 1.2.13\nLibs: -L${libdir} -L${sharedlibdir} -lz\nCflags: -I${includedir}\n',
    });
    const desc = readLinkDescription(dir)!;
    expect(desc).toMatchObject({
      source: 'pkgconfig',
      name: 'sqlite3',
      version: '3.40.1',
      includeDirs: ['root/include'],
      libraries: [
        { name: 'sqlite3', kind: 'static', file: 'root/lib/libsqlite3.a' },
        { name: 'z', kind: 'static', file: 'root/lib/libz.a' },
      ],
      staticLinkFlags: ['-lm'],
      pkgconfigRequires: ['libexternal'],
    });
    const flags = computeLinkFlags([{ dir, description: desc }], { target: TARGET });
    expect(flags.libs).toEqual([`${dir}/root/lib/libsqlite3.a`, `${dir}/root/lib/libz.a`, '-lm', '-Wl,--exclude-libs,libsqlite3.a', '-Wl,--exclude-libs,libz.a']);

    await writeFile(join(work, 'main.c'), SQLITE_ZLIB_PROGRAM);
    execFileSync('cc', [join(work, 'main.c'), '-o', join(work, 'prog'), ...flags.cflags, ...flags.libs]);
    expect(execFileSync(join(work, 'prog'), { encoding: 'utf8' })).toBe('sqlite 3.40.1 zlib 1.2.13\n');
  });

  it('generates a .pc that gives pkg-config the same flags as ocipkg-link (static lz4)', async () => {
    const work = await tempDir('pc-generated');
    const dir = await laidOut(join(work, 'pkg'), lz4.files, lz4.meta);
    const ours = computeLinkFlags([{ dir, description: readLinkDescription(dir)! }], { target: TARGET });
    expect(pkgConfig(dir, 'lz4', '--cflags')).toEqual(ours.cflags);
    expect(pkgConfig(dir, 'lz4', '--libs')).toEqual(ours.libs);
    expect(pkgConfig(dir, 'lz4', '--modversion')).toEqual(['1.9.4']);
    expect(pkgConfig(dir, 'lz4', '--variable=prefix')).toEqual([`${dir}/root`]);
  });

  it('generates a .pc that gives pkg-config the same flags as ocipkg-link (shared zstd, $ORIGIN rpath)', async () => {
    const work = await tempDir('pc-generated-shared');
    const dir = await laidOut(join(work, 'pkg'), {
      'include/zstd.h': '/usr/include/zstd.h',
      'lib/libzstd.so.1.5.4': `${DEBIAN_LIB}/libzstd.so.1.5.4`,
      'lib/libzstd.so.1': '->libzstd.so.1.5.4',
      'lib/libzstd.so': '->libzstd.so.1',
    });
    const ours = computeLinkFlags([{ dir, description: readLinkDescription(dir)! }], { target: TARGET });
    expect(ours.libs.at(-1)).toBe('-Wl,-rpath,$ORIGIN');
    expect(pkgConfig(dir, 'zstd', '--cflags', '--libs')).toEqual([...ours.cflags, ...ours.libs]);
  });
});

/** `<work>/project`: LZ4_PROGRAM and a CMakeLists.txt of `lines` after its project(). */
async function lz4Project(work: string, lines: string[]): Promise<string> {
  const project = join(work, 'project');
  await mkdir(project);
  await writeFile(join(project, 'main.c'), LZ4_PROGRAM);
  await writeFile(join(project, 'CMakeLists.txt'), ['cmake_minimum_required(VERSION 3.16)', 'project(consumer C)', ...lines, ''].join('\n'));
  return project;
}

describe('generated CMake package config', () => {
  it('lets find_package(lz4 CONFIG) build and run a program linking lz4::lz4', async () => {
    const work = await tempDir('cmake-config');
    const dir = await laidOut(join(work, 'pkg'), lz4.files, lz4.meta);
    const project = await lz4Project(work, ['find_package(lz4 1.9 CONFIG REQUIRED)', 'add_executable(prog main.c)', 'target_link_libraries(prog PRIVATE lz4::lz4)']);
    const build = join(work, 'build');
    execFileSync('cmake', ['-S', project, '-B', build, `-DCMAKE_PREFIX_PATH=${dir}`], { stdio: 'pipe' });
    execFileSync('cmake', ['--build', build], { stdio: 'pipe' });
    expect(execFileSync(join(build, 'prog'), { encoding: 'utf8' })).toContain('roundtrip ok');
    expect(execFileSync('readelf', ['-d', join(build, 'prog')], { encoding: 'utf8' })).not.toContain('liblz4');
    // The config is relocatable: nothing in it names the directory it was generated in.
    expect(await readFile(join(dir, 'lib', 'cmake', 'lz4', 'lz4Config.cmake'), 'utf8')).not.toContain(work);

    await writeFile(join(project, 'CMakeLists.txt'), 'cmake_minimum_required(VERSION 3.16)\nproject(consumer C)\nfind_package(lz4 2.0 CONFIG REQUIRED)\n');
    const refused = (() => {
      try {
        execFileSync('cmake', ['-S', project, '-B', join(work, 'build2'), `-DCMAKE_PREFIX_PATH=${dir}`], { stdio: 'pipe' });
        return false;
      } catch {
        return true;
      }
    })();
    expect(refused).toBe(true);
  });

  it('names the targets as ocipkg_add_package does, <name>::<name>::<lib> the build chosen, static unless <name>_USE_SHARED', async () => {
    const work = await tempDir('cmake-config-both');
    const files = {
      ...lz4.files,
      'lib/liblz4.so.1.9.4': `${DEBIAN_LIB}/liblz4.so.1.9.4`,
      'lib/liblz4.so.1': '->liblz4.so.1.9.4',
      'lib/liblz4.so': '->liblz4.so.1',
    };
    const meta: PackageMetadata = {
      ...lz4.meta,
      libraries: [...lz4.meta.libraries, { name: 'lz4', kind: 'shared', file: 'lib/liblz4.so', soname: 'liblz4.so.1' }],
    };
    const dir = await laidOut(join(work, 'pkg'), files, meta);
    const project = await lz4Project(work, [
      'find_package(lz4 CONFIG REQUIRED)',
      'get_target_property(links lz4::lz4 INTERFACE_LINK_LIBRARIES)',
      'foreach(property TYPE IMPORTED_LOCATION IMPORTED_SONAME)',
      '  get_target_property(value lz4::lz4::lz4 ${property})',
      '  list(APPEND links "${value}")',
      'endforeach()',
      'message(STATUS "probe ${links}")',
      'add_executable(prog main.c)',
      'target_link_libraries(prog PRIVATE lz4::lz4)',
    ]);
    const build = async (name: string, ...args: string[]) => {
      const tree = join(work, name);
      const configured = execFileSync('cmake', ['-S', project, '-B', tree, `-DCMAKE_PREFIX_PATH=${dir}`, ...args], { encoding: 'utf8' });
      execFileSync('cmake', ['--build', tree], { stdio: 'pipe' });
      const program = join(tree, 'prog');
      expect(execFileSync(program, { encoding: 'utf8' })).toContain('roundtrip ok');
      return { probe: /^-- probe (.*)$/m.exec(configured)![1]!.split(';'), needed: execFileSync('readelf', ['-d', program], { encoding: 'utf8' }) };
    };
    const root = `${dir}/root`;

    const statically = await build('build-static');
    expect(statically.probe).toEqual(['lz4::lz4::lz4', '-lm', 'STATIC_LIBRARY', `${root}/lib/liblz4.a`, 'value-NOTFOUND']);
    expect(statically.needed).not.toContain('liblz4');

    const shared = await build('build-shared', '-Dlz4_USE_SHARED=ON');
    expect(shared.probe).toEqual(['lz4::lz4::lz4', '-lm', 'SHARED_LIBRARY', `${root}/lib/liblz4.so`, 'liblz4.so.1']);
    expect(shared.needed).toContain('Shared library: [liblz4.so.1]');
  });
});

import { execFileSync, spawnSync } from 'node:child_process';
import { copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLinkDescription } from '../src/link/description.js';
import { computeLinkFlags, formatFlagLine, type LinkOptions } from '../src/link/flags.js';
import { splitFlags } from '../src/pkgconfig.js';
import type { PackageMetadata } from '../src/artifact/config.js';
import { LayoutDirectory } from '../src/layout/directory.js';
import { buildImage, writeImage, type TarEntry } from './helpers/layers.js';
import { OCIPKG_LINK, ocipkgLink, REPO, tempDir } from './helpers/cli.js';
import { DEBIAN_LIB, LZ4_PROGRAM } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { laidOut, TARGET } from './helpers/laid-out.js';


const ZSTD_PROGRAM = `
#include <zstd.h>
#include <stdio.h>
int main(void) { printf("zstd %s\\n", ZSTD_versionString()); return 0; }
`;


function flagsOf(dir: string, options: LinkOptions = {}) {
  return computeLinkFlags([{ dir, description: readLinkDescription(dir)! }], { target: TARGET, ...options });
}

const lz4Meta: PackageMetadata = {
  schema: 1,
  name: 'lz4',
  version: '1.9.4',
  libraries: [
    { name: 'lz4', kind: 'static', file: 'lib/liblz4.a' },
    { name: 'lz4', kind: 'shared', file: 'lib/liblz4.so', soname: 'liblz4.so.1' },
  ],
  includeDirs: ['include'],
  defines: ['USE_LZ4=1'],
  linkFlags: [],
  staticLinkFlags: [],
  requires: [],
};

const lz4Files = {
  'include/lz4.h': '/usr/include/lz4.h',
  'lib/liblz4.a': `${DEBIAN_LIB}/liblz4.a`,
  'lib/liblz4.so.1.9.4': `${DEBIAN_LIB}/liblz4.so.1.9.4`,
  'lib/liblz4.so.1': '->liblz4.so.1.9.4',
  'lib/liblz4.so': '->liblz4.so.1',
};

function compile(work: string, source: string, args: string[]): string {
  const program = join(work, 'prog');
  execFileSync('cc', [join(work, source), '-o', program, ...args], { stdio: 'pipe' });
  return program;
}

const needed = (program: string) => execFileSync('readelf', ['-d', program], { encoding: 'utf8' });

describe('link flags of a laid-out package', () => {
  it('links the static liblz4 by archive path by default, though liblz4.so sits beside it', async () => {
    const work = await tempDir('link-static');
    const dir = await laidOut(join(work, 'pkg'), lz4Files, lz4Meta);
    const flags = flagsOf(dir);
    expect(flags.libFiles).toEqual([`${dir}/root/lib/liblz4.a`]);
    // The archive's symbols stay inside whatever links it (see link/flags.ts).
    expect(flags.libs).toEqual([`${dir}/root/lib/liblz4.a`, '-Wl,--exclude-libs,liblz4.a']);
    expect(flags.cflags).toEqual([`-I${dir}/root/include`, '-DUSE_LZ4=1']);
    expect(flags.runtimeFiles).toEqual([]);

    await writeFile(join(work, 'main.c'), LZ4_PROGRAM);
    const program = compile(work, 'main.c', [...flags.cflags, ...flags.libs]);
    expect(execFileSync(program, { encoding: 'utf8' })).toContain('roundtrip ok');
    expect(needed(program)).not.toContain('liblz4');
  });

  it('links shared builds with -L/-l and an $ORIGIN rpath when asked, and lists the SONAME file to ship', async () => {
    const work = await tempDir('link-shared');
    const dir = await laidOut(join(work, 'pkg'), lz4Files, lz4Meta);
    const flags = flagsOf(dir, { shared: true });
    // DT_RPATH, not DT_RUNPATH: it also serves the libraries the addon loads.
    expect(flags.libs).toEqual([`-L${dir}/root/lib`, '-llz4', '-Wl,--disable-new-dtags', '-Wl,-rpath,$ORIGIN']);
    expect(flags.runtimeFiles).toEqual([`${dir}/root/lib/liblz4.so.1`]);
    expect(flagsOf(dir, { shared: true, forMake: true }).libs.at(-1)).toBe("-Wl,-rpath,'$$ORIGIN'");
  });

  it('discovers the shared libzstd chain of a package without metadata; the addon loads the copy beside it', async () => {
    const work = await tempDir('link-zstd');
    const dir = await laidOut(join(work, 'pkg'), {
      'include/zstd.h': '/usr/include/zstd.h',
      'lib/libzstd.so.1.5.4': `${DEBIAN_LIB}/libzstd.so.1.5.4`,
      'lib/libzstd.so.1': '->libzstd.so.1.5.4',
      'lib/libzstd.so': '->libzstd.so.1',
    });
    const desc = readLinkDescription(dir)!;
    expect(desc.source).toBe('discovery');
    expect(desc.libraries).toEqual([{ name: 'zstd', kind: 'shared', file: 'root/lib/libzstd.so.1.5.4', runtime: 'root/lib/libzstd.so.1' }]);

    const flags = flagsOf(dir);
    expect(flags.libs.at(-1)).toBe('-Wl,-rpath,$ORIGIN');
    expect(flags.runtimeFiles).toEqual([`${dir}/root/lib/libzstd.so.1`]);

    const out = join(work, 'out');
    await mkdir(out);
    await writeFile(join(work, 'main.c'), ZSTD_PROGRAM);
    const program = compile(work, 'main.c', [...flags.cflags, ...flags.libs]);
    const shipped = join(out, 'prog');
    await copyFile(program, shipped);
    for (const file of flags.runtimeFiles) await copyFile(file, join(out, basename(file)));
    expect(needed(shipped)).toMatch(/\(RPATH\).*\[\$ORIGIN\]/);
    // The loader resolves the library next to the program, not the system's copy.
    expect(execFileSync('ldd', [shipped], { encoding: 'utf8' })).toContain(`libzstd.so.1 => ${out}/libzstd.so.1`);
    expect(execFileSync(shipped, { encoding: 'utf8' })).toMatch(/^zstd 1\.5\.4/);
  });

  it('links a shared MSVC .lib as the import library it is, in libraries[] and in the generated CMake config', async () => {
    const work = await tempDir('link-implib');
    const meta: PackageMetadata = { ...lz4Meta, name: 'zstd', libraries: [{ name: 'zstd', kind: 'shared', file: 'lib/zstd.lib' }] };
    const dir = await laidOut(join(work, 'pkg'), { 'include/zstd.h': '/usr/include/zstd.h', 'lib/zstd.lib': 'not read here\n' }, meta);
    const flags = flagsOf(dir, { target: 'x86_64-pc-windows-msvc' });
    const lib = `${dir}/root/lib/zstd.lib`;
    // Not a real import library, so no DLL it names: nothing to ship (never the .lib itself).
    expect(flags.libraries).toEqual([{ package: 'zstd', name: 'zstd', kind: 'shared', file: lib, runtime: null, importLibrary: lib }]);
    expect(flags.libs).toEqual([lib]);
    expect(flags.runtimeFiles).toEqual([]);
    const config = await readFile(join(dir, 'lib', 'cmake', 'zstd', 'zstdConfig.cmake'), 'utf8');
    expect(config).toContain('add_library(zstd::zstd::zstd SHARED IMPORTED)');
    expect(config).toContain('IMPORTED_IMPLIB "${_ocipkg_package_dir}/root/lib/zstd.lib"');
  });

  it('escapes a path with a space the way pkgconf does, and pkgconf-style splitting gets it back', async () => {
    const work = await tempDir('link-space');
    const dir = await laidOut(join(work, 'with space'), lz4Files, lz4Meta);
    const flags = flagsOf(dir);
    const line = formatFlagLine([...flags.cflags, ...flags.libs]);
    expect(line).toContain(`-I${work}/with\\ space/root/include`);
    expect(splitFlags(line)).toEqual([...flags.cflags, ...flags.libs]);
  });
});

describe('ocipkg-link', () => {
  let registry: TestRegistry;
  let work: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    registry = await startRegistry();
    work = await tempDir('link-cli');
    env = { OCIPKG_DATA_DIR: join(work, 'store'), OCIPKG_TARGET: '', npm_config_arch: '' };
  });
  afterAll(async () => {
    await registry?.stop();
  });

  const lz4Entries = async (): Promise<TarEntry[]> => [
    { path: 'include/lz4.h', body: await readFile('/usr/include/lz4.h') },
    { path: 'lib/liblz4.a', body: await readFile(`${DEBIAN_LIB}/liblz4.a`) },
  ];
  /** An OCI layout at `dir` holding one package with `entries` and metadata `meta`, tagged `tag`. */
  const writePackage = async (dir: string, tag: string, entries: TarEntry[], meta: Partial<PackageMetadata>) =>
    writeImage(new LayoutDirectory(dir), buildImage([entries], { metadata: meta }), tag);

  it('refuses an unknown flag, a missing output flag, a missing image and an unreachable registry with exit 1, one line naming the problem and nothing on stdout', async () => {
    const cases: [string[], RegExp][] = [
      [['--frobnicate', 'x/y:1'], /^ocipkg-link: Unknown option '--frobnicate'\n$/],
      [['127.0.0.1:1/acme/lz4:1'], /^ocipkg-link: no output requested: pass --cflags/],
      [['--cflags'], /^ocipkg-link: no image given/],
      // Fails in the cold path, which the bundled CLI loads from dist/: still ocipkg's own error.
      // (A refused connection is retried, as any request is, before it is reported.)
      [['--cflags', '127.0.0.1:1/acme/lz4:1'], /^ocipkg-link: cannot reach registry 127\.0\.0\.1:1: connection refused; gave up after \d+ attempts\n$/],
    ];
    for (const [args, message] of cases) {
      const result = await ocipkgLink(args, env);
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(/^ocipkg-link: .+\n$/);
      expect(result.stderr).toMatch(message);
    }
  });

  it('refuses to print link flags for a package with nothing to link, but gives its cflags', async () => {
    const layout = join(work, 'headers-only');
    await writePackage(layout, '1', [{ path: 'include/only.h', body: '#define ONLY 1\n' }], { name: 'only', includeDirs: ['include'] });
    const libs = await ocipkgLink(['--cflags', '--libs', `oci:${layout}:1`], env);
    expect([libs.code, libs.stdout]).toEqual([1, '']);
    expect(libs.stderr).toMatch(/^ocipkg-link: .*provides no libraries.*\n$/);
    const cflags = await ocipkgLink(['--cflags', `oci:${layout}:1`], env);
    expect(cflags.code).toBe(0);
    expect(cflags.stdout).toMatch(/^-I\S+\/root\/include\n$/);
  });

  it('prints flags for an image pushed to a real registry, then answers offline from the store', async () => {
    const layout = join(work, 'lz4-layout');
    await writePackage(layout, '1.9.4', await lz4Entries(), { name: 'lz4', version: '1.9.4', target: TARGET, includeDirs: ['include'], libraries: [{ name: 'lz4', kind: 'static', file: 'lib/liblz4.a' }] });
    execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:1.9.4`, `docker://${registry.host}/acme/lz4:1.9.4`]);
    const image = `${registry.host}/acme/lz4:1.9.4`;

    const result = await ocipkgLink(['--cflags', '--libs', image], env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const args = splitFlags(result.stdout.trim());
    await writeFile(join(work, 'main.c'), LZ4_PROGRAM);
    expect(execFileSync(compile(work, 'main.c', args), { encoding: 'utf8' })).toContain('roundtrip ok');

    const json = JSON.parse((await ocipkgLink(['--json', '--offline', image], env)).stdout);
    expect(Object.keys(json)).toEqual(['packages', 'includeDirs', 'defines', 'cflags', 'libDirs', 'libFiles', 'libs', 'runtimeFiles', 'prefix', 'pkgConfigPath', 'cmakePrefixPath', 'libraries']);
    expect(json.packages).toEqual([expect.objectContaining({ image, name: 'lz4', version: '1.9.4', target: TARGET })]);
    expect(json.libFiles).toEqual([`${json.packages[0].root}/lib/liblz4.a`]);
    expect((await ocipkgLink(['--modversion', '--offline', image], env)).stdout).toBe('1.9.4\n');
    expect((await ocipkgLink(['--variable=prefix', '--offline', image], env)).stdout).toBe(`${json.packages[0].root}\n`);
    expect((await ocipkgLink(['--exists', '--offline', image], env)).code).toBe(0);
    const missing = await ocipkgLink(['--exists', '--offline', `${registry.host}/acme/nothing:1`], env);
    expect([missing.code, missing.stdout, missing.stderr]).toEqual([1, '', '']);
  });

  it('links the images a package requires after it (sqlite3 needing zlib)', async () => {
    const zlib = join(work, 'zlib-layout');
    await writePackage(
      zlib,
      '1.2.13',
      [
        { path: 'include/zlib.h', body: await readFile('/usr/include/zlib.h') },
        { path: 'include/zconf.h', body: await readFile('/usr/include/zconf.h') },
        { path: 'lib/libz.a', body: await readFile(`${DEBIAN_LIB}/libz.a`) },
      ],
      { name: 'zlib', includeDirs: ['include'], libraries: [{ name: 'z', kind: 'static', file: 'lib/libz.a' }] },
    );
    // Requirements name registries only, never oci: paths.
    execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${zlib}:1.2.13`, `docker://${registry.host}/acme/zlib:1.2.13`]);
    const sqlite = join(work, 'sqlite-layout');
    await writePackage(
      sqlite,
      '3.40.1',
      [
        { path: 'include/sqlite3.h', body: await readFile('/usr/include/sqlite3.h') },
        { path: 'lib/libsqlite3.a', body: await readFile(`${DEBIAN_LIB}/libsqlite3.a`) },
      ],
      { name: 'sqlite3', includeDirs: ['include'], libraries: [{ name: 'sqlite3', kind: 'static', file: 'lib/libsqlite3.a' }], linkFlags: ['-lm'], requires: [`${registry.host}/acme/zlib:1.2.13`] },
    );
    const result = await ocipkgLink(['--json', `oci:${sqlite}:3.40.1`], env);
    expect(result.stderr).toBe('');
    const json = JSON.parse(result.stdout);
    expect(json.packages.map((p: { name: string }) => p.name)).toEqual(['sqlite3', 'zlib']);
    expect(json.libs.map((flag: string) => basename(flag))).toEqual(['libsqlite3.a', '-lm', 'libz.a', '-Wl,--exclude-libs,libsqlite3.a', '-Wl,--exclude-libs,libz.a']);
    const [sqliteRoot, zlibRoot] = json.packages.map((p: { root: string }) => p.root);
    expect(json.libraries).toEqual([
      { package: 'sqlite3', name: 'sqlite3', kind: 'static', file: `${sqliteRoot}/lib/libsqlite3.a`, runtime: null, importLibrary: null },
      { package: 'zlib', name: 'z', kind: 'static', file: `${zlibRoot}/lib/libz.a`, runtime: null, importLibrary: null },
    ]);
  });

  it('lists in --json libraries[] the build --libs links, static or shared, with the runtime file of a shared one', async () => {
    const layout = join(work, 'lz4-both');
    const so = await readFile(`${DEBIAN_LIB}/liblz4.so.1.9.4`);
    await writePackage(
      layout,
      '1',
      [
        ...(await lz4Entries()),
        { path: 'lib/liblz4.so.1.9.4', body: so },
        { path: 'lib/liblz4.so.1', type: 'SymbolicLink', linkpath: 'liblz4.so.1.9.4' },
        { path: 'lib/liblz4.so', type: 'SymbolicLink', linkpath: 'liblz4.so.1' },
      ],
      { name: 'lz4', includeDirs: ['include'], libraries: lz4Meta.libraries },
    );
    const image = `oci:${layout}:1`;
    const linked = async (...args: string[]) => {
      const result = await ocipkgLink(['--json', ...args, image], env);
      expect(result.stderr).toBe('');
      return JSON.parse(result.stdout);
    };

    const statically = await linked();
    const root = statically.packages[0].root;
    expect(statically.libraries).toEqual([{ package: 'lz4', name: 'lz4', kind: 'static', file: `${root}/lib/liblz4.a`, runtime: null, importLibrary: null }]);
    expect(statically.libs).toEqual([`${root}/lib/liblz4.a`, '-Wl,--exclude-libs,liblz4.a']);

    const shared = await linked('--shared');
    expect(shared.libraries).toEqual([
      { package: 'lz4', name: 'lz4', kind: 'shared', file: `${root}/lib/liblz4.so`, runtime: `${root}/lib/liblz4.so.1`, importLibrary: null },
    ]);
    expect(shared.libFiles).toEqual([shared.libraries[0].file]);
    expect(shared.runtimeFiles).toEqual([shared.libraries[0].runtime]);
    expect(shared.libs).toEqual([`-L${root}/lib`, '-llz4', '-Wl,--disable-new-dtags', '-Wl,-rpath,$ORIGIN']);
  });

  it('serves CommonJS callers: require("ocipkg") from a .cjs file, as a binding.gyp `node -p` does', async () => {
    const layout = join(work, 'lz4-layout');
    const consumer = join(work, 'consumer');
    // The package resolved by name through node_modules, as it is once installed.
    await mkdir(join(consumer, 'node_modules'), { recursive: true });
    await symlink(REPO, join(consumer, 'node_modules', 'ocipkg'));
    await writeFile(
      join(consumer, 'gyp.cjs'),
      `const ocipkg = require('ocipkg');
const image = process.argv[2];
console.log(JSON.stringify({ include: ocipkg.includeDirs(image), libs: ocipkg.libraries(image), info: ocipkg.link(image) }));
try { ocipkg.includeDirs('oci:/nonexistent:1', { offline: true }); } catch (err) { console.log(err.message.split('\\n').length); }
`,
    );
    const run = spawnSync(process.execPath, [join(consumer, 'gyp.cjs'), `oci:${layout}:1.9.4`], { env: { ...process.env, ...env }, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    const [first, second] = run.stdout.trim().split('\n');
    const got = JSON.parse(first!);
    expect(got.include).toBe(`${got.info.packages[0].root}/include`);
    expect(got.libs).toBe(`${got.info.packages[0].root}/lib/liblz4.a -Wl,--exclude-libs,liblz4.a`);
    expect(second).toBe('1');
  });

  it('is the bin the package.json names', async () => {
    const manifest = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8'));
    expect(join(REPO, manifest.bin['ocipkg-link'])).toBe(OCIPKG_LINK);
  });
});

import { execFileSync, spawnSync } from 'node:child_process';
import { cp, mkdir, readdir, readFile, realpath, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageIndex, ImageManifest } from '../src/oci/types.js';
import type { PackageConfig } from '../src/artifact/config.js';
import { pack } from '../src/package/pack.js';
import { OCIPKG_LINK, ocipkg, ocipkgLink, tempDir } from './helpers/cli.js';
import { buildLibpng, buildZlib, PNG_PROGRAM } from './helpers/from-source.js';
import { writeProgram } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

/**
 * Packages of libraries built from source with their own CMake (test/helpers/from-source.ts), on a
 * machine that also has Debian's libpng-dev and zlib1g-dev: what the libraries' own build wrote
 * (`Libs.private: -lz -lm`, `Requires.private: zlib`, install prefixes in .pc and *-config files)
 * reaches the consumer as link flags and relocated files, and never as a silent fallback to /usr.
 */

const X64 = 'x86_64-unknown-linux-gnu';
let work: string;
let registry: TestRegistry;
let zlibPrefix: string;
let pngPrefix: string;
let zlibImage: string;
let pngImage: string;
let pngPublish: { stderr: string };

const sh = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });

/** The files of an oci-archive's one layer, extracted with the system tar. */
async function layerFiles(archive: string): Promise<{ dir: string; config: PackageConfig }> {
  const dir = await tempDir('layer');
  sh('tar', ['-xf', archive, '-C', dir]);
  const blob = (digest: string) => join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as ImageIndex;
  const manifest = JSON.parse(await readFile(blob(index.manifests[0]!.digest), 'utf8')) as ImageManifest;
  await mkdir(join(dir, 'root'));
  sh('tar', ['-xzf', blob(manifest.layers[0]!.digest), '-C', join(dir, 'root')]);
  return { dir: join(dir, 'root'), config: JSON.parse(await readFile(blob(manifest.config.digest), 'utf8')) as PackageConfig };
}

/** Package directories of an image and what it requires, from `ocipkg-link --prefix`. */
async function prefixes(image: string): Promise<string[]> {
  const result = await ocipkgLink(['--prefix', image]);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout.trim().split(/(?<!\\) /);
}

beforeAll(async () => {
  work = await tempDir('from-source');
  zlibPrefix = await buildZlib();
  pngPrefix = await buildLibpng(zlibPrefix);
  registry = await startRegistry();
  zlibImage = `${registry.host}/test/zlib:1.2.13`;
  pngImage = `${registry.host}/test/libpng:1.6.39`;
  const zlib = await ocipkg(['publish', zlibImage, '--target', `${X64}=${zlibPrefix}`, '--version', '1.2.13']);
  expect(zlib.code, zlib.stderr).toBe(0);
  const png = await ocipkg(['publish', pngImage, '--target', `${X64}=${pngPrefix}`, '--version', '1.6.39', '--requires', zlibImage]);
  expect(png.code, png.stderr).toBe(0);
  pngPublish = png;
}, 600_000);

afterAll(async () => {
  await registry?.stop();
});

describe('a static C consumer of libpng built from source', () => {
  it('links with `cc prog.c $(ocipkg-link --cflags --static --libs IMG)` against the store archives, not /usr/lib, and writes and reads a PNG', async () => {
    const dir = await tempDir('png-program');
    await writeProgram(dir, PNG_PROGRAM);
    const script = `cc main.c $(node "$OCIPKG_LINK" --cflags --static --libs "$IMG") -o prog -Wl,--trace`;
    const build = spawnSync('bash', ['-c', script], { cwd: dir, encoding: 'utf8', env: { ...process.env, OCIPKG_LINK, IMG: pngImage } });
    expect(build.status, build.stderr).toBe(0);
    const store = await realpath(process.env.OCIPKG_DATA_DIR!);
    const traced = build.stdout.split('\n').filter((line) => /lib(png|z)[^/]*\.(a|so)/.test(line));
    expect(traced.some((line) => line.includes('libpng16.a') && line.startsWith(store))).toBe(true);
    expect(traced.some((line) => line.includes('libz.a') && line.startsWith(store))).toBe(true);
    expect(traced.filter((line) => !line.startsWith(store))).toEqual([]);

    const out = join(dir, 'out.png');
    expect(sh(join(dir, 'prog'), [out])).toMatch(/^libpng 1\.6\.39 zlib 1\.2\.13 roundtrip ok$/m);
    expect((await readFile(out)).subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  });

  it("records libpng's Libs.private as static link flags, leaving -lz to the zlib package its --requires names", async () => {
    const result = await pack(pngPrefix, join(work, 'png.tar'), { image: pngImage, requires: [zlibImage] });
    expect(result.config.package).toMatchObject({ staticLinkFlags: ['-lm'], linkFlags: [], defines: [], requires: [zlibImage] });
    const link = await ocipkgLink(['--libs', '--static', pngImage]);
    expect(link.stdout.trim()).toMatch(/\/libpng16\.a -lm \S+\/libz\.a -Wl,--exclude-libs,libpng16\.a -Wl,--exclude-libs,libz\.a$/);
  });

  it('warns that a required module no --requires covers is not provided, and keeps its -l flag', async () => {
    const warnings: string[] = [];
    const result = await pack(pngPrefix, join(work, 'png-alone.tar'), { image: pngImage, warn: (m) => warnings.push(m) });
    expect(result.config.package?.staticLinkFlags).toEqual(['-lz', '-lm']);
    expect(warnings.filter((w) => w.includes('module zlib'))).toEqual([
      expect.stringMatching(/^lib\/pkgconfig\/libpng16\.pc requires the pkg-config module zlib, which the package does not provide; declare the package that does with --requires IMAGE/),
    ]);
  });
});

describe('--define and --link-flag', () => {
  it('are recorded, next to what the .pc says, and printed by ocipkg-link', async () => {
    const image = `${registry.host}/test/zlib-flags:1`;
    const published = await ocipkg(['publish', image, '--target', `${X64}=${zlibPrefix}`, '--define', 'ZLIB_CONST', '--define', 'OCIPKG_LEVEL=9', '--link-flag=-pthread']);
    expect(published.code, published.stderr).toBe(0);
    expect((await ocipkgLink(['--cflags-only-other', image])).stdout.trim()).toBe('-DZLIB_CONST -DOCIPKG_LEVEL=9');
    expect((await ocipkgLink(['--libs', '--static', image])).stdout.trim()).toMatch(/\/libz\.a -pthread -Wl,--exclude-libs,libz\.a$/);

    const archive = join(work, 'zlib-flags.tar');
    const packed = await ocipkg(['pack', zlibPrefix, archive, '-t', image, '--define', 'ZLIB_CONST', '--link-flag=-lm', '--link-flag=-pthread']);
    expect(packed.code, packed.stderr).toBe(0);
    expect((await layerFiles(archive)).config.package).toMatchObject({ defines: ['ZLIB_CONST'], linkFlags: ['-lm', '-pthread'], staticLinkFlags: [] });
  });

  it('refuse what a package may not carry: pack and publish fail in one line naming the value, and write nothing', async () => {
    const cases: [string[], string][] = [
      [['--define', 'X=$(id)'], 'package.defines "X=$(id)"'],
      [['--define', 'A B'], 'package.defines "A B"'],
      [['--link-flag=-Wl,-rpath,/tmp'], 'package.linkFlags "-Wl,-rpath,/tmp"'],
      [['--link-flag=-fplugin=evil.so'], 'package.linkFlags "-fplugin=evil.so"'],
    ];
    for (const [args, named] of cases) {
      const archive = join(work, 'refused.tar');
      const result = await ocipkg(['pack', zlibPrefix, archive, '-t', `${registry.host}/test/refused:1`, ...args]);
      expect(result.code, result.stderr).toBe(6);
      expect(result.stdout).toBe('');
      expect(result.stderr.trim().split('\n')).toEqual([expect.stringContaining(named)]);
      expect(result.stderr).toContain('nothing is packed');
      expect(existsSync(archive)).toBe(false);
      const publish = await ocipkg(['publish', `${registry.host}/test/refused:1`, '--target', `${X64}=${zlibPrefix}`, ...args]);
      expect(publish.code).toBe(6);
      expect(publish.stderr.trim().split('\n')).toEqual([expect.stringContaining(named)]);
    }
    expect((await ocipkg(['inspect', `${registry.host}/test/refused:1`])).code).toBe(3);
  });
});

describe('relocation at pack', () => {
  it("rewrites a .pc's absolute prefix relative to the file, and pkg-config on the installed package resolves into the store", async () => {
    const { dir } = await layerFiles(join(work, 'png.tar'));
    const shipped = await readFile(join(dir, 'lib', 'pkgconfig', 'libpng16.pc'), 'utf8');
    expect(shipped).toMatch(/^prefix=\$\{pcfiledir\}\/\.\.\/\.\.$/m);
    expect(shipped).not.toContain(pngPrefix);
    const zlibPc = await readFile(join((await layerFiles(join(work, 'zlib-flags.tar'))).dir, 'share', 'pkgconfig', 'zlib.pc'), 'utf8');
    // zlib's CMake writes libdir as a literal path, not through ${prefix}.
    expect(zlibPc).toMatch(/^libdir=\$\{prefix\}\/lib$/m);
    expect(zlibPc).not.toContain(zlibPrefix);

    const [png, zlib] = await prefixes(pngImage);
    const store = await realpath(process.env.OCIPKG_DATA_DIR!);
    const pkgConfig = (args: string[]) =>
      sh('pkg-config', args, { PKG_CONFIG_PATH: `${png}/root/lib/pkgconfig:${zlib}/root/share/pkgconfig`, PKG_CONFIG_LIBDIR: '' }).trim();
    const flags = pkgConfig(['--cflags', '--libs', '--static', 'libpng16']).split(/\s+/);
    const paths = await Promise.all(flags.filter((f) => /^-[IL]/.test(f)).map((f) => realpath(f.slice(2))));
    expect(paths.length).toBeGreaterThanOrEqual(3);
    for (const path of paths) expect(path.startsWith(`${store}/`), path).toBe(true);
    expect([...new Set(flags.filter((f) => f.startsWith('-l')))]).toEqual(['-lpng16', '-lz', '-lm']);
    expect(await realpath(pkgConfig(['--variable=libdir', 'zlib']))).toBe(await realpath(join(zlib!, 'root', 'lib')));

    // The generated .pc files of the package (one per module name it ships) resolve into the store too.
    const generated = (await readdir(join(png!, 'lib', 'pkgconfig'))).filter((f) => f.endsWith('.pc'));
    expect(generated).toEqual(expect.arrayContaining(['libpng.pc', 'libpng16.pc']));
    for (const module of generated) {
      const generatedFlags = sh('pkg-config', ['--cflags', '--libs', module.slice(0, -3)], { PKG_CONFIG_PATH: `${png}/lib/pkgconfig:${zlib}/lib/pkgconfig`, PKG_CONFIG_LIBDIR: '' }).trim().split(/\s+/);
      const libpng = generatedFlags.find((f) => f.endsWith('libpng16.a') && !f.startsWith('-'));
      expect(libpng && (await realpath(libpng)).startsWith(`${store}/`), module).toBe(true);
    }
  });

  it('warns, naming the file and the path, about paths of this machine it cannot relocate, and stays reproducible', async () => {
    // libpng's own build wrote its install prefix into its *-config script.
    expect(pngPublish.stderr).toContain(`ocipkg: warning: bin/libpng16-config holds ${pngPrefix}`);
    expect(pngPublish.stderr).not.toMatch(/warning: lib\/pkgconfig\/libpng16?\.pc holds/);

    const copy = join(work, 'zlib-copy');
    await cp(zlibPrefix, copy, { recursive: true, verbatimSymlinks: true });
    await mkdir(join(copy, 'lib', 'cmake', 'zlib'), { recursive: true });
    await writeFile(join(copy, 'lib', 'cmake', 'zlib', 'zlib-extra.cmake'), `set(ZLIB_EXTRA_LIBRARY "${copy}/lib/libz.a")\n`);
    await writeFile(join(copy, 'lib', 'cmake', 'zlib', 'zlib-targets.cmake'), 'set_target_properties(ZLIB::ZLIB PROPERTIES IMPORTED_LOCATION "${_IMPORT_PREFIX}/lib/libz.a")\n');
    const storePath = `/home/someone/.local/share/ocipkg/packages/sha256/${'ab'.repeat(32)}/root/lib/libz.a`;
    await writeFile(join(copy, 'lib', 'cmake', 'zlib', 'zlib-deps.cmake'), `set(DEP "${storePath}")\n`);

    const first = await ocipkg(['pack', copy, join(work, 'copy-1.tar'), '-t', `${registry.host}/test/zlib-copy:1`]);
    expect(first.code, first.stderr).toBe(0);
    const warnings = first.stderr.trim().split('\n');
    expect(warnings).toContain(`ocipkg: warning: lib/cmake/zlib/zlib-extra.cmake holds ${copy}/lib/libz.a, a path on this machine: consumers of the package do not have it; make the file refer to its own location (CMake: \${_IMPORT_PREFIX}) or leave it out`);
    expect(warnings.filter((w) => w.includes('zlib-deps.cmake'))).toEqual([expect.stringContaining(`holds ${storePath},`)]);
    expect(warnings.filter((w) => w.includes('zlib-targets.cmake') || w.includes('zlib.pc'))).toEqual([]);
    // The .pc was written for the cache's prefix, not this copy: relocated all the same.
    const { dir } = await layerFiles(join(work, 'copy-1.tar'));
    expect(await readFile(join(dir, 'share', 'pkgconfig', 'zlib.pc'), 'utf8')).toMatch(/^prefix=\$\{pcfiledir\}\/\.\.\/\.\.\n(?:.*\n)*libdir=\$\{prefix\}\/lib$/m);

    const second = await ocipkg(['pack', copy, join(work, 'copy-2.tar'), '-t', `${registry.host}/test/zlib-copy:1`]);
    expect(second.stdout).toBe(first.stdout);
    expect((await readFile(join(work, 'copy-2.tar'))).equals(await readFile(join(work, 'copy-1.tar')))).toBe(true);
  });
});

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * zlib and libpng built from Debian's source packages (`apt-get source`, which needs the deb-src
 * entry .ci/run adds) with their own CMake, installed into prefixes and kept between runs under a
 * directory named by a hash of everything that goes into the build: the source package's .dsc,
 * the CMake arguments, the compiler and CMake versions, and the prefix of what it is built against.
 * The distribution's -dev packages of both are installed too, so a consumer that silently falls
 * back to /usr's copies is caught.
 */

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

const CACHE = process.env.OCIPKG_TEST_CACHE ?? (writable('/var/cache/ocipkg-test') ? '/var/cache/ocipkg-test' : join(tmpdir(), 'ocipkg-test-cache'));

function tool(cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options, env: { ...process.env, ...options.env } });
}

/** Renames `from` to `to` unless another process got there first; `from` is gone either way. */
async function publishDir(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    if (!['EEXIST', 'ENOTEMPTY'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
    await rm(from, { recursive: true, force: true });
  }
}

/** The unpacked, patched source tree of a Debian source package and its .dsc text. */
async function debianSource(pkg: string): Promise<{ tree: string; dsc: string }> {
  const dir = join(CACHE, 'sources', pkg);
  if (!existsSync(dir)) {
    await mkdir(join(CACHE, 'sources'), { recursive: true });
    const work = await mkdtemp(join(CACHE, 'sources', `.${pkg}-`));
    tool('apt-get', ['source', '-qq', pkg], { cwd: work });
    await publishDir(work, dir);
  }
  const entries = await readdir(dir, { withFileTypes: true });
  const tree = entries.find((e) => e.isDirectory());
  const dsc = entries.find((e) => e.name.endsWith('.dsc'));
  if (!tree || !dsc) throw new Error(`${dir}: no source tree or .dsc (apt-get source ${pkg})`);
  return { tree: join(dir, tree.name), dsc: await readFile(join(dir, dsc.name), 'utf8') };
}

/**
 * Builds `pkg` with its CMake and installs it into a cached prefix, which is also the
 * CMAKE_INSTALL_PREFIX its files are written for. Built in a scratch directory and installed with
 * DESTDIR, so that the prefix appears complete in one rename (test files run side by side).
 */
async function cmakeBuild(name: string, pkg: string, cmakeArgs: string[], placeholders: string[] = []): Promise<string> {
  const { tree, dsc } = await debianSource(pkg);
  const key = createHash('sha256')
    .update(JSON.stringify([dsc, cmakeArgs, placeholders, tool('cc', ['--version']), tool('cmake', ['--version'])]))
    .digest('hex')
    .slice(0, 16);
  const final = join(CACHE, 'builds', `${name}-${key}`);
  const prefix = join(final, 'prefix');
  if (existsSync(prefix)) return prefix;
  await mkdir(join(CACHE, 'builds'), { recursive: true });
  const work = await mkdtemp(join(CACHE, 'builds', `.${name}-`));
  try {
    // zlib's CMakeLists moves zconf.h aside in its source tree: build from a copy.
    await cp(tree, join(work, 'src'), { recursive: true });
    for (const file of placeholders) {
      await mkdir(dirname(join(work, 'src', file)), { recursive: true });
      await writeFile(join(work, 'src', file), '');
    }
    tool('cmake', ['-S', join(work, 'src'), '-B', join(work, 'build'), `-DCMAKE_INSTALL_PREFIX=${prefix}`, '-DCMAKE_BUILD_TYPE=Release',
      '-DCMAKE_POSITION_INDEPENDENT_CODE=ON', ...cmakeArgs]);
    tool('cmake', ['--build', join(work, 'build'), '-j2']);
    tool('cmake', ['--install', join(work, 'build')], { env: { DESTDIR: join(work, 'stage') } });
    await mkdir(final, { recursive: true });
    await publishDir(join(work, 'stage', prefix), prefix);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return prefix;
}

/** zlib 1.2.13 from Debian's `zlib` source: lib/libz.a, lib/libz.so*, share/pkgconfig/zlib.pc. */
export function buildZlib(): Promise<string> {
  // Debian's DFSG tarball drops win32/, whose resource script zlib's CMakeLists names on every platform.
  return cmakeBuild('zlib', 'zlib', [], ['win32/zlib1.rc']);
}

/**
 * libpng 1.6 from Debian's `libpng1.6` source, static only, against `zlib` (a prefix from
 * buildZlib): lib/libpng16.a, lib/pkgconfig/libpng16.pc (`Requires.private: zlib`,
 * `Libs.private: -lz -lm`), bin/libpng16-config, lib/libpng/libpng16*.cmake.
 */
export function buildLibpng(zlib: string): Promise<string> {
  return cmakeBuild('libpng', 'libpng1.6', [
    '-DPNG_SHARED=OFF', '-DPNG_TESTS=OFF', '-DPNG_EXECUTABLES=OFF',
    `-DZLIB_INCLUDE_DIR=${zlib}/include`, `-DZLIB_LIBRARY=${zlib}/lib/libz.a`,
  ]);
}

/** A C program that writes a 3x2 RGB PNG with libpng, reads it back and compares every pixel. */
export const PNG_PROGRAM = `
#include <png.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>
int main(int argc, char **argv) {
  if (argc != 2) return 2;
  png_byte pixels[2][9] = {{1, 2, 3, 40, 50, 60, 200, 201, 202}, {9, 8, 7, 0, 0, 0, 255, 128, 1}};
  FILE *f = fopen(argv[1], "wb");
  png_structp w = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop wi = png_create_info_struct(w);
  if (!f || !w || !wi || setjmp(png_jmpbuf(w))) return 3;
  png_init_io(w, f);
  png_set_IHDR(w, wi, 3, 2, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(w, wi);
  for (int y = 0; y < 2; y++) png_write_row(w, pixels[y]);
  png_write_end(w, NULL);
  png_destroy_write_struct(&w, &wi);
  fclose(f);

  png_byte back[2][9];
  f = fopen(argv[1], "rb");
  png_structp r = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop ri = png_create_info_struct(r);
  if (!f || !r || !ri || setjmp(png_jmpbuf(r))) return 4;
  png_init_io(r, f);
  png_read_info(r, ri);
  if (png_get_image_width(r, ri) != 3 || png_get_image_height(r, ri) != 2) return 5;
  for (int y = 0; y < 2; y++) png_read_row(r, back[y], NULL);
  png_destroy_read_struct(&r, &ri, NULL);
  fclose(f);
  int same = memcmp(pixels, back, sizeof pixels) == 0;
  printf("libpng %s zlib %s roundtrip %s\\n", png_get_libpng_ver(NULL), zlibVersion(), same ? "ok" : "FAILED");
  return !same;
}
`;

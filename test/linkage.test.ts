import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitFlags } from '../src/pkgconfig.js';
import { ocipkg, ocipkgLink, tempDir } from './helpers/cli.js';
import { buildZlib } from './helpers/from-source.js';
import { DEBIAN_LIB } from './helpers/prefix.js';
import { versionAddon } from './helpers/napi.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

/**
 * A shared library's requirements follow it: Debian's libpng16.so, published shared only, requires
 * a zlib package shipping both builds. A Node addon linked against png gets zlib shared too, ships
 * both beside itself, and once the store is gone loads both from there, never the system's
 * libz.so.1 (which this machine has), with and without `--as-needed`.
 */
let registry: TestRegistry;
let work: string;
let png: string;

const NODE_INCLUDE = resolve(dirname(process.execPath), '..', 'include', 'node');

const ADDON = versionAddon('png.h', 'png_get_libpng_ver(NULL)');

/** A prefix with `files` (name in DEBIAN_LIB or /usr/include -> path in the prefix) and symlinks. */
async function prefix(dir: string, files: Record<string, string>, links: Record<string, string>, extra: Record<string, string> = {}): Promise<string> {
  for (const [from, to] of Object.entries(files)) {
    await mkdir(dirname(join(dir, to)), { recursive: true });
    await copyFile(from, join(dir, to));
  }
  for (const [path, target] of Object.entries(links)) await symlink(target, join(dir, path));
  for (const [path, body] of Object.entries(extra)) await writeFile(join(dir, path), body);
  return dir;
}

async function publish(dir: string, image: string): Promise<void> {
  const archive = join(work, `${basename(dir)}.tar`);
  const packed = await ocipkg(['pack', dir, archive, '-t', image]);
  expect(packed.code, packed.stderr).toBe(0);
  expect((await ocipkg(['push', archive])).code).toBe(0);
}

/** Where the running addon's process mapped each library from (`/proc/self/maps`). */
function loadedFrom(addon: string): Record<string, string> {
  const script = `const a = require(${JSON.stringify(addon)});
const maps = require('fs').readFileSync('/proc/self/maps', 'utf8');
const paths = [...new Set(maps.split('\\n').map((l) => l.split(/\\s+/)[5]).filter((p) => p && /lib(z|png16)\\.so/.test(p)))];
console.log(JSON.stringify({ version: a.version(), paths }));`;
  const result = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', cwd: work })) as { version: string; paths: string[] };
  return { version: result.version, ...Object.fromEntries(result.paths.map((p) => [basename(p).replace(/\.so.*$/, ''), p])) };
}

beforeAll(async () => {
  registry = await startRegistry();
  work = await tempDir('linkage');
  const zlib = `${registry.host}/acme/zlib:1`;
  png = `${registry.host}/acme/png:1`;
  const z = execFileSync('readlink', ['-f', join(DEBIAN_LIB, 'libz.so.1')], { encoding: 'utf8' }).trim();
  await publish(await prefix(join(work, 'zlib'), {
    '/usr/include/zlib.h': 'include/zlib.h', '/usr/include/zconf.h': 'include/zconf.h',
    [join(DEBIAN_LIB, 'libz.a')]: 'lib/libz.a', [z]: `lib/${basename(z)}`,
  }, { 'lib/libz.so.1': basename(z), 'lib/libz.so': 'libz.so.1' }), zlib);
  const p = execFileSync('readlink', ['-f', join(DEBIAN_LIB, 'libpng16.so.16')], { encoding: 'utf8' }).trim();
  await publish(await prefix(join(work, 'png'), {
    '/usr/include/libpng16/png.h': 'include/png.h', '/usr/include/libpng16/pngconf.h': 'include/pngconf.h', '/usr/include/libpng16/pnglibconf.h': 'include/pnglibconf.h',
    [p]: `lib/${basename(p)}`,
  }, { 'lib/libpng16.so.16': basename(p), 'lib/libpng16.so': 'libpng16.so.16' }, { 'ocipkg.json': JSON.stringify({ requires: [zlib] }) }), png);
  await writeFile(join(work, 'addon.c'), ADDON);
});

afterAll(async () => {
  await registry?.stop();
});

describe('linkage that follows requirements', () => {
  it.each([['with --as-needed', ['-Wl,--as-needed']], ['without --as-needed', []]])(
    'a shared package takes its requirement shared, and a moved addon loads both from beside itself (%s)',
    async (_what, linkerMode) => {
      const store = await tempDir('store');
      const env = { OCIPKG_DATA_DIR: store };
      const flags = await ocipkgLink(['--cflags', '--libs', png], env);
      expect(flags.code, flags.stderr).toBe(0);
      const split = splitFlags(flags.stdout);
      // zlib's shared build, not its archive, though static is the default.
      expect(split.some((flag) => flag === '-lz' || basename(flag).startsWith('libz.so'))).toBe(true);
      expect(split.some((flag) => flag.endsWith('libz.a'))).toBe(false);
      const runtime = splitFlags((await ocipkgLink(['--runtime-files', png], env)).stdout);
      expect(runtime.map((file) => basename(file)).sort()).toEqual(['libpng16.so.16', 'libz.so.1']);

      const out = await tempDir('moved-addon');
      const addon = join(out, 'addon.node');
      execFileSync('cc', ['-shared', '-fPIC', join(work, 'addon.c'), `-I${NODE_INCLUDE}`, ...linkerMode, ...split, '-o', addon]);
      // The control: the same addon with a DT_RUNPATH instead, which under --as-needed lets the
      // system's zlib load; the DT_RPATH ocipkg-link asks for is what prevents that.
      const control = join(out, 'control.node');
      execFileSync('cc', ['-shared', '-fPIC', join(work, 'addon.c'), `-I${NODE_INCLUDE}`, ...linkerMode, ...split, '-Wl,--enable-new-dtags', '-o', control]);
      for (const file of runtime) await copyFile(file, join(out, basename(file)));
      await rm(store, { recursive: true, force: true });

      const loaded = loadedFrom(addon);
      expect(loaded.version).toMatch(/^1\.6\./);
      expect(loaded.libpng16).toBe(join(out, 'libpng16.so.16'));
      expect(loaded.libz).toBe(join(out, 'libz.so.1'));
      if (linkerMode.length > 0) expect(loadedFrom(control).libz).not.toBe(join(out, 'libz.so.1'));
    },
  );
});

describe('static code bound inside the addon', () => {
  const ZLIB_ADDON = versionAddon('zlib.h', 'zlibVersion()');

  it('an addon linking a packaged static zlib calls its own zlib, not the one Node exports, and exports none of it', async () => {
    // zlib 1.2.13 built from Debian's source (position-independent); Node carries its own, newer one.
    const image = `${registry.host}/acme/zlib-from-source:1.2.13`;
    const published = await ocipkg(['publish', image, '--target', `x86_64-unknown-linux-gnu=${await buildZlib()}`, '--version', '1.2.13']);
    expect(published.code, published.stderr).toBe(0);
    expect(process.versions.zlib).not.toMatch(/^1\.2\.13/);
    await writeFile(join(work, 'zlib-addon.c'), ZLIB_ADDON);
    const flags = splitFlags((await ocipkgLink(['--cflags', '--libs', image])).stdout);
    expect(flags).toContain('-Wl,--exclude-libs,libz.a');

    const build = (name: string, linkFlags: string[]) => {
      const addon = join(work, name);
      execFileSync('cc', ['-shared', '-fPIC', join(work, 'zlib-addon.c'), `-I${NODE_INCLUDE}`, ...linkFlags, '-o', addon]);
      return addon;
    };
    const version = (addon: string) => execFileSync(process.execPath, ['-p', `require(${JSON.stringify(addon)}).version()`], { encoding: 'utf8' }).trim();

    const addon = build('zlib-addon.node', flags);
    expect(version(addon)).toBe('1.2.13');
    const exported = execFileSync('nm', ['-D', '--defined-only', addon], { encoding: 'utf8' });
    expect(exported).toContain('napi_register_module_v1');
    expect(exported).not.toMatch(/\b(zlibVersion|inflate|deflate|crc32)\b/);

    // The control: without --exclude-libs the addon exports zlib, and its own call is bound to Node's.
    const exporting = build('zlib-addon-exporting.node', flags.filter((flag) => !flag.startsWith('-Wl,--exclude-libs')));
    expect(execFileSync('nm', ['-D', '--defined-only', exporting], { encoding: 'utf8' })).toMatch(/\bzlibVersion\b/);
    expect(version(exporting)).not.toBe('1.2.13');
    expect(process.versions.zlib.startsWith(version(exporting))).toBe(true);
  });
});

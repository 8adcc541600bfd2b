import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildExample,
  buildGreetLibrary,
  callExample,
  installExample,
  nodeHeadersEnv,
  packOcipkg,
  publish,
  run,
} from '../scripts/examples.mjs';
import { copy } from '../src/copy.js';
import { LayoutDirectory } from '../src/layout/directory.js';
import { RegistryRepository } from '../src/registry/client.js';
import { ocipkgLink, tempDir } from './helpers/cli.js';
import { buildZlib } from './helpers/from-source.js';
import { buildImage, writeImage } from './helpers/layers.js';
import { versionAddon } from './helpers/napi.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

/**
 * The example addons as their users build them: ocipkg installed from its npm tarball, libgreet
 * (examples/c-library) pulled from a real registry, a cmake-js and a node-gyp build, each linked
 * statically and shared, then loaded with require() in a fresh Node process. One registry, one
 * tarball and one npm install per example serve every test here: the builds are what takes time.
 */
let registry: TestRegistry;
let work: string;
let image: string;
let greetPrefix: string;
const installed: Record<string, string> = {};

beforeAll(async () => {
  registry = await startRegistry();
  work = await tempDir('examples');
  image = `${registry.host}/examples/greet:1.2.0`;
  const [prefix, tarball] = await Promise.all([buildGreetLibrary(work), packOcipkg(work)]);
  greetPrefix = prefix;
  await publish(prefix, image, join(work, 'greet.tar'));
  for (const name of ['cmake-js-addon', 'node-gyp-addon']) installed[name] = await installExample(name, work, tarball);
}, 240_000);

afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** A fresh directory inside this file's work directory, which afterAll removes. */
function scratch(name: string): Promise<string> {
  return mkdtemp(join(work, `${name}-`));
}

function needed(file: string): string[] {
  const dynamic = execFileSync('readelf', ['-d', file], { encoding: 'utf8' });
  return [...dynamic.matchAll(/\(NEEDED\).*\[(.+)\]/g)].map((m) => m[1]!);
}

describe.each(['cmake-js-addon', 'node-gyp-addon'])('examples/%s', (name) => {
  it('links libgreet statically: nothing to ship beside the addon', async () => {
    const dir = installed[name]!;
    const store = await scratch('store');
    await buildExample(dir, { image, linkage: 'static', env: { OCIPKG_DATA_DIR: store } });
    const addon = join(dir, 'build', 'Release', 'greet_addon.node');
    expect(needed(addon)).not.toContain('libgreet.so.1');
    expect(readdirSync(join(dir, 'build', 'Release')).filter((f) => f.startsWith('libgreet'))).toEqual([]);
    // libgreet's code is bound inside the addon: none of its symbols is exported, so nothing the
    // process already has (Node exports its zlib, OpenSSL, ...) can take their place at load time.
    const exported = execFileSync('nm', ['-D', '--defined-only', addon], { encoding: 'utf8' });
    expect(exported).toContain('napi_register_module_v1');
    expect(exported).not.toMatch(/\bgreet_/);
    expect(await callExample(dir)).toEqual({ sum: 5, version: '1.2.0 (static)' });
  });

  it('links libgreet shared and still loads once the ocipkg store is deleted', async () => {
    const dir = installed[name]!;
    const store = await scratch('store');
    await buildExample(dir, { image, linkage: 'shared', env: { OCIPKG_DATA_DIR: store } });
    const release = join(dir, 'build', 'Release');
    expect(needed(join(release, 'greet_addon.node'))).toContain('libgreet.so.1');
    expect(existsSync(join(release, 'libgreet.so.1'))).toBe(true);

    await rm(store, { recursive: true, force: true });
    expect(await callExample(dir)).toEqual({ sum: 5, version: '1.2.0 (shared)' });
  });
});

describe('a tag that does not exist', () => {
  it('fails the cmake-js configure step with ocipkg-link\'s own message', async () => {
    const missing = `${registry.host}/examples/greet:no-such-tag`;
    const store = await scratch('store');
    const direct = await ocipkgLink(['--json', missing], { OCIPKG_DATA_DIR: store });
    expect(direct.code).toBe(1);

    const failure = await buildExample(installed['cmake-js-addon']!, {
      image: missing,
      linkage: 'static',
      env: { OCIPKG_DATA_DIR: store },
    }).then(
      () => undefined,
      (err: { exitCode: number; stdout: string; stderr: string }) => err,
    );
    expect(failure?.exitCode).not.toBe(0);
    expect(`${failure?.stdout}${failure?.stderr}`).toContain(direct.stderr.trim());
  });
});

describe('hostile packages', () => {
  /**
   * libgreet as published, but with one hostile value in its metadata, each of which once ran a
   * command (or made the linker run a file the package ships) during these very builds.
   */
  const attacks: [string, Record<string, unknown>][] = [
    ['a link flag with $(shell ...)', { linkFlags: ['-lm', '$(shell touch MARKER)'] }],
    ['a link flag with ; and a command', { linkFlags: ['-lm;touch MARKER;true'] }],
    ['a definition with $(shell ...)', { defines: ['GREET=$(shell touch MARKER)'] }],
    ['a version with a newline and execute_process', { version: '1.2.0\nexecute_process(COMMAND touch MARKER)' }],
    ['-B into the package, where a collect2 waits', { linkFlags: ['-B@dir@/root/bin/'] }],
  ];

  async function hostileImage(tag: string, metadata: Record<string, unknown>, marker: string): Promise<string> {
    const file = (path: string) => readFileSync(join(greetPrefix, path));
    const layout = new LayoutDirectory(await scratch(`hostile-${tag}`));
    const script = `#!/bin/sh\ntouch ${marker}\nexit 1\n`;
    const img = buildImage([[
      { path: 'include/greet.h', body: file('include/greet.h') },
      { path: 'lib/libgreet.a', body: file('lib/libgreet.a') },
      { path: 'bin/collect2', body: script, mode: 0o755 },
      { path: 'bin/ld', body: script, mode: 0o755 },
    ]], { metadata: {
      name: 'greet', version: '1.2.0', includeDirs: ['include'], libraries: [{ name: 'greet', kind: 'static', file: 'lib/libgreet.a' }],
      ...JSON.parse(JSON.stringify(metadata).replaceAll('MARKER', marker)),
    } });
    await writeImage(layout, img, tag);
    await copy(layout, tag, new RegistryRepository(registry.host, 'examples/hostile'), tag);
    return `${registry.host}/examples/hostile:${tag}`;
  }

  it.each(['cmake-js-addon', 'node-gyp-addon'])('fail the %s build in ocipkg-link\'s one line, and nothing runs', async (name) => {
    for (const [i, [what, metadata]] of attacks.entries()) {
      const marker = join(work, `ran-${name}-${i}`);
      const hostile = await hostileImage(`${name}-${i}`, metadata, marker);
      const store = await scratch('store');
      const direct = await ocipkgLink(['--libs', hostile], { OCIPKG_DATA_DIR: store });
      expect(direct.code, what).toBe(1);
      expect(direct.stderr.trim().split('\n'), what).toHaveLength(1);
      const failure = await buildExample(installed[name]!, { image: hostile, linkage: 'static', env: { OCIPKG_DATA_DIR: store } }).then(
        () => undefined,
        (err: { exitCode: number; stdout: string; stderr: string }) => err,
      );
      expect(failure?.exitCode, what).not.toBe(0);
      expect(`${failure?.stdout}${failure?.stderr}`, what).toContain(direct.stderr.trim());
      expect(existsSync(marker), what).toBe(false);
    }
  });
});

/**
 * An addon reporting the zlib it calls, or, when the `zlib.h` it was compiled against is not the
 * packaged 1.2.13's (Node's headers ship their own), which header that was.
 */
const ZLIB_ADDON = versionAddon('zlib.h', 'ZLIB_VERNUM == 0x12d0 ? zlibVersion() : "compiled against the zlib.h of " ZLIB_VERSION');

describe('a cmake-js addon linking a packaged static zlib', () => {
  const CMAKE_LISTS = `
cmake_minimum_required(VERSION 3.19)
project(zlib_addon LANGUAGES C)
find_package(ocipkg CONFIG REQUIRED)
ocipkg_add_package(zlib IMAGE "\${IMAGE}")
add_library(zlib_addon SHARED addon.c \${CMAKE_JS_SRC})
set_target_properties(zlib_addon PROPERTIES PREFIX "" SUFFIX ".node" NO_SYSTEM_FROM_IMPORTED ON)
target_include_directories(zlib_addon SYSTEM PRIVATE \${CMAKE_JS_INC})
target_link_libraries(zlib_addon PRIVATE ocipkg::zlib \${CMAKE_JS_LIB})
`;

  it('reports the packaged zlib\'s version, compiled against its header and not Node\'s, and calls it, not the one Node exports', async () => {
    const dir = installed['cmake-js-addon']!;
    const ocipkgBin = join(dir, 'node_modules', 'ocipkg', 'bin', 'ocipkg.cjs');
    const zlibImage = `${registry.host}/examples/zlib:1.2.13`;
    await run(process.execPath, [ocipkgBin, 'publish', zlibImage, '--target', `x86_64-unknown-linux-gnu=${await buildZlib()}`, '--version', '1.2.13']);
    const project = await scratch('zlib-addon');
    await writeFile(join(project, 'CMakeLists.txt'), CMAKE_LISTS);
    await writeFile(join(project, 'addon.c'), ZLIB_ADDON);
    const store = await scratch('store');
    await run(process.execPath, [join(dir, 'node_modules', 'cmake-js', 'bin', 'cmake-js'), 'rebuild', '-d', project,
      `--CDCMAKE_PREFIX_PATH=${join(dir, 'node_modules')}`, `--CDIMAGE=${zlibImage}`], { cwd: project, env: { ...nodeHeadersEnv(), OCIPKG_DATA_DIR: store } });
    const addon = join(project, 'build', 'Release', 'zlib_addon.node');
    const version = execFileSync(process.execPath, ['-p', `require(${JSON.stringify(addon)}).version()`], { encoding: 'utf8' }).trim();
    expect(process.versions.zlib).not.toMatch(/^1\.2\.13/);
    expect(version).toBe('1.2.13');
    expect(execFileSync('nm', ['-D', '--defined-only', addon], { encoding: 'utf8' })).not.toMatch(/\b(zlibVersion|inflate|deflate)\b/);
  });
});

describe('a node-gyp addon linking a packaged static zlib, as the README writes binding.gyp', () => {
  it('is compiled against the package\'s zlib.h, not the one among the Node headers, and calls its zlib', async () => {
    const dir = installed['node-gyp-addon']!;
    const zlibImage = `${registry.host}/examples/zlib-gyp:1.2.13`;
    await run(process.execPath, [join(dir, 'node_modules', 'ocipkg', 'bin', 'ocipkg.cjs'), 'publish', zlibImage, '--target', `x86_64-unknown-linux-gnu=${await buildZlib()}`, '--version', '1.2.13']);
    // Inside the installed example, where require('ocipkg') resolves.
    const project = join(dir, 'zlib-addon');
    await mkdir(project);
    await writeFile(join(project, 'addon.c'), ZLIB_ADDON);
    await writeFile(join(project, 'binding.gyp'), JSON.stringify({ targets: [{
      target_name: 'zlib_addon', sources: ['addon.c'],
      'include_dirs+': [`<!@(node -p "require('ocipkg').includeDirs('${zlibImage}')")`],
      libraries: [`<!@(node -p "require('ocipkg').libraries('${zlibImage}')")`],
    }] }));
    // Built as the example is, by `npm run build` (npm brings node-gyp).
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'zlib-addon', private: true, gypfile: true, scripts: { build: 'node-gyp rebuild' } }));
    const store = await scratch('store');
    await run('npm', ['run', 'build'], { cwd: project, env: { ...nodeHeadersEnv(), OCIPKG_DATA_DIR: store } });
    const addon = join(project, 'build', 'Release', 'zlib_addon.node');
    expect(execFileSync(process.execPath, ['-p', `require(${JSON.stringify(addon)}).version()`], { encoding: 'utf8' }).trim()).toBe('1.2.13');
  });
});

// Last in this file: it stops the registry the tests above share.
describe('a locked, warm project', () => {
  it('builds both examples again with the registry stopped and OCIPKG_OFFLINE=1', async () => {
    const store = await scratch('store');
    const env = { OCIPKG_DATA_DIR: store };
    for (const name of ['cmake-js-addon', 'node-gyp-addon']) {
      const dir = installed[name]!;
      // Declare libgreet as the addon's package and lock it, as an addon author would.
      const manifestPath = join(dir, 'package.json');
      const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as Record<string, unknown>;
      await writeFile(manifestPath, JSON.stringify({ ...manifest, ocipkg: { packages: { greet: image } } }, null, 2));
      await run(process.execPath, [join(dir, 'node_modules', 'ocipkg', 'bin', 'ocipkg.cjs'), 'install'], { cwd: dir, env: { ...env, CI: '' } });
      expect(existsSync(join(dir, 'ocipkg-lock.json'))).toBe(true);
      await buildExample(dir, { image: 'greet', linkage: 'static', env });
    }
    await registry.stop();
    for (const name of ['cmake-js-addon', 'node-gyp-addon']) {
      const dir = installed[name]!;
      await rm(join(dir, 'build'), { recursive: true, force: true });
      await buildExample(dir, { image: 'greet', linkage: 'static', env: { ...env, OCIPKG_OFFLINE: '1' } });
      expect(await callExample(dir)).toEqual({ sum: 5, version: '1.2.0 (static)' });
    }
  });
});

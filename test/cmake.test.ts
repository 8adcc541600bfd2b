import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildGreetLibrary, publish, REPO, run } from '../scripts/examples.mjs';
import { ocipkgLink, tempDir } from './helpers/cli.js';
import { buildImage, writeImage } from './helpers/layers.js';
import { DEBIAN_LIB } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { LayoutDirectory } from '../src/layout/directory.js';

/**
 * cmake/ocipkgConfig.cmake with plain CMake: found on CMAKE_PREFIX_PATH=<project>/node_modules, it
 * fetches libgreet (examples/c-library) from a real registry at configure time and a C program links
 * the IMPORTED target, statically or shared.
 */
let registry: TestRegistry;
let work: string;
let modules: string;
let image: string;

const CONSUMER = `
cmake_minimum_required(VERSION 3.19)
project(consumer C)
find_package(ocipkg CONFIG REQUIRED)
set(LINKAGE "" CACHE STRING "STATIC, SHARED or empty")
set(TRIPLE "" CACHE STRING "TARGET argument, if any")
if(TRIPLE)
  set(target_arg TARGET "\${TRIPLE}")
endif()
ocipkg_add_package(greet IMAGE "\${IMAGE}" \${LINKAGE} \${target_arg})
# The same request again (another subproject, say) reuses the target.
ocipkg_add_package(greet IMAGE "\${IMAGE}" \${LINKAGE} \${target_arg})
foreach(property OCIPKG_TARGET OCIPKG_MANIFEST_DIGEST INTERFACE_INCLUDE_DIRECTORIES INTERFACE_LINK_LIBRARIES)
  get_target_property(value ocipkg::greet \${property})
  message(STATUS "probe \${property}=\${value}")
endforeach()
get_target_property(links ocipkg::greet INTERFACE_LINK_LIBRARIES)
foreach(link IN LISTS links)
  if(TARGET "\${link}")
    set(line "\${link}")
    foreach(property TYPE IMPORTED_LOCATION IMPORTED_SONAME IMPORTED_IMPLIB)
      get_target_property(value "\${link}" \${property})
      string(APPEND line "|\${value}")
    endforeach()
    message(STATUS "imported \${line}")
  endif()
endforeach()
if(NOT CMAKE_CROSSCOMPILING)
  # libgreet reaches app only through a static library (as $<LINK_ONLY:ocipkg::greet>), and the
  # bundling is asked for before the link: both are what real projects do.
  add_executable(app main.c)
  ocipkg_bundle_runtime(app)
  add_library(wrapper STATIC wrapper.c)
  target_link_libraries(wrapper PRIVATE ocipkg::greet)
  target_link_libraries(app PRIVATE wrapper)
endif()
`;

const WRAPPER = `
#include <greet.h>
int wrapped_add(int a, int b) { return greet_add(a, b); }
const char *wrapped_version(void) { return greet_version(); }
`;

const PROGRAM = `
#include <stdio.h>
int wrapped_add(int a, int b);
const char *wrapped_version(void);
int main(void) { printf("%d %s\\n", wrapped_add(2, 3), wrapped_version()); return wrapped_add(2, 3) != 5; }
`;

beforeAll(async () => {
  registry = await startRegistry();
  work = await tempDir('cmake');
  const prefix = await buildGreetLibrary(work);
  image = `${registry.host}/examples/greet:1.2.0`;
  await publish(prefix, image, join(work, 'greet.tar'));
  // The same build labelled for arm64 Linux, to see which target a cross build asks for.
  await publish(prefix, `${registry.host}/examples/greet:arm64`, join(work, 'greet-arm64.tar'), {
    target: 'aarch64-unknown-linux-gnu',
  });
  // What `npm install` of a checkout (file:) gives: node_modules/ocipkg is the package itself.
  modules = join(work, 'node_modules');
  await mkdir(modules);
  await symlink(REPO, join(modules, 'ocipkg'), 'dir');
  await mkdir(join(work, 'consumer'));
  await writeFile(join(work, 'consumer', 'CMakeLists.txt'), CONSUMER);
  await writeFile(join(work, 'consumer', 'main.c'), PROGRAM);
  await writeFile(join(work, 'consumer', 'wrapper.c'), WRAPPER);
});

afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** A fresh directory inside this file's work directory, which afterAll removes. */
function scratch(name: string): Promise<string> {
  return mkdtemp(join(work, `${name}-`));
}

interface Configured {
  build: string;
  store: string;
  probes: Record<string, string>;
  /** The IMPORTED targets ocipkg::greet links, in order: name, TYPE, IMPORTED_LOCATION, IMPORTED_SONAME, IMPORTED_IMPLIB. */
  imported: string[][];
}

/** Configures the consumer project into a fresh build tree with a fresh store. */
async function configure(definitions: Record<string, string>): Promise<Configured> {
  const build = await scratch('build');
  const store = await scratch('store');
  const args = ['-S', join(work, 'consumer'), '-B', build, `-DCMAKE_PREFIX_PATH=${modules}`];
  for (const [name, value] of Object.entries(definitions)) args.push(`-D${name}=${value}`);
  const { stdout } = await run('cmake', args, { env: { OCIPKG_DATA_DIR: store } });
  const probes: Record<string, string> = {};
  for (const match of stdout.matchAll(/^-- probe (\w+)=(.*)$/gm)) probes[match[1]!] = match[2]!;
  const imported = [...stdout.matchAll(/^-- imported (.*)$/gm)].map((match) => match[1]!.split('|'));
  return { build, store, probes, imported };
}

interface LinkedLibrary {
  package: string;
  name: string;
  kind: string;
  file: string;
  runtime: string | null;
  importLibrary: string | null;
}

/** ocipkg-link's own view of an image, to compare the CMake targets with. */
async function linkJson(
  args: string[],
  store: string,
): Promise<{ packages: { manifestDigest: string; root: string }[]; includeDirs: string[]; libraries: LinkedLibrary[] }> {
  const result = await ocipkgLink(['--json', ...args], { OCIPKG_DATA_DIR: store });
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout);
}

function dynamicSection(file: string): string {
  return execFileSync('readelf', ['-d', file], { encoding: 'utf8' });
}

describe('ocipkg_add_package', () => {
  it('is found under <prefix>/ocipkg/cmake and links the static archive by default', async () => {
    const { build, store, probes, imported } = await configure({ IMAGE: image });
    const expected = await linkJson([image], store);
    expect(probes.OCIPKG_MANIFEST_DIGEST).toBe(expected.packages[0]!.manifestDigest);
    expect(probes.OCIPKG_TARGET).toBe('x86_64-unknown-linux-gnu');
    expect(probes.INTERFACE_INCLUDE_DIRECTORIES).toBe(expected.includeDirs.join(';'));
    expect(probes.INTERFACE_LINK_LIBRARIES).toBe('ocipkg::greet::greet');
    const [library] = expected.libraries;
    expect(library).toEqual({ package: 'greet', name: 'greet', kind: 'static', file: `${expected.packages[0]!.root}/lib/libgreet.a`, runtime: null, importLibrary: null });
    expect(imported).toEqual([['ocipkg::greet::greet', 'STATIC_LIBRARY', library!.file, 'value-NOTFOUND', 'value-NOTFOUND']]);

    await run('cmake', ['--build', build]);
    const app = join(build, 'app');
    expect(execFileSync(app, { encoding: 'utf8' })).toBe('5 1.2.0 (static)\n');
    expect(dynamicSection(app)).not.toContain('libgreet');
    expect(existsSync(join(build, 'libgreet.so.1'))).toBe(false);
  });

  it('links SHARED as an IMPORTED shared library that runs from beside the program once the store is gone', async () => {
    const { build, store, imported } = await configure({ IMAGE: image, LINKAGE: 'SHARED' });
    const [library] = (await linkJson(['--shared', image], store)).libraries;
    expect(library).toMatchObject({ name: 'greet', kind: 'shared', importLibrary: null });
    expect(basename(library!.runtime!)).toBe('libgreet.so.1');
    expect(imported).toEqual([['ocipkg::greet::greet', 'SHARED_LIBRARY', library!.file, 'libgreet.so.1', 'value-NOTFOUND']]);
    await run('cmake', ['--build', build]);
    const app = join(build, 'app');
    const dynamic = dynamicSection(app);
    expect(dynamic).toContain('Shared library: [libgreet.so.1]');
    // $ORIGIN alone: not the store's directory CMake adds to a build tree's rpath by itself.
    expect(dynamic).toMatch(/R(UN)?PATH\)\s+Library r(un)?path: \[\$ORIGIN\]\n/);
    expect(existsSync(join(build, 'libgreet.so.1'))).toBe(true);

    await rm(store, { recursive: true, force: true });
    expect(execFileSync(app, { encoding: 'utf8' })).toBe('5 1.2.0 (shared)\n');
  });

  it('imports every library of the closure, in libraries[] order, as ocipkg::<name>::<lib>', async () => {
    // Debian's libz.a requiring libgreet, configured only (the archive is not PIC). Its metadata names
    // the library zlib, which no file name says: the target name can only come from libraries[].
    const layout = await scratch('zapp');
    const entries = [{ path: 'lib/libz.a', body: await readFile(`${DEBIAN_LIB}/libz.a`) }];
    const metadata = { name: 'zapp', libraries: [{ name: 'zlib', kind: 'static' as const, file: 'lib/libz.a' }], requires: [image] };
    await writeImage(new LayoutDirectory(layout), buildImage([entries], { metadata }), '1');
    const zapp = `oci:${layout}:1`;
    const { store, probes, imported } = await configure({ IMAGE: zapp });
    const { libraries } = await linkJson([zapp], store);
    expect(libraries.map((lib) => [lib.package, lib.name, lib.kind])).toEqual([
      ['zapp', 'zlib', 'static'],
      ['greet', 'greet', 'static'],
    ]);
    expect(probes.INTERFACE_LINK_LIBRARIES).toBe('ocipkg::greet::zlib;ocipkg::greet::greet');
    expect(imported.map(([name, type, location]) => [name, type, location])).toEqual([
      ['ocipkg::greet::zlib', 'STATIC_LIBRARY', libraries[0]!.file],
      ['ocipkg::greet::greet', 'STATIC_LIBRARY', libraries[1]!.file],
    ]);
  });

  it('works in a project whose cmake_minimum_required predates the policies it uses, and leaves that project\'s policies alone', async () => {
    // libpng still asks for 3.1: if(IN_LIST) needs CMP0057 (3.3), which such a project has unset.
    const project = await scratch('old-policies');
    await writeFile(join(project, 'main.c'), '#include <greet.h>\nint main(void) { return greet_add(2, 3) != 5; }\n');
    await writeFile(join(project, 'CMakeLists.txt'), [
      'cmake_minimum_required(VERSION 3.1)', 'project(old C)', 'find_package(ocipkg CONFIG REQUIRED)',
      'ocipkg_add_package(greet IMAGE "${IMAGE}")', 'cmake_policy(GET CMP0057 caller)', 'message(STATUS "caller CMP0057=[${caller}]")',
      'add_executable(app main.c)', 'target_link_libraries(app PRIVATE ocipkg::greet)', '',
    ].join('\n'));
    const build = await scratch('build');
    const { stdout } = await run('cmake', ['-S', project, '-B', build, `-DCMAKE_PREFIX_PATH=${modules}`, `-DIMAGE=${image}`], {
      env: { OCIPKG_DATA_DIR: await scratch('store') },
    });
    expect(stdout).toContain('caller CMP0057=[]');
    await run('cmake', ['--build', build]);
    execFileSync(join(build, 'app'));
  });

  it('fails configuration with ocipkg-link\'s own one-line message when the tag does not exist', async () => {
    const missing = `${registry.host}/examples/greet:no-such-tag`;
    const direct = await ocipkgLink(['--json', missing], { OCIPKG_DATA_DIR: await scratch('store') });
    expect(direct.code).toBe(1);
    const line = direct.stderr.trim();
    expect(line.split('\n')).toHaveLength(1);

    const failure = await configure({ IMAGE: missing }).then(
      () => undefined,
      (err: { exitCode: number; stderr: string }) => err,
    );
    expect(failure?.exitCode).not.toBe(0);
    expect(failure?.stderr).toContain(line);
  });

  it('asks for the triple CMake cross-compiles for, and TARGET overrides it', async () => {
    const arm64 = `${registry.host}/examples/greet:arm64`;
    const native = await configure({ IMAGE: arm64 }).then(
      () => 'configured',
      () => 'failed',
    );
    expect(native).toBe('failed');

    const cross = await configure({ IMAGE: arm64, CMAKE_SYSTEM_NAME: 'Linux', CMAKE_SYSTEM_PROCESSOR: 'aarch64' });
    expect(cross.probes.OCIPKG_TARGET).toBe('aarch64-unknown-linux-gnu');

    const explicit = await configure({ IMAGE: arm64, TRIPLE: 'aarch64-unknown-linux-gnu' });
    expect(explicit.probes.OCIPKG_TARGET).toBe('aarch64-unknown-linux-gnu');
  });
});

describe('values ocipkg-link hands the module', () => {
  /**
   * ocipkg-link refuses hostile package data at install; the module still checks every value it
   * reads, should anything slip past. A stand-in ocipkg-link (OCIPKG_LINK) prints the real JSON with
   * one value changed, each a way CMake once ran or split package data.
   */
  const tamper: [string, string][] = [
    ['a definition that splits into options', 'json.defines.push("X;-fplugin=evil.so")'],
    ['a link flag with a newline', 'json.libs.push("-lm\\ntouch MARKER")'],
    ['an include directory with a generator expression', 'json.includeDirs.push("$<1:/etc>")'],
    ['a library file with a quote', 'json.libraries[0].file += "\\"x"'],
    ['a version with a variable reference', 'json.packages[0].version = "${CMAKE_COMMAND}"'],
  ];
  it.each(tamper)('stops configuration on %s', async (_what, change) => {
    const dir = await scratch('tamper');
    const marker = join(dir, 'ran');
    const script = join(dir, 'fake-link.mjs');
    await writeFile(script, `
import { spawnSync } from 'node:child_process';
const real = spawnSync(process.execPath, [${JSON.stringify(join(REPO, 'bin', 'ocipkg-link.cjs'))}, ...process.argv.slice(2)], { encoding: 'utf8' });
process.stderr.write(real.stderr);
if (!process.argv.includes('--json')) { process.stdout.write(real.stdout); process.exit(real.status ?? 1); }
const json = JSON.parse(real.stdout);
${change.replace('MARKER', marker)};
process.stdout.write(JSON.stringify(json));
`);
    const failure = await configure({ IMAGE: image, OCIPKG_LINK: `${process.execPath};${script}` }).then(
      () => undefined,
      (err: { stdout: string; stderr: string }) => err,
    );
    expect(failure, 'configuration succeeded').toBeDefined();
    expect(`${failure!.stdout}${failure!.stderr}`).toMatch(/ocipkg: refusing \S+ from\s+ocipkg-link,\s+which\s+holds\s+characters\s+CMake\s+would\s+interpret/);
    expect(existsSync(marker)).toBe(false);
  });
});

describe('ocipkgConfigVersion.cmake', () => {
  it('accepts the package.json version and rejects another major', async () => {
    const project = await scratch('version');
    const findVersion = async (version: string) => {
      await writeFile(
        join(project, 'CMakeLists.txt'),
        `cmake_minimum_required(VERSION 3.19)\nproject(v NONE)\nfind_package(ocipkg ${version} CONFIG)\nmessage(STATUS "found=\${ocipkg_FOUND} version=\${ocipkg_VERSION}")\n`,
      );
      const { stdout } = await run('cmake', ['-S', project, '-B', join(project, `build-${version}`), `-DCMAKE_PREFIX_PATH=${modules}`]);
      return stdout.match(/found=(\S*) version=(\S*)/)!.slice(1);
    };
    const { version } = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string };
    expect(await findVersion(version)).toEqual(['1', version]);
    expect((await findVersion('99.0'))[0]).toBe('0');
  });
});

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildExample, EXAMPLES, installExample, packOcipkg, REPO as REPO_ROOT, run } from '../scripts/examples.mjs';
import { ocipkg, ocipkgLink, tempDir } from './helpers/cli.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { selectTriple } from '../src/triple.js';

/**
 * The producer side from CMake: examples/c-library (libgreet, static and shared, with its own
 * install(EXPORT) config and libm as a private dependency) built for three targets through CMake
 * toolchain files, packed by its ocipkg-pack target and pushed by ocipkg-push to a real registry,
 * signed; the archives published again under one index with `publish --from`, as a CI job would;
 * then each build linked for its own target and the result's ELF machine and interpreter checked.
 */
let registry: TestRegistry;
let work: string;
let env: NodeJS.ProcessEnv;
let cmakeDir: string;
let image: string;

const TOOLCHAINS = join(EXAMPLES, 'c-library', 'toolchains');

interface Build {
  triple: string;
  /** The Node-style name, which ocipkg-link is asked with. */
  nodeName: string;
  toolchain?: string;
  cc: string;
  machine: string;
  interpreter: string;
  /** How to run a program built for it here. */
  runner: string[];
}

const BUILDS: Build[] = [
  { triple: 'x86_64-unknown-linux-gnu', nodeName: 'linux-x64', cc: 'gcc', machine: 'Advanced Micro Devices X86-64', interpreter: '/lib64/ld-linux-x86-64.so.2', runner: [] },
  {
    triple: 'aarch64-unknown-linux-gnu', nodeName: 'linux-arm64', toolchain: 'aarch64-linux-gnu.cmake', cc: 'aarch64-linux-gnu-gcc',
    machine: 'AArch64', interpreter: '/lib/ld-linux-aarch64.so.1', runner: ['qemu-aarch64', '-L', '/usr/aarch64-linux-gnu'],
  },
  { triple: 'x86_64-unknown-linux-musl', nodeName: 'linux-x64-musl', toolchain: 'x86_64-linux-musl.cmake', cc: 'musl-gcc', machine: 'Advanced Micro Devices X86-64', interpreter: '/lib/ld-musl-x86_64.so.1', runner: [] },
];

const PROGRAM = `
#include <stdio.h>
#include <greet.h>
#ifndef GREET_HAS_CBRT
#error "the package's definitions did not reach the compiler"
#endif
int main(void) {
  printf("%d %.1f %s\\n", greet_add(2, 3), greet_cbrt(27.0), greet_version());
  return greet_add(2, 3) != 5;
}
`;

function cmake(args: string[], extraEnv: NodeJS.ProcessEnv = {}) {
  return run('cmake', args, { env: { ...env, ...extraEnv } });
}

/** Configures examples/c-library in `build` to publish to `target` image. */
async function configure(build: string, options: { toolchain?: string; generator?: string; image?: string } = {}) {
  await cmake([
    '-S', join(EXAMPLES, 'c-library'), '-B', build, '-DCMAKE_BUILD_TYPE=Release',
    ...(options.generator ? ['-G', options.generator] : []),
    ...(options.toolchain ? [`-DCMAKE_TOOLCHAIN_FILE=${join(TOOLCHAINS, options.toolchain)}`] : []),
    `-Docipkg_DIR=${cmakeDir}`, `-DGREET_IMAGE=${options.image ?? `${registry.host}/acme/greet`}`,
  ]);
}

function elfHeader(file: string): { machine: string; interpreter: string | undefined } {
  const header = execFileSync('readelf', ['-h', '-l', '-W', file], { encoding: 'utf8' });
  return {
    machine: /Machine:\s+(.+)/.exec(header)![1]!.trim(),
    interpreter: /Requesting program interpreter: ([^\]]+)\]/.exec(header)?.[1],
  };
}

async function packageOf(archive: string): Promise<{ staticLinkFlags: string[]; linkFlags: string[]; defines: string[]; target: string }> {
  const inspected = await ocipkg(['inspect', archive], env);
  expect(inspected.code, inspected.stderr).toBe(0);
  return JSON.parse(inspected.stdout).config.package;
}

/** The manifest digest `ocipkg pack` prints for an archive, read back from the archive. */
async function manifestDigest(archive: string): Promise<string> {
  const inspected = await ocipkg(['inspect', archive], env);
  expect(inspected.code, inspected.stderr).toBe(0);
  return JSON.parse(inspected.stdout).descriptor.digest;
}

const archiveOf = (build: string, triple: string) => join(build, `greet-1.2.0-${triple}.tar`);

beforeAll(async () => {
  registry = await startRegistry();
  work = await tempDir('producer');
  env = { OCIPKG_DATA_DIR: join(work, 'store'), COSIGN_PASSWORD: 'producer-test' };
  const dir = await ocipkg(['cmake-dir'], env);
  expect(dir.code, dir.stderr).toBe(0);
  cmakeDir = dir.stdout.trim();
  image = `${registry.host}/acme/greet:1.2.0`;
  const keys = await ocipkg(['generate-key-pair', '--output-key-prefix', join(work, 'cosign')], env);
  expect(keys.code, keys.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  await registry?.stop();
});

describe('ocipkg cmake-dir', () => {
  it('prints the directory holding the CMake package', async () => {
    expect(existsSync(join(cmakeDir, 'ocipkgConfig.cmake'))).toBe(true);
    expect(existsSync(join(cmakeDir, 'ocipkgPackage.cmake'))).toBe(true);
  });
});

describe('ocipkg_package: ocipkg-pack and ocipkg-push for three targets', () => {
  beforeAll(async () => {
    for (const build of BUILDS) {
      const dir = join(work, `build-${build.triple}`);
      await configure(dir, { ...(build.toolchain && { toolchain: build.toolchain }) });
      // ocipkg-push packs first; the key signs what it pushes.
      await cmake(['--build', dir, '--target', 'ocipkg-push'], { OCIPKG_SIGN_KEY: join(work, 'cosign.key') });
    }
  }, 600_000);

  it('writes <name>-<version>-<triple>.tar recording the triple the toolchain builds for', async () => {
    for (const build of BUILDS) {
      const meta = await packageOf(archiveOf(join(work, `build-${build.triple}`), build.triple));
      expect(meta.target).toBe(build.triple);
    }
  });

  it('records what the CMake targets say: the interface definition and libm for the static library', async () => {
    const meta = await packageOf(archiveOf(join(work, 'build-x86_64-unknown-linux-gnu'), 'x86_64-unknown-linux-gnu'));
    expect(meta.defines).toContain('GREET_HAS_CBRT=1');
    // greet_static links m privately ($<LINK_ONLY:m>): needed only when the archive is linked.
    expect(meta.staticLinkFlags).toEqual(['-lm']);
    expect(meta.linkFlags).toEqual([]);
  });

  it('appends each target to the tag: one index with the three builds, each signed', async () => {
    const raw = execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${image}`]);
    const index = JSON.parse(raw.toString()) as { manifests: { digest: string; annotations: Record<string, string> }[] };
    const triples = index.manifests.map((m) => m.annotations['io.github.ocipkg.target']);
    expect(triples.sort()).toEqual(BUILDS.map((b) => b.triple).sort());
    for (const build of BUILDS) {
      const entry = index.manifests.find((m) => m.annotations['io.github.ocipkg.target'] === build.triple)!;
      expect(entry.digest).toBe(await manifestDigest(archiveOf(join(work, `build-${build.triple}`), build.triple)));
    }
    const verified = await ocipkg(['verify', '--key', join(work, 'cosign.pub'), image], env);
    expect(verified.code, verified.stderr).toBe(0);
  });

  it('packs reproducibly: another pack, and another build directory, give the same digest', async () => {
    const first = join(work, 'build-x86_64-unknown-linux-gnu');
    const triple = 'x86_64-unknown-linux-gnu';
    const before = await manifestDigest(archiveOf(first, triple));
    await cmake(['--build', first, '--target', 'ocipkg-pack']);
    expect(await manifestDigest(archiveOf(first, triple))).toBe(before);
    const second = join(work, 'build-again');
    await configure(second);
    await cmake(['--build', second, '--target', 'ocipkg-pack']);
    expect(await manifestDigest(archiveOf(second, triple))).toBe(before);
  }, 300_000);

  for (const build of BUILDS) {
    it(`links the ${build.triple} build into a program for that target (asked for as ${build.nodeName})`, async () => {
      const dir = join(work, `consume-${build.triple}`);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'main.c'), PROGRAM);
      const flags = await ocipkgLink(['--target', build.nodeName, '--cflags', '--libs', '--static', image], env);
      expect(flags.code, flags.stderr).toBe(0);
      // -lm comes from the package: without it the program would not link (greet_cbrt calls cbrt).
      expect(flags.stdout).toContain('-lm');
      const program = join(dir, 'app');
      await run(build.cc, [join(dir, 'main.c'), '-o', program, ...flags.stdout.trim().split(/\s+/)]);
      const elf = elfHeader(program);
      expect(elf.machine).toBe(build.machine);
      expect(elf.interpreter).toBe(build.interpreter);
      const [runner, ...runnerArgs] = [...build.runner, program];
      const { stdout } = await run(runner!, runnerArgs);
      expect(stdout.trim()).toBe('5 3.0 1.2.0 (static)');
    }, 120_000);
  }
});

describe('publish --from: the archives of a CI matrix under one index', () => {
  it('publishes every archive under DIR for the target it records and prints the digests as JSON', async () => {
    const from = join(work, 'artifacts');
    for (const build of BUILDS) {
      // As actions/download-artifact lays them out: one directory per job.
      await mkdir(join(from, `greet-${build.nodeName}`), { recursive: true });
      await cp(archiveOf(join(work, `build-${build.triple}`), build.triple), join(from, `greet-${build.nodeName}`, `greet-1.2.0-${build.triple}.tar`));
    }
    const target = `${registry.host}/acme/greet-ci:1.2.0`;
    const published = await ocipkg(['publish', target, '--from', from, '--json', '--sign-key', join(work, 'cosign.key')], env);
    expect(published.code, published.stderr).toBe(0);
    const result = JSON.parse(published.stdout) as { index: string; pinned: string; targets: Record<string, string> };
    const raw = execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${target}`]);
    expect(result.index).toBe(`sha256:${createHash('sha256').update(raw).digest('hex')}`);
    expect(result.pinned).toBe(`${registry.host}/acme/greet-ci@${result.index}`);
    expect(Object.keys(result.targets).sort()).toEqual(BUILDS.map((b) => b.triple).sort());
    for (const build of BUILDS) {
      expect(result.targets[build.triple]).toBe(await manifestDigest(archiveOf(join(work, `build-${build.triple}`), build.triple)));
    }
    expect((await ocipkg(['verify', '--key', join(work, 'cosign.pub'), target], env)).code).toBe(0);
  }, 120_000);

  it('refuses two archives for one target before pushing anything', async () => {
    const from = join(work, 'twice');
    const triple = 'x86_64-unknown-linux-gnu';
    for (const job of ['a', 'b']) {
      await mkdir(join(from, job), { recursive: true });
      await cp(archiveOf(join(work, `build-${triple}`), triple), join(from, job, `greet-1.2.0-${triple}.tar`));
    }
    const target = `${registry.host}/acme/greet-twice:1.2.0`;
    const published = await ocipkg(['publish', target, '--from', from], env);
    expect(published.code).not.toBe(0);
    expect(published.stderr).toMatch(/target x86_64-unknown-linux-gnu is given twice/);
    expect(published.stderr.trim().split('\n')).toHaveLength(1);
    const tags = await fetch(`${registry.url}/v2/acme/greet-twice/tags/list`);
    expect(tags.status).toBe(404);
  });

  it('says so when DIR holds no archives', async () => {
    const empty = join(work, 'empty');
    await mkdir(empty, { recursive: true });
    const published = await ocipkg(['publish', `${registry.host}/acme/none:1`, '--from', empty], env);
    expect(published.code).not.toBe(0);
    expect(published.stderr).toMatch(/no \.tar archives/);
  });
});

describe('ocipkg_package with other generators and toolchains', () => {
  for (const generator of ['Ninja', 'Ninja Multi-Config']) {
    it(`packs with ${generator} to the same digest as with Makefiles`, async () => {
      const dir = join(work, `build-${generator.replace(/ /g, '-')}`);
      await configure(dir, { generator });
      await cmake(['--build', dir, '--target', 'ocipkg-pack', '--config', 'Release']);
      const triple = 'x86_64-unknown-linux-gnu';
      expect(await manifestDigest(archiveOf(dir, triple))).toBe(await manifestDigest(archiveOf(join(work, `build-${triple}`), triple)));
    }, 300_000);
  }

  it('stops configuring when the toolchain names no target ocipkg knows', async () => {
    const toolchain = join(work, 'unknown.cmake');
    await writeFile(toolchain, 'set(CMAKE_SYSTEM_NAME Linux)\nset(CMAKE_SYSTEM_PROCESSOR xtensa)\nset(CMAKE_C_COMPILER gcc)\n');
    const failed = await cmake([
      '-S', join(EXAMPLES, 'c-library'), '-B', join(work, 'build-unknown'), `-DCMAKE_TOOLCHAIN_FILE=${toolchain}`,
      `-Docipkg_DIR=${cmakeDir}`, `-DGREET_IMAGE=${registry.host}/acme/greet`,
    ]).then(() => undefined, (err: Error & { stderr: string }) => err);
    expect(failed).toBeDefined();
    // CMake wraps messages at 80 columns.
    expect(failed!.stderr.replace(/\s+/g, ' ')).toMatch(/ocipkg_package: cannot tell the target triple of this toolchain \(CMAKE_SYSTEM_NAME=Linux, CMAKE_SYSTEM_PROCESSOR=xtensa\); pass TARGET <triple>/);
  }, 120_000);

  it('takes TARGET as a triple or a Node-style name, and names the archive by the triple', async () => {
    const project = join(work, 'named-target');
    await mkdir(project, { recursive: true });
    await writeFile(join(project, 'lib.c'), 'int f(void) { return 1; }\n');
    await writeFile(join(project, 'CMakeLists.txt'), [
      'cmake_minimum_required(VERSION 3.19)', 'project(named VERSION 1.0 LANGUAGES C)',
      'set(CMAKE_POSITION_INDEPENDENT_CODE ON)', 'add_library(named STATIC lib.c)', 'install(TARGETS named)',
      'find_package(ocipkg CONFIG REQUIRED)', `ocipkg_package(IMAGE ${registry.host}/acme/named TARGET \${WANTED})`, '',
    ].join('\n'));
    await cmake(['-S', project, '-B', join(project, 'build'), `-Docipkg_DIR=${cmakeDir}`, '-DWANTED=linux-x64']);
    await cmake(['--build', join(project, 'build'), '--target', 'ocipkg-pack']);
    expect((await packageOf(join(project, 'build', 'named-1.0-x86_64-unknown-linux-gnu.tar'))).target).toBe('x86_64-unknown-linux-gnu');
    const failed = await cmake(['-S', project, '-B', join(project, 'build-bad'), `-Docipkg_DIR=${cmakeDir}`, '-DWANTED=linux-x65'])
      .then(() => undefined, (err: Error & { stderr: string }) => err);
    expect(failed!.stderr.replace(/\s+/g, ' ')).toMatch(/ocipkg_package: TARGET linux-x65: ocipkg: unknown target triple "linux-x65"/);
  }, 180_000);

  it('warns at configure time about a static library that is not position-independent', async () => {
    const project = join(work, 'no-pic');
    await mkdir(project, { recursive: true });
    await writeFile(join(project, 'lib.c'), 'int f(void) { return 1; }\n');
    await writeFile(join(project, 'CMakeLists.txt'), [
      'cmake_minimum_required(VERSION 3.19)', 'project(nopic VERSION 1.0 LANGUAGES C)', 'add_library(nopic STATIC lib.c)',
      'install(TARGETS nopic)', 'find_package(ocipkg CONFIG REQUIRED)', `ocipkg_package(IMAGE ${registry.host}/acme/nopic)`, '',
    ].join('\n'));
    const { stderr } = await cmake(['-S', project, '-B', join(project, 'build'), `-Docipkg_DIR=${cmakeDir}`]);
    expect(stderr.replace(/\s+/g, ' ')).toMatch(/static library nopic is not position-independent: a Node addon/);
  }, 120_000);
});

describe('ocipkg_package describes dependencies from the targets', () => {
  it('follows INTERFACE libraries and imported INTERFACE targets, records -l flags, warns about what the package does not carry', async () => {
    const project = join(work, 'deps');
    await mkdir(project, { recursive: true });
    await writeFile(join(project, 'core.c'), 'int core(void) { return 1; }\n');
    await writeFile(join(project, 'api.c'), 'int core(void);\nint api(void) { return core(); }\n');
    await writeFile(join(project, 'CMakeLists.txt'), [
      'cmake_minimum_required(VERSION 3.19)',
      'project(deps VERSION 2.0 LANGUAGES C)',
      'set(CMAKE_POSITION_INDEPENDENT_CODE ON)',
      'set(THREADS_PREFER_PTHREAD_FLAG ON)',
      'find_package(Threads REQUIRED)',
      'find_package(ZLIB REQUIRED)',
      // Header-only settings every user of the API gets.
      'add_library(settings INTERFACE)',
      'target_compile_definitions(settings INTERFACE DEPS_API=2 $<BUILD_INTERFACE:DEPS_BUILDING>)',
      'target_link_libraries(settings INTERFACE dl)',
      'add_library(core STATIC core.c)',
      'add_library(api STATIC api.c)',
      'target_link_libraries(api PUBLIC settings Threads::Threads PRIVATE core ZLIB::ZLIB)',
      // A helper that is built but never installed.
      'add_library(helper STATIC core.c)',
      'target_link_libraries(api PRIVATE helper)',
      'install(TARGETS api core settings)',
      'find_package(ocipkg CONFIG REQUIRED)',
      `ocipkg_package(IMAGE ${registry.host}/acme/deps)`,
      '',
    ].join('\n'));
    const build = join(project, 'build');
    await cmake(['-S', project, '-B', build, '-DCMAKE_BUILD_TYPE=Release', `-Docipkg_DIR=${cmakeDir}`]);
    const { stderr } = await cmake(['--build', build, '--target', 'ocipkg-pack']);
    const flat = stderr.replace(/\s+/g, ' ');
    expect(flat).toMatch(/api links ZLIB::ZLIB, a target of another project the package does not carry/);
    expect(flat).toMatch(/api links helper, which the install rules do not install/);
    const meta = await packageOf(join(build, `deps-2.0-x86_64-unknown-linux-gnu.tar`));
    expect(meta.defines).toEqual(['DEPS_API=2']);
    // Threads::Threads is an imported INTERFACE target: what it links is recorded (nothing where
    // glibc has pthread built in, as here), and it is not warned about.
    expect(flat).not.toMatch(/Threads::Threads/);
    expect(meta.linkFlags).toEqual(['-ldl']);
    expect(meta.staticLinkFlags).toEqual([]);
  }, 180_000);
});

/**
 * The steps of examples/github-actions/publish-greet.yml that run on Linux, run here as the runner
 * would run them (bash, the matrix values and secrets filled in, `ocipkg` on PATH): each Linux
 * matrix job's configure and pack, then the publish job over the artifacts laid out as
 * actions/download-artifact lays them out. The macOS and Windows jobs are only checked for their
 * target names.
 */
describe('the GitHub Actions recipe', () => {
  const WORKFLOW = join(EXAMPLES, 'github-actions', 'publish-greet.yml');

  /** The `run:` script of the step named `name` (a block scalar or one line). */
  function stepScript(text: string, name: string): string {
    const lines = text.split('\n');
    const start = lines.findIndex((l) => l.trim() === `- name: ${name}`);
    expect(start, `step "${name}"`).toBeGreaterThan(0);
    const indent = lines[start]!.indexOf('-') + 2;
    for (let i = start + 1; i < lines.length && lines[i]!.search(/\S/) >= indent; i++) {
      const line = lines[i]!;
      if (line.slice(indent).startsWith('run: |')) {
        const body: string[] = [];
        for (let j = i + 1; j < lines.length && (lines[j]!.trim() === '' || lines[j]!.search(/\S/) > indent); j++) body.push(lines[j]!.slice(indent + 2));
        return body.join('\n');
      }
      if (line.slice(indent).startsWith('run: ')) return line.slice(indent + 5);
    }
    throw new Error(`step "${name}" has no run`);
  }

  function fill(script: string, values: Record<string, string>): string {
    return script.replace(/\$\{\{\s*([\w.]+)\s*\}\}/g, (_, key: string) => {
      if (!(key in values)) throw new Error(`the test does not know \${{ ${key} }}`);
      return values[key]!;
    });
  }

  it('runs its Linux jobs and its publish job against a real registry', async () => {
    const text = await readFile(WORKFLOW, 'utf8');
    const rows = [...text.matchAll(/- \{ name: ([\w-]+), os: ([\w.-]+)(?:, apt: [\w-]+)?(?:, toolchain: (\S+))? \}/g)].map((m) => ({ name: m[1]!, os: m[2]!, toolchain: m[3] }));
    expect(rows.map((r) => r.name)).toEqual(['linux-x64', 'linux-arm64', 'linux-x64-musl', 'darwin-arm64', 'win32-x64']);
    for (const row of rows) expect(selectTriple(row.name)).toMatch(/-/);

    const root = join(work, 'gha');
    const bin = join(root, 'bin');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'ocipkg'), `#!/bin/sh\nexec "${process.execPath}" "${join(REPO_ROOT, 'bin', 'ocipkg.cjs')}" "$@"\n`, { mode: 0o755 });
    const ghaImage = `${registry.host}/acme/greet-gha`;
    const jobEnv = { ...env, OCIPKG_CONFIG_DIR: join(root, 'config'), PATH: `${bin}:${process.env.PATH}`, GREET_IMAGE: ghaImage, RUNNER_TEMP: root, GITHUB_REF_NAME: 'v1.2.0' };
    for (const row of rows.filter((r) => r.os.startsWith('ubuntu'))) {
      const checkout = join(root, row.name);
      await cp(join(EXAMPLES, 'c-library'), join(checkout, 'examples', 'c-library'), { recursive: true });
      const values = { 'matrix.toolchain': row.toolchain ?? '' };
      for (const step of ['configure']) await run('bash', ['-euo', 'pipefail', '-c', fill(stepScript(text, step), values)], { cwd: checkout, env: jobEnv });
      await run('bash', ['-euo', 'pipefail', '-c', fill(stepScript(text, 'pack (build, install into a staging prefix, ocipkg pack)'), values)], { cwd: checkout, env: jobEnv });
      // upload-artifact of build/greet-*.tar, then download-artifact into artifacts/<artifact name>/.
      const artifact = join(root, 'publish', 'artifacts', `greet-${row.name}`);
      await mkdir(artifact, { recursive: true });
      for (const file of await readdir(join(checkout, 'build'))) if (/^greet-.*\.tar$/.test(file)) await cp(join(checkout, 'build', file), join(artifact, file));
    }
    const publishDir = join(root, 'publish');
    const output = join(root, 'github-output');
    await writeFile(output, '');
    const secrets = {
      'secrets.GITHUB_TOKEN': 'unused-token', 'github.actor': 'ci', 'secrets.COSIGN_PASSWORD': env.COSIGN_PASSWORD!,
      'secrets.COSIGN_PRIVATE_KEY': await readFile(join(work, 'cosign.key'), 'utf8'),
    };
    const publishEnv = { ...jobEnv, GITHUB_OUTPUT: output, COSIGN_PRIVATE_KEY: secrets['secrets.COSIGN_PRIVATE_KEY'] };
    const script = fill(stepScript(text, 'publish every target under one index, signed'), secrets);
    const login = fill(stepScript(text, 'registry login'), secrets).replace('ghcr.io', registry.host);
    await run('bash', ['-euo', 'pipefail', '-c', login], { cwd: publishDir, env: publishEnv });
    await run('bash', ['-euo', 'pipefail', '-c', script], { cwd: publishDir, env: publishEnv });
    const result = JSON.parse(await readFile(join(publishDir, 'publish.json'), 'utf8')) as { index: string; targets: Record<string, string> };
    expect(Object.keys(result.targets).sort()).toEqual(['aarch64-unknown-linux-gnu', 'x86_64-unknown-linux-gnu', 'x86_64-unknown-linux-musl']);
    expect(await readFile(output, 'utf8')).toBe(`index=${result.index}\n`);
    expect(existsSync(join(root, 'cosign.key'))).toBe(false);
    expect((await ocipkg(['verify', '--key', join(work, 'cosign.pub'), `${ghaImage}:1.2.0`], env)).code).toBe(0);
  }, 600_000);
});

describe('ocipkg_package added from outside the project', () => {
  it('packs a project with two project() calls given CMAKE_PROJECT_<name>_INCLUDE, and says so when given CMAKE_PROJECT_INCLUDE', async () => {
    // zstd's build/cmake: a top-level project(zstd) and a project(libzstd) in lib/, sources untouched.
    const project = join(work, 'unedited');
    await mkdir(join(project, 'lib'), { recursive: true });
    await writeFile(join(project, 'lib', 'u.c'), 'int u(void) { return 1; }\n');
    await writeFile(join(project, 'lib', 'CMakeLists.txt'), ['project(libunedited C)', 'add_library(unedited STATIC u.c)', 'set_target_properties(unedited PROPERTIES POSITION_INDEPENDENT_CODE ON)', 'install(TARGETS unedited)', ''].join('\n'));
    await writeFile(join(project, 'CMakeLists.txt'), ['cmake_minimum_required(VERSION 3.19)', 'project(unedited VERSION 2.0 LANGUAGES C)', 'add_subdirectory(lib)', ''].join('\n'));
    const include = join(work, 'ocipkg-unedited.cmake');
    await writeFile(include, ['find_package(ocipkg CONFIG REQUIRED)', `ocipkg_package(IMAGE ${registry.host}/acme/unedited)`, ''].join('\n'));
    const everyProject = await cmake(['-S', project, '-B', join(project, 'build-every'), `-Docipkg_DIR=${cmakeDir}`, `-DCMAKE_PROJECT_INCLUDE=${include}`]).then(() => undefined, (err: Error) => err);
    expect(everyProject?.message.replace(/\s+/g, ' ')).toContain("CMAKE_PROJECT_INCLUDE runs after every project() call, here libunedited's too: give the file as CMAKE_PROJECT_unedited_INCLUDE instead");
    const build = join(project, 'build');
    await cmake(['-S', project, '-B', build, `-Docipkg_DIR=${cmakeDir}`, `-DCMAKE_PROJECT_unedited_INCLUDE=${include}`]);
    await cmake(['--build', build, '--target', 'ocipkg-pack']);
    const inspected = JSON.parse((await ocipkg(['inspect', join(build, 'unedited-2.0-x86_64-unknown-linux-gnu.tar')], env)).stdout) as { config: { package: { libraries: { file: string }[] } } };
    expect(inspected.config.package.libraries.map((lib) => lib.file)).toEqual(['lib/libunedited.a']);
  }, 180_000);
});

describe('ocipkg_package COMPONENT', () => {
  it('packs only what the install rules of the components given install', async () => {
    const project = join(work, 'components');
    await mkdir(project, { recursive: true });
    await writeFile(join(project, 'lib.c'), 'int f(void) { return 1; }\n');
    await writeFile(join(project, 'lib.h'), 'int f(void);\n');
    await writeFile(join(project, 'tool.c'), 'int main(void) { return 0; }\n');
    await writeFile(join(project, 'CMakeLists.txt'), [
      'cmake_minimum_required(VERSION 3.19)', 'project(parts VERSION 0.3 LANGUAGES C)',
      'add_library(parts STATIC lib.c)', 'set_target_properties(parts PROPERTIES POSITION_INDEPENDENT_CODE ON)',
      'add_executable(parts-tool tool.c)',
      'install(TARGETS parts COMPONENT dev)', 'install(FILES lib.h DESTINATION include COMPONENT dev)',
      'install(TARGETS parts-tool COMPONENT tools)',
      'find_package(ocipkg CONFIG REQUIRED)', `ocipkg_package(IMAGE ${registry.host}/acme/parts COMPONENT dev)`, '',
    ].join('\n'));
    const build = join(project, 'build');
    await cmake(['-S', project, '-B', build, `-Docipkg_DIR=${cmakeDir}`]);
    await cmake(['--build', build, '--target', 'ocipkg-pack']);
    const archive = join(build, 'parts-0.3-x86_64-unknown-linux-gnu.tar');
    const inspected = JSON.parse((await ocipkg(['inspect', archive], env)).stdout) as { manifest: { layers: { digest: string }[] } };
    const layer = inspected.manifest.layers[0]!.digest.replace(':', '/');
    const listing = execFileSync('sh', ['-c', `tar -xOf "$1" "blobs/${layer}" | tar -tzf -`, 'sh', archive], { encoding: 'utf8' });
    const files = listing.split('\n').filter((f) => f && !f.endsWith('/'));
    expect(files.sort()).toEqual(['include/lib.h', 'lib/libparts.a']);
  }, 180_000);
});

describe('ocipkg_package stages the install rules with DESTDIR', () => {
  /** A project installing libx and x.h as `install` lines say, configured with its prefix at `prefix`. */
  async function project(name: string, install: string[], prefix: string, minimum = '3.19', requires = image): Promise<string> {
    const dir = join(work, name);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'x.c'), 'int x(void) { return 1; }\n');
    await writeFile(join(dir, 'x.h'), 'int x(void);\n');
    await writeFile(join(dir, 'CMakeLists.txt'), [
      `cmake_minimum_required(VERSION ${minimum})`, `project(${name} VERSION 1.0 LANGUAGES C)`,
      'add_library(x STATIC x.c)', 'set_target_properties(x PROPERTIES POSITION_INDEPENDENT_CODE ON)',
      ...install,
      'find_package(ocipkg CONFIG REQUIRED)', `ocipkg_package(IMAGE ${registry.host}/acme/${name} REQUIRES ${requires})`, '',
    ].join('\n'));
    const build = join(dir, 'build');
    await cmake(['-S', dir, '-B', build, `-Docipkg_DIR=${cmakeDir}`, `-DCMAKE_INSTALL_PREFIX=${prefix}`]);
    return build;
  }

  async function packedFiles(archive: string): Promise<string[]> {
    const inspected = JSON.parse((await ocipkg(['inspect', archive], env)).stdout) as { manifest: { layers: { digest: string }[] } };
    const layer = inspected.manifest.layers[0]!.digest.replace(':', '/');
    const listing = execFileSync('sh', ['-c', `tar -xOf "$1" "blobs/${layer}" | tar -tzf -`, 'sh', archive], { encoding: 'utf8' });
    return listing.split('\n').filter((f) => f && !f.endsWith('/')).sort();
  }

  it('packs destinations spelled absolute under CMAKE_INSTALL_PREFIX (as zlib writes them) and writes nothing to the prefix itself', async () => {
    // The prefix is where a real install would go; with --prefix staging the library went there.
    const prefix = join(work, 'absolute-real-prefix');
    const build = await project('absolute', [
      'install(TARGETS x ARCHIVE DESTINATION "${CMAKE_INSTALL_PREFIX}/lib")', 'install(FILES x.h DESTINATION include)',
    ], prefix);
    await cmake(['--build', build, '--target', 'ocipkg-pack']);
    expect(existsSync(prefix)).toBe(false);
    expect(await packedFiles(join(build, 'absolute-1.0-x86_64-unknown-linux-gnu.tar'))).toEqual(['include/x.h', 'lib/libx.a']);
  }, 180_000);

  it('stops, naming the file, when an install rule puts one outside the prefix, which stays untouched', async () => {
    const outside = join(work, 'outside-the-prefix');
    const build = await project('escapes', [
      'install(TARGETS x ARCHIVE DESTINATION lib)', `install(FILES x.h DESTINATION "${outside}")`,
    ], join(work, 'escapes-real-prefix'));
    const failed = await cmake(['--build', build, '--target', 'ocipkg-pack']).then(() => undefined, (err: Error) => err);
    // CMake wraps a message's lines: compared with its whitespace run together.
    expect(failed?.message.replace(/\s+/g, ' ')).toContain(`ocipkg-pack: the install rules put 1 file(s) outside CMAKE_INSTALL_PREFIX (${join(work, 'escapes-real-prefix')}), which the package cannot hold: ${outside}/x.h`);
    expect(existsSync(outside)).toBe(false);
    expect(existsSync(join(build, 'escapes-1.0-x86_64-unknown-linux-gnu.tar'))).toBe(false);
  }, 180_000);

  it('warns of a library linked from the ocipkg store only when no package REQUIRES names reaches it there', async () => {
    // libpng's build links the store's zlib by path (FindZLIB through ocipkg-link --cmake-prefix-path).
    const prefix = join(work, 'stored-prefix');
    await mkdir(join(prefix, 'lib'), { recursive: true });
    await mkdir(join(prefix, 'include'), { recursive: true });
    await writeFile(join(prefix, 'include', 'z.h'), 'int z(void);\n');
    execFileSync('sh', ['-c', 'printf "int z(void) { return 2; }\n" | cc -x c -c -o z.o - && ar rcs lib/libz.a z.o && rm z.o'], { cwd: prefix });
    const zImage = `${registry.host}/acme/stored-z:1`;
    for (const args of [['publish', zImage, '--target', `x86_64-unknown-linux-gnu=${prefix}`], ['get', zImage]]) {
      const step = await ocipkg(args, env);
      expect(step.code, step.stderr).toBe(0);
    }
    const stored = join((await ocipkg(['image-directory', zImage], env)).stdout.trim(), 'lib', 'libz.a');
    const packWarnings = async (name: string, requires: string) => {
      const build = await project(name, [`target_link_libraries(x PRIVATE ${stored})`, 'install(TARGETS x ARCHIVE DESTINATION lib)'], join(work, `${name}-prefix`), '3.19', requires);
      return (await cmake(['--build', build, '--target', 'ocipkg-pack'])).stderr.replace(/\s+/g, ' ');
    };
    // REQUIRES names another package: the store's libz.a is not what it gives consumers.
    expect(await packWarnings('from-store-other', image)).toContain(`x links ${stored}, a file of a package in the ocipkg store that no package REQUIRES names reaches there: not recorded; consumers get it only from a package REQUIRES names (here: ${image})`);
    // REQUIRES names the package the file belongs to: consumers link it through the requirement.
    expect(await packWarnings('from-store-required', zImage)).not.toContain('ocipkg store');
  }, 180_000);

  it('works in a project whose cmake_minimum_required predates the policies it uses (libpng asks for 3.1)', async () => {
    // A dependency to describe: the module walks the target's link libraries with if(IN_LIST).
    const build = await project('old-policies', ['target_link_libraries(x PRIVATE m)', 'install(TARGETS x ARCHIVE DESTINATION lib)'], join(work, 'old-real-prefix'), '3.1');
    await cmake(['--build', build, '--target', 'ocipkg-pack']);
    const archive = join(build, 'old-policies-1.0-x86_64-unknown-linux-gnu.tar');
    expect(await packedFiles(archive)).toEqual(['lib/libx.a']);
    expect((await packageOf(archive)).staticLinkFlags).toEqual(['-lm']);
  }, 180_000);
});

describe('the example addon selects the build of the target it is built for', () => {
  it('node-gyp cross-building for arm64 links the aarch64 build', async () => {
    const tarball = await packOcipkg(join(work, 'tarball'));
    const dir = await installExample('node-gyp-addon', work, tarball);
    await buildExample(dir, {
      image,
      linkage: 'static',
      env: { ...env, npm_config_arch: 'arm64', CC: 'aarch64-linux-gnu-gcc', CXX: 'aarch64-linux-gnu-g++', LINK: 'aarch64-linux-gnu-g++', AR: 'aarch64-linux-gnu-ar' },
    });
    const addon = join(dir, 'build', 'Release', 'greet_addon.node');
    expect(elfHeader(addon).machine).toBe('AArch64');
    // The static archive is inside (its symbols kept local by --exclude-libs): greet_add is defined in the addon.
    const symbols = execFileSync('aarch64-linux-gnu-nm', ['--defined-only', addon], { encoding: 'utf8' });
    expect(symbols).toMatch(/ [tT] greet_add$/m);
  }, 600_000);
});

/**
 * Building, publishing and consuming the examples under examples/, the way their users would: shared by
 * `npm run demo` (scripts/demo.mjs) and test/examples.test.ts, so the demo shows what the tests check.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '..');
export const EXAMPLES = join(REPO, 'examples');
export const OCIPKG_BIN = join(REPO, 'bin', 'ocipkg.cjs');

/** The file name npm gives to the Windows shims of its commands. */
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/**
 * Runs a command and resolves with its output; rejects with an error carrying the command line and
 * the end of its output, which is what someone reading a failed demo or test needs.
 * @param {string} command
 * @param {string[]} args
 * @param {{ cwd?: string, env?: NodeJS.ProcessEnv }} [options] env is added to process.env
 * @returns {Promise<{ stdout: string, stderr: string }>}
 */
export function run(command, args, options = {}) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? REPO,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      shell: process.platform === 'win32' && command.endsWith('.cmd'),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d.toString()));
    child.stderr.on('data', (d) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) return resolvePromise({ stdout, stderr });
      const output = `${stdout}\n${stderr}`.trim().split('\n').slice(-40).join('\n');
      const error = new Error(`${command} ${args.join(' ')} exited with ${code ?? signal}:\n${output}`);
      Object.assign(error, { stdout, stderr, exitCode: code });
      reject(error);
    });
  });
}

/**
 * Environment for node-gyp and cmake-js. When the running Node ships its own headers (official
 * tarballs and Debian/NodeSource packages do, under <prefix>/include/node), point both tools at them
 * so no header download is needed; otherwise they download as usual.
 * @returns {NodeJS.ProcessEnv}
 */
export function nodeHeadersEnv() {
  const prefix = resolve(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'common.gypi')) ? { npm_config_nodedir: prefix } : {};
}

/**
 * Builds examples/c-library (libgreet, static and shared) and installs it into `<work>/greet-prefix`.
 * @param {string} work
 * @returns {Promise<string>} the install prefix
 */
export async function buildGreetLibrary(work) {
  const build = join(work, 'greet-build');
  const prefix = join(work, 'greet-prefix');
  await run('cmake', ['-S', join(EXAMPLES, 'c-library'), '-B', build, '-DCMAKE_BUILD_TYPE=Release']);
  await run('cmake', ['--build', build, '--config', 'Release']);
  await run('cmake', ['--install', build, '--config', 'Release', '--prefix', prefix]);
  return prefix;
}

/**
 * Builds examples/c-library and publishes it from its own build, as a library author would: CMake's
 * `ocipkg_package` (found through `ocipkg cmake-dir`) gives the build an `ocipkg-push` target, which
 * installs into a staging prefix, packs (with what the CMake targets say) and pushes.
 * @param {string} work
 * @param {string} image where to push it: a registry image or an `oci:PATH:TAG` layout
 * @param {{ env?: NodeJS.ProcessEnv }} [options]
 * @returns {Promise<string>} the archive ocipkg-pack wrote
 */
export async function publishGreetFromCmake(work, image, options = {}) {
  const build = join(work, 'greet-build');
  const { stdout } = await run(process.execPath, [OCIPKG_BIN, 'cmake-dir'], { env: options.env });
  await run('cmake', ['-S', join(EXAMPLES, 'c-library'), '-B', build, '-DCMAKE_BUILD_TYPE=Release', `-Docipkg_DIR=${stdout.trim()}`, `-DGREET_IMAGE=${image}`], { env: options.env });
  await run('cmake', ['--build', build, '--config', 'Release', '--target', 'ocipkg-push'], { env: options.env });
  const archive = readdirSync(build).find((f) => /^greet-.*\.tar$/.test(f));
  if (!archive) throw new Error(`ocipkg-pack wrote no archive into ${build}`);
  return join(build, archive);
}

/**
 * Packs a prefix as an ocipkg artifact and pushes it: `ocipkg pack` then `ocipkg push`.
 * @param {string} prefix
 * @param {string} image where to push it: a registry image or an `oci:PATH:TAG` layout
 * @param {string} archive path of the oci-archive to write
 * @param {{ target?: string, env?: NodeJS.ProcessEnv }} [options]
 */
export async function publish(prefix, image, archive, options = {}) {
  const target = options.target ? ['--target', options.target] : [];
  // An archive is named like a registry image; an `oci:PATH:TAG` destination only takes its tag.
  const name = image.startsWith('oci:') ? `examples/greet:${image.slice(image.lastIndexOf(':') + 1)}` : image;
  await run(process.execPath, [OCIPKG_BIN, 'pack', prefix, archive, '-t', name, ...target], { env: options.env });
  await run(process.execPath, [OCIPKG_BIN, 'push', archive, image], { env: options.env });
}

/**
 * The npm tarball of this repository, as a user would install it. The package must be built (dist/).
 * @param {string} destination directory for the .tgz
 * @returns {Promise<string>} path of the tarball
 */
export async function packOcipkg(destination) {
  await mkdir(destination, { recursive: true });
  const { stdout } = await run(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', destination]);
  const [{ filename }] = JSON.parse(stdout);
  return join(destination, filename);
}

/**
 * Copies examples/<name> into `<work>/<name>` and installs its dependencies there, with ocipkg taken
 * from `tarball` instead of the repository checkout. Install scripts are skipped: building is a
 * separate step, so one install serves several builds.
 * @param {string} name cmake-js-addon or node-gyp-addon
 * @param {string} work
 * @param {string} tarball from packOcipkg
 * @returns {Promise<string>} the installed example's directory
 */
export async function installExample(name, work, tarball) {
  const dir = join(work, name);
  await cp(join(EXAMPLES, name), dir, {
    recursive: true,
    filter: (source) => !/[\\/](node_modules|build)$/.test(source),
  });
  const manifestPath = join(dir, 'package.json');
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
  manifest.dependencies.ocipkg = `file:${tarball}`;
  await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  await run(NPM, ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir });
  return dir;
}

/**
 * Builds an installed example (`npm run build`) against `image`.
 * @param {string} dir from installExample
 * @param {{ image: string, linkage: 'static' | 'shared', env?: NodeJS.ProcessEnv }} options
 * @returns {Promise<{ stdout: string, stderr: string }>}
 */
export function buildExample(dir, options) {
  return run(NPM, ['run', 'build'], {
    cwd: dir,
    env: {
      ...nodeHeadersEnv(),
      OCIPKG_EXAMPLE_IMAGE: options.image,
      OCIPKG_EXAMPLE_LINKAGE: options.linkage,
      ...options.env,
    },
  });
}

/**
 * Loads a built example in a fresh Node process and calls into the library through it.
 * @param {string} dir
 * @returns {Promise<{ sum: number, version: string }>}
 */
export async function callExample(dir) {
  const script = "const g = require('./index.js'); console.log(JSON.stringify({ sum: g.add(2, 3), version: g.version() }))";
  const { stdout } = await run(process.execPath, ['-e', script], { cwd: dir });
  return JSON.parse(stdout);
}

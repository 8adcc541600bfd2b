// Build step after tsc: bundles the two CLIs into one CommonJS file each in dist/bundle/ and makes
// the V8 code cache each is compiled with (src/cjs/bundles.cts loads them and says why).
//
// - `ocipkg-link` (dist/bundle/ocipkg-link.cjs) holds the warm path only: it reaches the cold path,
//   which carries the HTTP and tar stacks, through src/cold.ts's one dynamic import, which this
//   build turns into a call of a loader passed in.
// - `ocipkg` (dist/bundle/ocipkg.cjs) holds the whole CLI and the cold path, which ocipkg-link loads
//   from it: the cold path's code is one copy, so the buffer collection ocipkg-link tunes
//   (tuning.ts) is the one extraction reports to. Each command's dynamic import() is bundled as a
//   module whose top level runs only when imported, so a command still runs only what it needs.
//
// Both sit at the depth of dist/'s own modules (dist/bundle/ beside dist/cli/), so paths relative
// to a module (`../../package.json`) still hold.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';

const repo = resolve(import.meta.dirname, '..');
const loader = join(repo, 'dist', 'cjs', 'bundles.cjs');
const { asBundleScript, bundleFile, codeCacheFile } = createRequire(import.meta.url)(loader);
const NAMES = ['ocipkg-link', 'ocipkg'];
// Bundles and caches left from an earlier build must not outlive a failed one.
rmSync(resolve(repo, 'dist/bundle'), { recursive: true, force: true });

/**
 * The warm path reaches the cold one only through src/cold.ts, whose one dynamic import() of
 * cold-path.js stays out of ocipkg-link's bundle (the bin passes the `ocipkg` bundle's cold path
 * in). Any other dynamic import would pull a second way into the cold path (or a copy of it) into
 * the bundle: the build fails instead.
 */
const COLD_PATH = resolve(repo, 'dist/cold-path.js');
const COLD_MARKER = 'ocipkg:cold-path';
const coldPathStaysOut = {
  name: 'cold-path-stays-out',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) => {
      if (args.kind !== 'dynamic-import') return undefined;
      if (resolve(args.resolveDir, args.path) !== COLD_PATH) {
        return { errors: [{ text: `${args.importer} imports ${args.path} dynamically: the warm path reaches the cold one only through src/cold.ts` }] };
      }
      return { path: COLD_MARKER, external: true };
    });
  },
};

/**
 * undici's HTTP/2 client stays out of the bundle: ocipkg never enables it (no allowH2, no h2c), and
 * undici calls it only for a connection that negotiated h2, which its ALPN offers only with
 * allowH2. Loading it loads node:http2, ~1 MiB resident in every transfer. The build fails when
 * undici's client no longer imports it where this expects, rather than bundle it unnoticed.
 */
const UNDICI_DISPATCHERS = join('undici', 'lib', 'dispatcher');
let http2Stubbed = 0;
const withoutHttp2 = {
  name: 'without-http2',
  setup(b) {
    b.onResolve({ filter: /^\.\/client-h2\.js$/ }, (args) => {
      if (!args.resolveDir.endsWith(UNDICI_DISPATCHERS)) return undefined;
      http2Stubbed++;
      return { path: 'client-h2', namespace: 'without-http2' };
    });
    b.onLoad({ filter: /.*/, namespace: 'without-http2' }, () => ({
      contents: "module.exports = function connectH2() { throw new Error('ocipkg does not speak HTTP/2'); };",
      loader: 'js',
    }));
  },
};

const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // The bundles sit at the depth of the modules they replace, so paths relative to them still hold.
  define: { 'import.meta.dirname': '__dirname' },
  // V8 keeps a script's source for as long as its functions live: without the comments and the
  // indentation the `ocipkg` bundle is 1.0 MB instead of 1.4 (measured: the peak of a 500 MiB get
  // fell from 65-66 MiB to 64). Names stay as written, so stack traces still name functions.
  minifyWhitespace: true,
  logLevel: 'warning',
};

await build({ ...common, entryPoints: [resolve(repo, 'dist/cli/ocipkg-link.js')], outfile: bundleFile('ocipkg-link'), plugins: [coldPathStaysOut] });

// The CLI, and what ocipkg-link and the build reach through it.
await build({
  ...common,
  stdin: {
    contents: [
      "export { main } from './cli/ocipkg.js';",
      "export { coldPath } from './cold.js';",
      "export { restoreV8Defaults } from './tuning.js';",
    ].join('\n'),
    resolveDir: resolve(repo, 'dist'),
    sourcefile: 'ocipkg-bundle.js',
  },
  outfile: bundleFile('ocipkg'),
  plugins: [withoutHttp2],
});
if (http2Stubbed === 0) throw new Error("bundle: undici's dispatcher no longer imports ./client-h2.js: check how its HTTP/2 client is reached, and keep it out");

// The CommonJS API's entry (dist/cjs/index.cjs) with the loader it shares with the bins bundled in:
// `require('ocipkg')` then reads and compiles one module, not two (measured: ~0.35 ms of a ~9 ms
// `node -p "require('ocipkg').flags(IMG)"`). Node's loader compiles it with no code cache, hence
// small: the functions it serves are the ocipkg-link bundle's.
const cjsEntry = resolve(repo, 'dist/cjs/index.cjs');
const { outputFiles } = await build({ ...common, entryPoints: [cjsEntry], outfile: cjsEntry, write: false, allowOverwrite: true });
writeFileSync(cjsEntry, outputFiles[0].contents);

// Code compiled with vm cannot import(): ocipkg-link's one import of the cold path becomes a call
// of the `importCold` its loader passes in, and neither bundle may hold any other. Each is written
// as the function its loader compiles (asBundleScript).
for (const name of NAMES) {
  let rewritten = 0;
  const source = readFileSync(bundleFile(name), 'utf8').replace(/\bimport\(("[^"]*")\)/g, (whole, specifier) => {
    if (JSON.parse(specifier) !== COLD_MARKER) return whole;
    rewritten++;
    return 'importCold()';
  });
  const expected = name === 'ocipkg-link' ? 1 : 0;
  // The bundles hold no comments (minifyWhitespace), so every `import(` left is code.
  const others = [...source.matchAll(/\bimport\([^)]{0,80}\)?/g)].map((m) => m[0]);
  if (rewritten !== expected || others.length > 0) throw new Error(`bundle: ${name}: expected ${expected} import() of the cold path and no other, found ${rewritten} and ${others.length}: ${others[0]}`);
  writeFileSync(bundleFile(name), asBundleScript(source));
}

/**
 * Runs each CLI once the way it is used and saves what V8 compiled for it: the `ocipkg` CLI packs a
 * package, loads it into a throwaway store, pushes it to an OCI layout and gets it from there into a
 * second store (extraction, verification, copying); ocipkg-link then prints `--cflags --libs` of
 * the loaded package from a project directory, as an addon's build would (the warm path). One
 * process per CLI: a cache holds what one process compiled.
 */
function writeCodeCaches(work) {
  // The build's own environment may point ocipkg elsewhere (a project, a target, a store): not here.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('OCIPKG_') && name !== 'npm_config_arch'));
  env.OCIPKG_DATA_DIR = join(work, 'store');
  const run = (script, extraEnv = {}) => {
    const result = spawnSync(process.execPath, ['-e', script], { cwd: work, env: { ...env, ...extraEnv }, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
    if (result.status !== 0) throw new Error(`bundle: making the code cache failed: ${result.stderr}`);
  };
  const prefix = join(work, 'prefix');
  mkdirSync(join(prefix, 'include'), { recursive: true });
  mkdirSync(join(prefix, 'lib'));
  writeFileSync(join(prefix, 'include', 'warmup.h'), 'int warmup(void);\n');
  writeFileSync(join(prefix, 'lib', 'libwarmup.a'), '!<arch>\n');
  writeFileSync(join(work, 'package.json'), '{ "name": "warmup", "private": true }\n');
  const image = 'localhost/ocipkg/warmup:1';
  const archive = join(work, 'warmup.tar');
  const layout = `oci:${join(work, 'layout')}:1`;
  /** Runs the commands in one process, stopping at the first that fails, then saves the cache. */
  const cacheOf = (name, commands, beforeSaving = '') => `
    const { writeFileSync } = require('node:fs');
    const { loadBundle, codeCacheFile } = require(${JSON.stringify(loader)});
    const { exports, script } = loadBundle(${JSON.stringify(name)}, { withoutCache: true });
    (async () => {
      for (const [argv, store] of ${JSON.stringify(commands)}) {
        if (store) process.env.OCIPKG_DATA_DIR = store;
        await exports.main(argv);
        if (process.exitCode) throw new Error('failed: ' + argv.join(' '));
      }
      ${beforeSaving}
      writeFileSync(codeCacheFile(${JSON.stringify(name)}), script.createCachedData());
      process.exit(0);
    })().catch((err) => { process.stderr.write(String(err.stack ?? err) + '\\n'); process.exit(1); });`;
  run(cacheOf('ocipkg', [
    [['pack', prefix, archive, '-t', image]],
    [['load', archive]],
    [['push', archive, layout]],
    [['get', layout], join(work, 'second-store')],
  ], 'exports.restoreV8Defaults();'));
  // Offline: the package is in the store, and the warm path must never need more.
  run(cacheOf('ocipkg-link', [[['--cflags', '--libs', image]]]), { OCIPKG_OFFLINE: '1' });
}

/** Fails the build when V8 would not take a cache just made: every start would compile anew. */
function checkCodeCaches() {
  const script = `
    const { loadBundle } = require(${JSON.stringify(loader)});
    const rejected = ${JSON.stringify(NAMES)}.filter((name) => loadBundle(name).script.cachedDataRejected !== false);
    process.stdout.write(rejected.join(' '));`;
  const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  if (result.status !== 0 || result.stdout !== '') throw new Error(`bundle: V8 rejects the code cache of ${result.stdout || result.stderr}`);
}

const work = mkdtempSync(join(tmpdir(), 'ocipkg-code-cache-'));
try {
  writeCodeCaches(work);
} finally {
  rmSync(work, { recursive: true, force: true });
}
checkCodeCaches();

// Build step after tsc: bundles the `ocipkg-link` entry point into one CommonJS file and makes the
// V8 code cache bin/ocipkg-link.cjs compiles it with; bundles the `ocipkg` CLI and the cold path.
//
// `ocipkg-link` runs once per build step, and its warm path (package already in the store) must
// stay close to a bare `node -e 0`. As ES modules it loads ~16 files, and each ESM import of a
// builtin builds a facade over all of its exports; together that costs more than Node's own start.
// One CommonJS file reads and compiles once, and with a code cache made by running the warm path it
// hardly compiles at all.
//
// The `ocipkg` CLI and the cold path (fetching, which ocipkg-link reaches when the store misses) are
// one split ES-module bundle in dist/bundle/: as plain ES modules a push or a cold get resolved,
// read and compiled ~200 files of dist/, undici and tar before its first request (~85 ms). Each
// command's dynamic import() is a chunk of its own, so a command still loads only what it runs,
// and code both entry points share (the buffer collection in tuning.ts, which extraction reports
// to) is one copy in one chunk.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { build } from 'esbuild';

const repo = resolve(import.meta.dirname, '..');
const outfile = resolve(repo, 'dist/cli/ocipkg-link.cjs');
const bin = join(repo, 'bin', 'ocipkg-link.cjs');
const { CODE_CACHE } = createRequire(import.meta.url)(bin);
// A cache left from an earlier build must not outlive a failed one.
rmSync(CODE_CACHE, { force: true });

/**
 * The warm path reaches the cold one only through src/cold.ts, whose one dynamic import() of
 * cold-path.js stays a dynamic import, of the cold-path entry of the `ocipkg` CLI's bundle (below).
 * Any other dynamic import would pull a second way into the cold path (or a copy of it) into the
 * bundle: the build fails instead.
 */
const COLD_PATH = resolve(repo, 'dist/cold-path.js');
const BUNDLE_DIR = resolve(repo, 'dist/bundle');
const coldImport = `./${relative(dirname(outfile), join(BUNDLE_DIR, 'cold-path.js'))}`;
const coldPathStaysOut = {
  name: 'cold-path-stays-out',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) => {
      if (args.kind !== 'dynamic-import') return undefined;
      if (resolve(args.resolveDir, args.path) !== COLD_PATH) {
        return { errors: [{ text: `${args.importer} imports ${args.path} dynamically: the warm path reaches the cold one only through src/cold.ts` }] };
      }
      return { path: coldImport, external: true };
    });
  },
};

/**
 * ES modules among the dependencies (env-paths) import builtins' default exports, which esbuild
 * turns into a copy of every property of the builtin (all of `process`'s, on every start). A module
 * whose default export is the builtin's own exports object needs no copy.
 */
const builtinDefaults = {
  name: 'builtin-defaults',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) => {
      if (args.kind !== 'import-statement' || !args.importer.includes('node_modules')) return undefined;
      return { path: args.path, namespace: 'builtin-default' };
    });
    b.onLoad({ filter: /.*/, namespace: 'builtin-default' }, (args) => ({
      contents: `export default require(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

await build({
  entryPoints: [resolve(repo, 'dist/cli/ocipkg-link.js')],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // The bundle sits beside the module it replaces, so paths relative to it still hold.
  define: { 'import.meta.dirname': '__dirname' },
  plugins: [coldPathStaysOut, builtinDefaults],
  logLevel: 'warning',
});

/**
 * The `ocipkg` CLI and the cold path, as one split bundle of ES modules at the depth of dist/'s own
 * (dist/bundle/*.js), so paths relative to a module (`../../package.json`) still hold. CommonJS
 * dependencies (undici) call require(), which an ES module lacks: each file gets its own.
 */
rmSync(BUNDLE_DIR, { recursive: true, force: true });
await build({
  entryPoints: { ocipkg: resolve(repo, 'dist/cli/ocipkg.js'), 'cold-path': COLD_PATH },
  outdir: BUNDLE_DIR,
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  banner: { js: "import { createRequire as __ocipkgCreateRequire } from 'node:module'; const require = __ocipkgCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});

// bin/ocipkg-link.cjs compiles the bundle with vm, where import() is unavailable: it passes
// `importCold` instead. The one import of the cold path must be rewritten, and nothing else.
let rewritten = 0;
const bundled = readFileSync(outfile, 'utf8').replace(/\bimport\(("\.[^"]*")\)/g, (_whole, specifier) => {
  if (JSON.parse(specifier) !== coldImport) throw new Error(`bundle: unexpected dynamic import ${specifier}`);
  rewritten++;
  return `importCold(${specifier})`;
});
if (rewritten !== 1 || /\bimport\(/.test(bundled)) throw new Error(`bundle: expected the one import of the cold path, rewritten; found ${rewritten}`);
writeFileSync(outfile, bundled);

/**
 * Runs the warm path once (`--cflags --libs` of a package loaded into a throwaway store, from a
 * project directory as an addon's build would) and saves what V8 compiled for it.
 */
function writeCodeCache() {
  const work = mkdtempSync(join(tmpdir(), 'ocipkg-code-cache-'));
  try {
    // The build's own environment may point ocipkg elsewhere (a project, a target, a store): not here.
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('OCIPKG_') && name !== 'npm_config_arch'));
    Object.assign(env, { OCIPKG_DATA_DIR: join(work, 'store'), OCIPKG_OFFLINE: '1' });
    const run = (args, options = {}) => {
      const result = spawnSync(process.execPath, args, { cwd: work, env, encoding: 'utf8', ...options });
      if (result.status !== 0) throw new Error(`bundle: making the code cache failed: ${args.join(' ')}: ${result.stderr}`);
    };
    const prefix = join(work, 'prefix');
    mkdirSync(join(prefix, 'include'), { recursive: true });
    mkdirSync(join(prefix, 'lib'));
    writeFileSync(join(prefix, 'include', 'warmup.h'), 'int warmup(void);\n');
    writeFileSync(join(prefix, 'lib', 'libwarmup.a'), '!<arch>\n');
    writeFileSync(join(work, 'package.json'), '{ "name": "warmup", "private": true }\n');
    const ocipkg = join(repo, 'bin', 'ocipkg.js');
    const image = 'localhost/ocipkg/warmup:1';
    run([ocipkg, 'pack', prefix, join(work, 'warmup.tar'), '-t', image]);
    run([ocipkg, 'load', join(work, 'warmup.tar')]);
    const script = `
      const { writeFileSync } = require('node:fs');
      const { loadBundle, CODE_CACHE } = require(${JSON.stringify(bin)});
      const { exports, script } = loadBundle();
      exports.main(['--cflags', '--libs', ${JSON.stringify(image)}]).then(() => {
        if (process.exitCode) return;
        writeFileSync(CODE_CACHE, script.createCachedData());
      });`;
    run(['-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

writeCodeCache();

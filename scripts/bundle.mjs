// Build step after tsc: bundles the `ocipkg-link` entry point into one CommonJS file.
//
// `ocipkg-link` runs once per build step, and its warm path (package already in the store) must
// stay close to a bare `node -e 0`. As ES modules it loads ~16 files, and each ESM import of a
// builtin builds a facade over all of its exports; together that costs more than Node's own start.
// One CommonJS file reads and compiles once. The cold path (fetching) stays in the ESM modules of
// dist/, loaded by a real dynamic import only when the store misses.
import { build } from 'esbuild';
import { dirname, relative, resolve } from 'node:path';

const repo = resolve(import.meta.dirname, '..');
const outfile = resolve(repo, 'dist/cli/ocipkg-link.cjs');

/** Keeps every dynamic import() a dynamic import of the dist/ module, re-pointed from the bundle's place. */
const coldPathStaysOut = {
  name: 'cold-path-stays-out',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) => {
      if (args.kind !== 'dynamic-import') return undefined;
      const target = resolve(args.resolveDir, args.path);
      return { path: `./${relative(dirname(outfile), target)}`, external: true };
    });
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
  plugins: [coldPathStaysOut],
  logLevel: 'warning',
});

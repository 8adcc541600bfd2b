import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Script } from 'node:vm';

/**
 * The two CLIs as scripts/bundle.mjs bundles them: each one file of CommonJS code in dist/bundle/
 * with, beside it, the V8 code cache the build made by running it. `ocipkg-link` runs once per
 * build step and its warm path must stay close to a bare Node start; the `ocipkg` CLI and the cold
 * path (fetching, which ocipkg-link reaches when the store misses) start every push and cold get.
 * As ES modules either resolved, read and compiled dozens of files first, and compiling the
 * functions they run cost more than the rest of a warm `ocipkg-link`; one file compiled with a
 * cache of what an earlier run compiled hardly compiles at all.
 *
 * V8 rejects a cache made by another V8 version, under other V8 flags or for a source of another
 * length (the build always writes the two together): the bundle then compiles as usual.
 */
export type BundleName = 'ocipkg' | 'ocipkg-link';

const DIR = join(__dirname, '..', 'bundle');

export function bundleFile(name: BundleName): string {
  return join(DIR, `${name}.cjs`);
}

export function codeCacheFile(name: BundleName): string {
  return join(DIR, `${name}.v8cache`);
}

export interface LoadOptions {
  /** Compile from source, ignoring the cache (the build, which is about to make it). */
  withoutCache?: boolean;
}

export interface LoadedBundle<Exports> {
  exports: Exports;
  /** The compiled bundle: whether V8 took the cache, and what makes a new one. */
  script: Script;
}

/**
 * The `ocipkg` CLI's bundle, loaded once: ocipkg-link reaches its cold path through it. The bundle's
 * one dynamic import, ocipkg-link's of the cold path (src/cold.ts), calls this instead: code
 * compiled by vm cannot `import()` (not without an experimental flag).
 */
let cli: LoadedBundle<{ coldPath(): Promise<unknown> }> | undefined;

function importColdPath(): Promise<unknown> {
  cli ??= loadBundle('ocipkg');
  return cli.exports.coldPath();
}

/**
 * A bundle as the build writes it: its CommonJS code as one function of the module's parameters
 * (and `importCold`), compiled as it is read. Wrapped at load time instead, the source was copied
 * once more (1.4 MB for `ocipkg`), and the copy stayed until a full collection.
 */
export function asBundleScript(source: string): string {
  return `(function (exports, require, module, __filename, __dirname, importCold) {${source}\n})`;
}

/** Compiles and runs a bundle's top level, as Node's module loader would, and returns its exports. */
export function loadBundle<Exports>(name: BundleName, options: LoadOptions = {}): LoadedBundle<Exports> {
  const file = bundleFile(name);
  let cachedData: Buffer | undefined;
  if (!options.withoutCache) {
    try {
      cachedData = readFileSync(codeCacheFile(name));
    } catch {
      // No cache (a build without one): compile from source.
    }
  }
  // Named for stack traces by its place in the package, not by its path: V8 keeps the name the
  // script had when the cache was made (on the machine that built the package), whatever this says.
  const script = new Script(readFileSync(file, 'utf8'), { filename: `ocipkg/dist/bundle/${name}.cjs`, cachedData });
  const module = { exports: {} as Exports };
  script.runInThisContext()(module.exports, require, module, file, DIR, importColdPath);
  return { exports: module.exports, script };
}

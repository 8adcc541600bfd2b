#!/usr/bin/env node
'use strict';
// ocipkg-link runs once per build step, and its warm path must stay close to a bare Node start. Its
// code is one bundled CommonJS file (scripts/bundle.mjs) and, beside it, the V8 code cache the build
// made by running that warm path: without the cache, compiling the bundle's functions costs more
// than everything else ocipkg-link does. V8 rejects a cache made by another V8 version, under other
// V8 flags or for a source of another length (the build always writes the two together); the
// bundle then compiles as usual.
const { readFileSync } = require('node:fs');
const { dirname, join } = require('node:path');
const { pathToFileURL } = require('node:url');
const { Script } = require('node:vm');

const BUNDLE = join(__dirname, '..', 'dist', 'cli', 'ocipkg-link.cjs');
const CODE_CACHE = join(__dirname, '..', 'dist', 'cli', 'ocipkg-link.v8cache');

/** The cold path, imported relative to the bundle. */
const importFromBundle = (specifier) => import(pathToFileURL(join(dirname(BUNDLE), specifier)).href);

/**
 * Compiles and runs the bundle's top level, as Node's module loader would, and returns its exports
 * and the compiled script. Code compiled by vm cannot `import()` (not without an experimental flag),
 * so the bundler turned the bundle's one dynamic import, of the cold path (src/cold.ts), into a call of `importCold`,
 * which imports here, relative to the bundle. The CommonJS API (dist/cjs/) runs the bundle in a
 * `context` of its own and passes an `importCold` of its own (see src/cjs/index.cts).
 */
function loadBundle(cachedData, { context, importCold = importFromBundle } = {}) {
  const source = readFileSync(BUNDLE, 'utf8');
  const script = new Script(`(function (exports, require, module, __filename, __dirname, importCold) {${source}\n})`, {
    filename: BUNDLE,
    cachedData,
  });
  const module = { exports: {} };
  const wrapper = context ? script.runInContext(context) : script.runInThisContext();
  wrapper(module.exports, require, module, BUNDLE, dirname(BUNDLE), importCold);
  return { exports: module.exports, script };
}

if (require.main === module) {
  let cachedData;
  try {
    cachedData = readFileSync(CODE_CACHE);
  } catch {
    // No cache (a build without one): compile from source.
  }
  loadBundle(cachedData)
    .exports.main(process.argv.slice(2))
    .catch(() => {
      // main() reports its own errors; reaching here means it could not even start.
      process.exitCode = 1;
    });
} else {
  // For the build (scripts/bundle.mjs), which writes the code cache, and the CommonJS API.
  module.exports = { loadBundle, CODE_CACHE };
}

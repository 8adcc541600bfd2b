#!/usr/bin/env node
'use strict';
// ocipkg-link runs once per build step, and its warm path must stay close to a bare Node start: its
// code is one bundled CommonJS file compiled with the V8 code cache the build made by running that
// warm path (dist/cjs/bundles.cjs says why). When the store misses, it loads the cold path from the
// `ocipkg` CLI's bundle.
const { loadBundle } = require('../dist/cjs/bundles.cjs');

loadBundle('ocipkg-link')
  .exports.main(process.argv.slice(2))
  .catch(() => {
    // main() reports its own errors; reaching here means it could not even start.
    process.exitCode = 1;
  });

#!/usr/bin/env node
'use strict';
// The `ocipkg` CLI, bundled with the cold path into one CommonJS file compiled with the V8 code
// cache the build made beside it (dist/cjs/bundles.cjs says why). A CommonJS entry, because an ES
// module one would start Node's ES module loader first, for nothing the bundle needs.
const { loadBundle } = require('../dist/cjs/bundles.cjs');

loadBundle('ocipkg')
  .exports.main(process.argv.slice(2))
  .catch(() => {
    // main() reports its own errors; reaching here means it could not even start.
    process.exitCode = 1;
  });

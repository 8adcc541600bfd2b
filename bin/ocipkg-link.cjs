#!/usr/bin/env node
'use strict';
// CommonJS on purpose: the warm path of ocipkg-link is one bundled file (scripts/bundle.mjs), and a
// CommonJS entry spares it the ES module loader's start-up.
require('../dist/cli/ocipkg-link.cjs')
  .main(process.argv.slice(2))
  .catch(() => {
    // main() reports its own errors; reaching here means it could not even start.
    process.exitCode = 1;
  });

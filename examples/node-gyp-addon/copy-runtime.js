'use strict';
// node copy-runtime.js DEST_DIR FILE...: copies the shared libraries that `ocipkg-link --runtime-files`
// lists next to the addon, then touches DEST_DIR/ocipkg-runtime.stamp (the action's declared output).
// gyp's own "copies" would not do: it hard-links a symlink as the symlink (the store holds
// libgreet.so.1 -> libgreet.so.1.2.0), which dangles beside the addon. copyFileSync follows it.
const { copyFileSync, mkdirSync, rmSync, writeFileSync } = require('node:fs');
const { basename, join } = require('node:path');

const [dest, ...files] = process.argv.slice(2);
mkdirSync(dest, { recursive: true });
for (const file of files) {
  // The store's files are read-only, and so is a previous copy: replace it rather than write into it.
  const copy = join(dest, basename(file));
  rmSync(copy, { force: true });
  copyFileSync(file, copy);
}
writeFileSync(join(dest, 'ocipkg-runtime.stamp'), `${files.join('\n')}\n`);

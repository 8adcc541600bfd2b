import { closeSync, mkdirSync, openSync, rmSync, statSync, utimesSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { errno } from '../errors.js';
import { digestHex } from '../oci/digest.js';

/**
 * When each package was last used, for `ocipkg store list` and for prune's `--min-age`:
 *
 *   used/sha256/<manifest hex>     an empty file; its mtime is the last time a lookup returned the package
 *
 * A timestamp in a file's mtime costs the warm path one utimes() call and no read, which is why it
 * is not a JSON record. A store ocipkg cannot write (a read-only cache mounted into a CI job) still
 * serves lookups: a failed mark only means the package looks older to prune. Synchronous and
 * import-light: `ocipkg-link` marks on every call.
 */

function usedPath(root: string, digest: string): string {
  return join(root, 'used', 'sha256', digestHex(digest));
}

export function markUsed(root: string, digest: string): void {
  const path = usedPath(root, digest);
  const now = new Date();
  try {
    utimesSync(path, now, now);
  } catch (err) {
    if (errno(err) !== 'ENOENT') return;
    try {
      mkdirSync(dirname(path), { recursive: true });
      closeSync(openSync(path, 'w'));
    } catch {
      // Not writable: see above.
    }
  }
}

/** The last use recorded for a package, in ms since the epoch, or undefined when none was. */
export function lastUsed(root: string, digest: string): number | undefined {
  try {
    return statSync(usedPath(root, digest)).mtimeMs;
  } catch (err) {
    if (errno(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** Forgets a removed package's use (rm and prune). */
export function forgetUsed(root: string, digest: string): void {
  rmSync(usedPath(root, digest), { force: true });
}

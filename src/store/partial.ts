import { readdirSync, renameSync, statSync } from 'node:fs';
import { readdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errno } from '../errors.js';
import { isDigest, digestHex } from '../oci/digest.js';
import { ownerRunning } from '../fs/names.js';
import { removeTree } from '../fs/tree.js';
import { STAGING_PREFIX, storePaths } from './paths.js';

/**
 * Downloads cut short, kept so that the next run continues them instead of starting over:
 *
 *   tmp/partial-<hex>      the first bytes of blob sha256:<hex>, as a get had written them
 *
 * A partial is never trusted: the run that claims it (by renaming it into its own staging, so two
 * runs never share one) hashes it again from its first byte as part of the whole blob, and asks
 * the registry only for the rest; a blob that then fails verification is discarded whole. Like
 * anything else in `tmp/`, prune removes a partial older than `--min-age`.
 *
 * A staging directory's `blobs/` holds the bytes its layers are written to as they stream in:
 * an interrupted get (an error, SIGINT or SIGTERM) moves them here before removing its staging,
 * and after a SIGKILL the next get (or prune) does the same for staging whose process is gone.
 */

const PREFIX = 'partial-';

export function partialPath(root: string, digest: string): string {
  return join(storePaths.tmp(root), `${PREFIX}${digestHex(digest)}`);
}

/** The size of a file, or -1 when there is none. */
function sizeOrNone(path: string): number {
  try {
    return statSync(path).size;
  } catch (err) {
    if (errno(err) === 'ENOENT') return -1;
    throw err;
  }
}

/**
 * Moves the blob files of a staging directory's `blobDir` to their partial names, keeping the
 * longer of two partials of one blob. Synchronous: a signal handler runs it before the process
 * dies. Best effort, as nothing depends on a partial surviving.
 */
export function keepPartials(root: string, blobDir: string): void {
  let names: string[];
  try {
    names = readdirSync(blobDir);
  } catch {
    return;
  }
  for (const hex of names) {
    const from = join(blobDir, hex);
    if (!isDigest(`sha256:${hex}`)) continue;
    const to = partialPath(root, `sha256:${hex}`);
    try {
      const size = sizeOrNone(from);
      if (size > 0 && size > sizeOrNone(to)) renameSync(from, to);
    } catch {
      // Nothing to keep after all.
    }
  }
}

/**
 * Takes the partial download of `digest`, if there is one, by renaming it to `dest`: of several
 * runs wanting it, one gets it. Returns the bytes it holds (0: none).
 */
export async function claimPartial(root: string, digest: string, dest: string): Promise<number> {
  try {
    await rename(partialPath(root, digest), dest);
  } catch (err) {
    if (errno(err) === 'ENOENT') return 0;
    throw err;
  }
  return (await stat(dest)).size;
}

/**
 * The staging directories of installs whose process is gone (killed, SIGKILL included): their
 * downloaded bytes become partials, the rest is removed. Returns the names removed.
 */
export async function recoverStaging(root: string): Promise<string[]> {
  const tmp = storePaths.tmp(root);
  let names: string[];
  try {
    names = await readdir(tmp);
  } catch (err) {
    if (errno(err) === 'ENOENT') return [];
    throw err;
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(STAGING_PREFIX) || ownerRunning(name) !== false) continue;
    const dir = join(tmp, name);
    keepPartials(root, join(dir, 'blobs'));
    await removeTree(dir);
    removed.push(name);
  }
  return removed;
}

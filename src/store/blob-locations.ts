import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { errno } from '../errors.js';
import { writeFileAtomicSync } from '../fs/atomic.js';
import { digestHex } from '../oci/digest.js';

/**
 * Which registry repositories each blob was pushed to or pulled from, so that a later push, in
 * any process, can mount a blob from a repository of the same registry instead of uploading it
 * (containers/image keeps the same kind of blob-info cache). One small file per blob:
 *
 *   blob-locations/sha256/<hex>     one `registry/repository` per line, newest last
 *
 * Lines are appended (one short O_APPEND write each, so concurrent writers do not clobber each
 * other) and the file is rewritten only when it outgrows MAX_LINES. It is a hint, never trusted:
 * the registry decides whether a mount succeeds, and a record lost or failing to be written only
 * means an upload instead of a mount, so write failures are ignored.
 */

/** Repositories remembered per blob; the newest win. */
const MAX_REPOSITORIES = 8;
const MAX_LINES = 32;

function recordPath(storeRoot: string, digest: string): string {
  return join(storeRoot, 'blob-locations', 'sha256', digestHex(digest));
}

function readLines(path: string): string[] {
  try {
    return readFileSync(path, 'utf8').split('\n').filter((line) => line !== '');
  } catch (err) {
    if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return [];
    throw err;
  }
}

/** The repositories (`registry/repository`) a blob is known to live in, newest first, without repeats. */
export function blobLocations(storeRoot: string, digest: string): string[] {
  let lines: string[];
  try {
    lines = readLines(recordPath(storeRoot, digest));
  } catch {
    return [];
  }
  return [...new Set(lines.reverse())].slice(0, MAX_REPOSITORIES);
}

/** Notes that each of `digests` lives in `location` (`registry/repository`). */
export function recordBlobLocation(storeRoot: string, location: string, digests: string[]): void {
  for (const digest of digests) {
    const path = recordPath(storeRoot, digest);
    try {
      const known = readLines(path);
      if (known.at(-1) === location) continue;
      if (known.length >= MAX_LINES) {
        writeFileAtomicSync(path, `${[...blobLocations(storeRoot, digest).filter((l) => l !== location).reverse(), location].join('\n')}\n`);
        continue;
      }
      mkdirSync(dirname(path), { recursive: true });
      appendFileSync(path, `${location}\n`);
    } catch {
      // A hint only (see above): an unwritable store costs a mount, not the push or pull.
    }
  }
}

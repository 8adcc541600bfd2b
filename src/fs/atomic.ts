import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { chmod, link, lstat, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { errno } from '../errors.js';
import { siblingTempName } from './names.js';

/**
 * Atomic writes, shared by the layouts, the store, the refs index and the lockfile. Every visible change is a
 * rename (or link) of something complete, so a reader never sees half a file and a killed process
 * leaves only temp names behind. Import-light: the refs index uses this on the warm path.
 */

/** A temp path beside `path`, so that the final rename stays on one file system. */
function siblingTemp(path: string): string {
  return join(dirname(path), siblingTempName(basename(path)));
}

/** `mode` is the new file's from its creation on (a secret is never readable by others, even briefly). */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode?: number): Promise<void> {
  const tmp = siblingTemp(path);
  try {
    await writeFile(tmp, data, { mode });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export function writeFileAtomicSync(path: string, data: string | Uint8Array): void {
  const tmp = siblingTemp(path);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Creates `path` with `data` unless it exists; never replaces it. A hard link publishes the complete
 * temp file under the final name and fails with EEXIST instead of overwriting, unlike rename.
 * Returns whether this call created it.
 */
export async function createFileOnce(path: string, data: string | Uint8Array, mode?: number): Promise<boolean> {
  if (await pathExists(path)) return false;
  const tmp = siblingTemp(path);
  await writeFile(tmp, data, { mode });
  try {
    await link(tmp, path);
    return true;
  } catch (err) {
    if (errno(err) === 'EEXIST') return false;
    throw err;
  } finally {
    await rm(tmp, { force: true });
  }
}

export async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return false;
    throw err;
  }
}

/**
 * Moves a verified temp file to its content-addressed name, read-only. Content-addressed means a file
 * already there holds the same bytes: losing the race to another writer is success, so the temp file
 * is dropped. (On POSIX rename replaces silently; Windows refuses, hence the error check.)
 */
export async function publishFile(tmp: string, dest: string): Promise<void> {
  await chmod(tmp, 0o444);
  try {
    await rename(tmp, dest);
  } catch (err) {
    const code = errno(err);
    if ((code === 'EEXIST' || code === 'EPERM' || code === 'EACCES' || code === 'ENOTEMPTY') && (await pathExists(dest))) {
      await rm(tmp, { force: true });
      return;
    }
    throw err;
  }
}

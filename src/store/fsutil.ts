import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { chmod, link, lstat, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { errno } from '../errors.js';

/**
 * File-system steps shared by the layout, the store and the refs index. Every visible change is a
 * rename (or link) of something complete, so a reader never sees half a file and a killed process
 * leaves only temp names behind. Import-light: the refs index uses this on the warm path.
 */

/**
 * A name no other process or call will pick: the pid tells live processes apart, the counter calls
 * within one, the random part a dead process's leftovers. No node:crypto: this module is on the
 * warm path, and loading crypto costs more than the whole lookup.
 */
let sequence = 0;
export function uniqueName(prefix: string): string {
  return `${prefix}${process.pid}-${(sequence++).toString(36)}${Math.random().toString(36).slice(2, 10)}`;
}

/** A temp path beside `path`, so that the final rename stays on one file system. */
function siblingTemp(path: string): string {
  return join(dirname(path), uniqueName(`.${basename(path)}.tmp-`));
}

export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = siblingTemp(path);
  try {
    await writeFile(tmp, data);
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
export async function createFileOnce(path: string, data: string | Uint8Array): Promise<boolean> {
  if (await pathExists(path)) return false;
  const tmp = siblingTemp(path);
  await writeFile(tmp, data);
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

/**
 * Makes a finished tree read-only: files 0444 (0555 when any execute bit was set), directories
 * 0555, children before parents. Symlinks have no mode of their own and are left alone.
 */
export async function makeReadOnlyTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      await makeReadOnlyTree(path);
    } else if (entry.isFile()) {
      const { mode } = await stat(path);
      await chmod(path, mode & 0o111 ? 0o555 : 0o444);
    }
  }
  await chmod(dir, 0o555);
}

/**
 * Removes a tree that may be read-only (a finished package, a failed staging dir). Unlinking needs
 * write permission on the parent directory, which a non-root user lacks in a 0555 tree.
 */
export async function removeTree(path: string): Promise<void> {
  let info;
  try {
    info = await lstat(path);
  } catch (err) {
    if (errno(err) === 'ENOENT') return;
    throw err;
  }
  if (info.isDirectory()) {
    await chmod(path, 0o755);
    for (const name of await readdir(path)) await removeTree(join(path, name));
    await rm(path, { recursive: true, force: true });
  } else {
    await unlink(path).catch((err: unknown) => {
      if (errno(err) !== 'ENOENT') throw err;
    });
  }
}

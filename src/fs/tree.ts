import { chmodSync, lstatSync, readdirSync, rmSync } from 'node:fs';
import { chmod, lstat, readdir, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { errno } from '../errors.js';

/**
 * Whole trees: finished packages are made read-only so that nothing edits them in place, which
 * means removing one needs its write bits back first.
 */

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

/**
 * removeTree, synchronously: for a signal handler, which must finish before the process dies.
 */
export function removeTreeSync(path: string): void {
  let info;
  try {
    info = lstatSync(path);
  } catch (err) {
    if (errno(err) === 'ENOENT') return;
    throw err;
  }
  if (info.isDirectory()) {
    chmodSync(path, 0o755);
    for (const name of readdirSync(path)) removeTreeSync(join(path, name));
  }
  rmSync(path, { recursive: true, force: true });
}

/**
 * The space a file or tree takes on disk, as `du` counts it (allocated blocks, each inode once);
 * 0 when it is gone. For `ocipkg store list` and what `rm` and prune free.
 */
export async function diskUsage(path: string, seen = new Set<string>()): Promise<number> {
  let info;
  try {
    info = await lstat(path, { bigint: false });
  } catch (err) {
    if (errno(err) === 'ENOENT') return 0;
    throw err;
  }
  const inode = `${info.dev}:${info.ino}`;
  if (seen.has(inode)) return 0;
  seen.add(inode);
  let bytes = info.blocks * 512;
  if (info.isDirectory()) for (const name of await readdir(path)) bytes += await diskUsage(join(path, name), seen);
  return bytes;
}

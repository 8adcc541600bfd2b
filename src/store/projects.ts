import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { errno } from '../errors.js';
import { writeFileAtomicSync } from '../fs/atomic.js';
import { ownerRunning, uniqueName } from '../fs/names.js';
import { readLockfile, type Lockfile } from '../project/lockfile.js';

/**
 * The projects on this machine whose lockfiles pin packages in the store, so that prune keeps what
 * they pin (as pnpm's store keeps what the projects linked to it use):
 *
 *   projects/<sha256 of the project directory, 32 hex>.json     { "dir": "/abs/path/to/project" }
 *   projects/<same>.lock                                         held while a command edits the project (withProjectLock)
 *
 * `ocipkg install` (and `update`) records its project; prune reads each recorded project's
 * lockfile and forgets the project once its lockfile is gone. Not on the warm path.
 */

export interface ProjectRecord {
  dir: string;
}

const projectsDir = (root: string) => join(root, 'projects');
const projectKey = (dir: string) => createHash('sha256').update(dir).digest('hex').slice(0, 32);
const recordPath = (root: string, dir: string) => join(projectsDir(root), `${projectKey(dir)}.json`);

/** A lock file whose owner has not written its name yet is that young; older and nameless, it was left by a crash. */
const NAMELESS_LOCK_GRACE_MS = 10_000;

/**
 * Runs `fn` holding the project's lock, so that the commands that read package.json and write the
 * lockfile (`install`, `update`, `add`) take turns per project: two `ocipkg add` at once each wrote
 * package.json from what it had read, losing the other's declaration, and locked what the other had
 * declared. The lock is a file in the store naming its owner (fs/names.ts); one whose owner no
 * longer runs is taken over. `waiting` is called once if another command holds it.
 */
export async function withProjectLock<T>(root: string, dir: string, waiting: () => void, fn: () => Promise<T>): Promise<T> {
  const path = join(projectsDir(root), `${projectKey(resolve(dir))}.lock`);
  const mine = uniqueName('lock-');
  mkdirSync(projectsDir(root), { recursive: true });
  for (let told = false; ; ) {
    try {
      writeFileSync(path, mine, { flag: 'wx' });
      break;
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw err;
    }
    if (takeOverStale(path, mine)) continue;
    if (!told) waiting();
    told = true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  try {
    return await fn();
  } finally {
    if (readOwner(path) === mine) rmSync(path, { force: true });
  }
}

function readOwner(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if (errno(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Removes the lock at `path` when its owner is gone (true: try again). Moved aside before it is
 * removed, so of two processes finding it stale only one takes it; one that moved a lock a live
 * owner had taken meanwhile puts it back.
 */
function takeOverStale(path: string, mine: string): boolean {
  const owner = readOwner(path);
  if (owner === undefined) return true;
  const stale = owner === '' ? Date.now() - (statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? 0) > NAMELESS_LOCK_GRACE_MS : ownerRunning(owner) === false;
  if (!stale) return false;
  const aside = `${path}.${mine}`;
  try {
    renameSync(path, aside);
  } catch (err) {
    if (errno(err) === 'ENOENT') return true;
    throw err;
  }
  if (readOwner(aside) !== owner) renameSync(aside, path);
  else rmSync(aside, { force: true });
  return true;
}

export function recordProject(root: string, dir: string): void {
  const abs = resolve(dir);
  mkdirSync(projectsDir(root), { recursive: true });
  writeFileAtomicSync(recordPath(root, abs), `${JSON.stringify({ dir: abs }, null, 2)}\n`);
}

function recordedProjects(root: string): ProjectRecord[] {
  let names: string[];
  try {
    names = readdirSync(projectsDir(root));
  } catch (err) {
    if (errno(err) === 'ENOENT') return [];
    throw err;
  }
  return names.flatMap((name) => {
    if (!name.endsWith('.json') || name.startsWith('.')) return [];
    try {
      const doc = JSON.parse(readFileSync(join(projectsDir(root), name), 'utf8')) as { dir?: unknown };
      return typeof doc.dir === 'string' ? [{ dir: doc.dir }] : [];
    } catch {
      return [];
    }
  });
}

export interface PinnedProject extends ProjectRecord {
  lockfile: Lockfile;
}

/**
 * The recorded projects that still have a lockfile, with it; a project whose lockfile is gone is
 * forgotten here (unless `dryRun`). A lockfile that cannot be read is an error (readLockfile's): prune
 * cannot tell what it pins, and guessing would delete what a project needs.
 */
export function pinningProjects(root: string, options: { dryRun?: boolean } = {}): { projects: PinnedProject[]; forgotten: string[] } {
  const projects: PinnedProject[] = [];
  const forgotten: string[] = [];
  for (const record of recordedProjects(root)) {
    const lockfile = readLockfile(record.dir);
    if (lockfile) projects.push({ ...record, lockfile });
    else {
      forgotten.push(record.dir);
      if (!options.dryRun) rmSync(recordPath(root, record.dir), { force: true });
    }
  }
  return { projects, forgotten };
}

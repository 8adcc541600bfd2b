import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { errno } from '../errors.js';
import { writeFileAtomicSync } from '../fs/atomic.js';
import { readLockfile, type Lockfile } from '../project/lockfile.js';

/**
 * The projects on this machine whose lockfiles pin packages in the store, so that prune keeps what
 * they pin (as pnpm's store keeps what the projects linked to it use):
 *
 *   projects/<sha256 of the project directory, 32 hex>.json     { "dir": "/abs/path/to/project" }
 *
 * `ocipkg install` (and `update`) records its project; prune reads each recorded project's
 * lockfile and forgets the project once its lockfile is gone. Not on the warm path.
 */

export interface ProjectRecord {
  dir: string;
}

const projectsDir = (root: string) => join(root, 'projects');
const recordPath = (root: string, dir: string) => join(projectsDir(root), `${createHash('sha256').update(dir).digest('hex').slice(0, 32)}.json`);

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

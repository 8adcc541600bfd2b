import { isOcipkgError, type ErrorCode } from './errors.js';
import { openContent } from './open.js';
import { readLockfile } from './project/lockfile.js';
import { findProject, locateDeclared, projectStart, resolveAlias, type Project } from './project/manifest.js';
import { canonicalReference, parseReference, tagOrDigest } from './reference.js';
import { storeRoot } from './store/paths.js';
import { listRefs, readRef, type TagMove } from './store/refs.js';

/**
 * `ocipkg outdated`: which tags point elsewhere at their registry than where this machine has
 * them, as `npm outdated` lists dependencies with newer versions. A declared package is compared
 * with its lockfile pin (or, not locked yet, the store's record of its tag); outside a project,
 * every tag in the store is. Nothing is fetched or changed: `ocipkg update` moves pins, `ocipkg get`
 * a stored tag.
 */

export interface OutdatedImage extends TagMove {
  /** What `from` is: the project's lockfile pin, or the store's record of the tag. */
  where: 'lockfile' | 'store';
}

export interface OutdatedResult {
  /** Tags that moved (and declared ones never fetched or locked: `from` null). */
  outdated: OutdatedImage[];
  /** How many tags were asked about. */
  checked: number;
  /** Tags whose registry could not say, with the error's code and one line. */
  failures: { image: string; code: ErrorCode; message: string }[];
}

export interface OutdatedOptions {
  /** Images (or aliases of the project's) to check; default: the project's declared packages, else every stored tag. */
  images?: string[];
  start?: string;
  storeRoot?: string;
}

/** What to check: an image as the user knows it, where it is fetched from, and what this machine has. */
interface Candidate {
  image: string;
  from: string | null;
  where: 'lockfile' | 'store';
}

function candidates(root: string, images: string[] | undefined, project: Project | undefined): Candidate[] {
  const locked = project ? readLockfile(project.dir)?.packages : undefined;
  const known = (image: string): Candidate => {
    const pin = locked?.[image];
    if (pin) return { image, from: pin.digest, where: 'lockfile' };
    return { image, from: readRef(root, parseReference(image))?.digest ?? null, where: 'store' };
  };
  if (images && images.length > 0) return images.map((name) => known(canonicalReference(parseReference(resolveAlias(name, project)))));
  if (project?.hasSection) {
    const declared = new Set([...Object.values(project.packages).map((p) => p.image), ...Object.keys(locked ?? {})]);
    return [...declared].map(known);
  }
  return listRefs(root)
    .filter((record) => parseReference(record.reference).digest === undefined)
    .map((record) => ({ image: record.reference, from: record.digest, where: 'store' as const }));
}

export async function findOutdated(options: OutdatedOptions = {}): Promise<OutdatedResult> {
  const root = options.storeRoot ?? storeRoot();
  const project = findProject(options.start ?? projectStart());
  const result: OutdatedResult = { outdated: [], checked: 0, failures: [] };
  const checks = candidates(root, options.images, project).sort((a, b) => a.image.localeCompare(b.image));
  for (const check of checks) {
    const ref = parseReference(check.image);
    if (ref.digest !== undefined) continue; // a digest never moves
    result.checked++;
    try {
      const located = project ? locateDeclared(ref, project) : ref;
      const now = await openContent(located).resolve(tagOrDigest(located));
      if (now.digest !== check.from) result.outdated.push({ image: check.image, from: check.from, to: now.digest, where: check.where });
    } catch (err) {
      if (!isOcipkgError(err)) throw err;
      result.failures.push({ image: check.image, code: err.code, message: err.message });
    }
  }
  return result;
}

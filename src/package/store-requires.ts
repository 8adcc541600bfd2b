import { parseReference } from '../reference.js';
import { readInstalledPackage } from '../store/package.js';
import { readRef } from '../store/refs.js';

/** A file inside a package of an ocipkg store (store/paths.ts's layout): the store's root and the package's hex digest. */
const STORE_FILE = /^(.*)[\\/]packages[\\/]sha256[\\/]([0-9a-f]{64})[\\/]root[\\/]/;

/** Whether `path` lies in a package of an ocipkg store, as a build that linked it by path names it. */
export function isStoreFile(path: string): boolean {
  return STORE_FILE.test(path);
}

/**
 * Whether a file a producer's build linked from an ocipkg store belongs to a package that
 * `requires` (or what those require in turn) reaches in that store: consumers then link it through
 * the requirement, and the path need not be recorded. Read from the store the build used (the
 * file's own), without the network: a requirement that store never resolved reaches nothing.
 */
export function reachedByRequires(path: string, requires: readonly string[]): boolean {
  const match = STORE_FILE.exec(path);
  if (!match) return false;
  const [, root, hex] = match as unknown as [string, string, string];
  const reached = new Set<string>();
  const pending = [...requires];
  const seen = new Set<string>();
  for (let image = pending.pop(); image !== undefined; image = pending.pop()) {
    if (seen.has(image)) continue;
    seen.add(image);
    const ref = parseReference(image);
    const record = readRef(root, ref);
    const digests = [...(ref.digest ? [ref.digest] : []), ...(record ? [record.digest, ...Object.values(record.manifests)] : [])];
    for (const digest of digests) {
      reached.add(digest);
      pending.push(...(readInstalledPackage(root, digest)?.config.package?.requires ?? []));
    }
  }
  return reached.has(`sha256:${hex}`);
}

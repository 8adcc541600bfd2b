import { OcipkgError } from './errors.js';
import { canonicalReference, parseReference } from './reference.js';
import { readInstalledPackage, type InstalledPackage } from './store/package.js';
import { storeRoot } from './store/paths.js';
import { readRef } from './store/refs.js';
import { selectTriple } from './target.js';

export interface ResolveOptions {
  /** Target triple; default: npm_config_arch for a cross build, then `OCIPKG_TARGET`, then the host (see selectTriple). */
  target?: string;
  /** Never touch the network: the store must already hold the package. */
  offline?: boolean;
  /** Fetch again even when the store has the package under this reference. */
  force?: boolean;
  /** Store root; default `storeRoot()`. */
  storeRoot?: string;
  /** Progress lines (stderr, TTY) from the fetching path. */
  progress?: (message: string) => void;
}

/**
 * An image's package for one target, from the store when it is there, else fetched into it.
 *
 * The warm path (tag already recorded in the refs index, package complete) reads two small files and
 * imports nothing heavy: undici and tar load only on the cold path, through the dynamic import below.
 * That keeps `ocipkg-link`, run once per build step, close to a bare `node` start.
 */
export async function resolvePackage(image: string, options: ResolveOptions = {}): Promise<InstalledPackage> {
  const ref = parseReference(image);
  const target = selectTriple(options.target);
  const root = options.storeRoot ?? storeRoot();
  const offline = options.offline ?? process.env.OCIPKG_OFFLINE === '1';

  if (!options.force) {
    const record = readRef(root, ref);
    const manifestDigest = record?.manifests[target] ?? record?.manifests[''];
    const installed = manifestDigest === undefined ? undefined : readInstalledPackage(root, manifestDigest);
    if (installed) return installed;
  }
  if (offline) {
    throw new OcipkgError('ENOTFOUND', `${canonicalReference(ref)} (${target}) is not in the store and ocipkg is offline; run \`ocipkg get ${canonicalReference(ref)}\` with network first`);
  }
  const { fetchPackage } = await import('./fetch.js');
  return fetchPackage(ref, target, root, options.progress);
}

import { OcipkgError } from './errors.js';
import { pinnedReference, readLockfile } from './project/lockfile.js';
import { findProject, locateDeclared, resolveAlias } from './project/manifest.js';
import { canonicalReference, parseReference } from './reference.js';
import { readInstalledPackage, type InstalledPackage } from './store/package.js';
import { storeRoot } from './store/paths.js';
import { readRef } from './store/refs.js';
import { selectTriple } from './triple.js';

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
  /** Called once before the cold path loads the HTTP and tar stacks (the CLIs tune the process there). */
  beforeFetch?: () => void | Promise<void>;
  /** Follow the nearest project's aliases and lockfile pins (default true). */
  project?: boolean;
}

/**
 * An image's package for one target, from the store when it is there, else fetched into it.
 *
 * The warm path (tag already recorded in the refs index, package complete) reads two small files and
 * imports nothing heavy: undici and tar load only on the cold path, through the dynamic import below.
 * That keeps `ocipkg-link`, run once per build step, close to a bare `node` start.
 */
export async function resolvePackage(image: string, options: ResolveOptions = {}): Promise<InstalledPackage> {
  const target = selectTriple(options.target);
  // The nearest project, looked up once: its aliases name images, its lockfile pins them.
  const project = (options.project ?? true) ? findProject() : undefined;
  const named = parseReference(project ? resolveAlias(image, project) : image);
  // With a lockfile, the pinned manifest and never the tag: a moved tag still gives the locked bytes.
  const entry = project && named.digest === undefined ? readLockfile(project.dir)?.packages[canonicalReference(named)] : undefined;
  const pinned = entry && pinnedReference(named, entry, target, project!.dir);
  const ref = project ? locateDeclared(pinned ?? named, project) : (pinned ?? named);
  const root = options.storeRoot ?? storeRoot();
  const offline = options.offline ?? process.env.OCIPKG_OFFLINE === '1';

  if (!options.force) {
    const record = pinned ? undefined : readRef(root, ref);
    const manifestDigest = pinned ? pinned.digest : (record?.manifests[target] ?? record?.manifests['']);
    const installed = manifestDigest === undefined ? undefined : readInstalledPackage(root, manifestDigest);
    if (installed) return installed;
  }
  if (offline) {
    const fix = pinned ? `ocipkg install\` in ${project!.dir}` : `ocipkg get ${canonicalReference(ref)}\``;
    throw new OcipkgError('ENOTFOUND', `${canonicalReference(ref)} (${target}) is not in the store and ocipkg is offline; run \`${fix} with network first`);
  }
  await options.beforeFetch?.();
  const { fetchPackage } = await import('./fetch.js');
  return fetchPackage(ref, target, root, options.progress);
}

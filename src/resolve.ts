import { OcipkgError } from './errors.js';
import { coldPath } from './cold.js';
import { readLinkDescription, type LinkDescription } from './link/description.js';
import { pinnedReference, readLockfile } from './project/lockfile.js';
import { findProject, locateDeclared, resolveAlias } from './project/manifest.js';
import { trustRuleFor } from './project/trust.js';
import { canonicalReference, parseReference, repositoryOf, type ImageReference } from './reference.js';
import { walkRequirements, walkRequirementsNow, type Visited, type Walked } from './requirements.js';
import { readInstalledPackage, type InstalledPackage } from './store/package.js';
import { storeRoot } from './store/paths.js';
import { readRef, type TagMove } from './store/refs.js';
import { markUsed } from './store/usage.js';
import { verifiedWith } from './store/verified.js';
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
  /**
   * Ask the registry what a tag points at now even when the store has it, as `docker pull` does
   * (`ocipkg get`); a pinned or digest reference, and offline, never ask. Default: the store's answer.
   */
  refresh?: boolean;
  /** Told when a re-resolved tag points elsewhere than the store recorded. */
  moved?: (move: TagMove) => void;
}

/** A resolved package and what it links. */
export interface ResolvedPackage {
  pkg: InstalledPackage;
  description: LinkDescription;
}

/**
 * An image's package for one target, from the store when it is there, else fetched into it (and
 * then what it requires first, resolved with the same options: its generated files name them).
 *
 * The warm path (tag already recorded in the refs index, package complete) reads two small files and
 * imports nothing heavy: undici and tar load only on the cold path, through cold.ts. That keeps
 * `ocipkg-link`, run once per build step, close to a bare `node` start.
 */
export async function resolvePackage(image: string, options: ResolveOptions = {}): Promise<InstalledPackage> {
  return resolveOne(image, options, [], new Map());
}

/**
 * Every package `images` need, requirements included, in link order (requirements after what
 * needs them): the requirement walk, with `options` used for every package in it.
 */
export async function resolveWithRequirements(images: string[], options: ResolveOptions = {}): Promise<Walked<ResolvedPackage>[]> {
  return walkResolved(images, options, [], new Map());
}

/** Thrown through the synchronous walk where only the cold path could go on. */
const NEEDS_COLD_PATH = Symbol('needs the cold path');

/**
 * resolveWithRequirements from the store alone, synchronously: undefined as soon as a package would
 * have to be fetched (or described, which is the cold path's work too). Failures the store alone
 * can tell (offline and missing, a cycle, a conflict) throw as they do there.
 */
export function resolveStoredWithRequirements(images: string[], options: ResolveOptions = {}): Walked<ResolvedPackage>[] | undefined {
  try {
    return walkRequirementsNow(images, (image) => {
      const pkg = lookUp(image, options).stored ?? throwNeedsColdPath();
      return visited(pkg, readLinkDescription(pkg.dir) ?? throwNeedsColdPath());
    });
  } catch (err) {
    if (err === NEEDS_COLD_PATH) return undefined;
    throw err;
  }
}

function throwNeedsColdPath(): never {
  throw NEEDS_COLD_PATH;
}

/** A resolved package as the requirement walk sees it; its identity is the manifest. */
function visited(pkg: InstalledPackage, description: LinkDescription): Visited<ResolvedPackage> {
  return { value: { pkg, description }, requires: description.requires, identity: pkg.manifestDigest };
}

/**
 * What one run (a resolvePackage, resolveWithRequirements or load) has resolved so far, by image:
 * each image is resolved once per run (a tag asked for once under `refresh`), however many of the
 * walks nested in the run's fetches meet it.
 */
type Resolved = Map<string, Visited<ResolvedPackage>>;

/** The walk in which every visit resolves its image with the caller's options. */
function walkResolved(images: string[], options: ResolveOptions, chain: readonly string[], resolved: Resolved): Promise<Walked<ResolvedPackage>[]> {
  return walkRequirements(
    images,
    async (image, path) => {
      const pkg = await resolveOne(image, options, path, resolved);
      return visited(pkg, await linkDescriptionOf(pkg));
    },
    { chain, answers: resolved },
  );
}

/** Where an image leads in the store, and what fetching it needs when the store cannot serve it. */
interface Lookup {
  /** The package the store serves for it (already marked used). */
  stored?: InstalledPackage;
  /** As named, aliases followed. */
  named: ImageReference;
  /** What to fetch: the lockfile's pin, or the reference, located against the project. */
  ref: ImageReference;
  trust: ReturnType<typeof trustRuleFor>;
  root: string;
  triple: string;
}

/**
 * The store's answer for an image, without the network; offline, a package the store cannot serve
 * is an error here. The warm path (tag already recorded in the refs index, package complete) reads
 * two small files and imports nothing heavy.
 */
function lookUp(image: string, options: ResolveOptions): Lookup {
  const triple = selectTriple(options.target);
  // The nearest project, looked up once: its aliases name images, its lockfile pins them.
  const project = (options.project ?? true) ? findProject() : undefined;
  const named = parseReference(project ? resolveAlias(image, project) : image);
  // With a lockfile, the pinned manifest and never the tag: a moved tag still gives the locked bytes.
  const entry = project && named.digest === undefined ? readLockfile(project.dir)?.packages[canonicalReference(named)] : undefined;
  const pinned = entry && pinnedReference(named, entry, triple, project!.dir);
  const ref = project ? locateDeclared(pinned ?? named, project) : (pinned ?? named);
  const root = options.storeRoot ?? storeRoot();
  const offline = options.offline ?? process.env.OCIPKG_OFFLINE === '1';

  // The policy of the nearest project applies even where its aliases and pins do not (install).
  const trust = trustRuleFor(canonicalReference(ref), project ?? findProject());
  const lookup = { named, ref, trust, root, triple };
  const refresh = (options.refresh ?? false) && !offline && !pinned && ref.digest === undefined;
  if (!options.force && !refresh) {
    const record = pinned ? undefined : readRef(root, ref);
    // A reference pinning a manifest's digest names its package whatever name fetched it.
    const manifestDigest = pinned ? pinned.digest : (record?.manifests[triple] ?? record?.manifests[''] ?? ref.digest);
    const found = manifestDigest === undefined ? undefined : readInstalledPackage(root, manifestDigest);
    const installed = found && (found.target === undefined || found.target === triple) ? found : undefined;
    // Under a policy, only a package verified with one of its keys: a changed policy verifies again.
    const trusted = !trust || (installed !== undefined && verifiedWith(root, installed.manifestDigest, trust.keys.map((k) => k.pem)) !== undefined);
    if (installed && trusted) {
      markUsed(root, installed.manifestDigest);
      return { ...lookup, stored: installed };
    }
    if (installed && offline) {
      throw new OcipkgError('EUNTRUSTED', `${canonicalReference(ref)} is in the store but not verified with a key ${trust!.declaredIn} trusts for "${trust!.prefix}", and ocipkg is offline; run once with network to verify it`);
    }
  }
  if (offline) {
    const fix = pinned ? `ocipkg install\` in ${project!.dir}` : `ocipkg get --target ${triple} ${canonicalReference(ref)}\``;
    throw new OcipkgError('ENOTFOUND', `${canonicalReference(ref)} (${triple}) is not in the store and ocipkg is offline; run \`${fix} with network first`);
  }
  return lookup;
}

/** `resolvePackage` inside a requirement walk: `chain` is the requirements that led here. */
async function resolveOne(image: string, options: ResolveOptions, chain: readonly string[], resolved: Resolved): Promise<InstalledPackage> {
  const { stored, named, ref, trust, root, triple } = lookUp(image, options);
  if (stored) return stored;
  await options.beforeFetch?.();
  const { fetchPackage } = await coldPath();
  const pkg = await fetchPackage(ref, triple, root, {
    ...(options.progress && { progress: options.progress }),
    requirementNames: requirementNamesWithin(options, chain.at(-1) === canonicalReference(named) ? chain : [...chain, canonicalReference(named)], resolved),
    ...(trust && { trust }),
    ...(options.moved && { moved: options.moved }),
    ...(options.force && { force: true }),
  });
  markUsed(root, pkg.manifestDigest);
  return pkg;
}

/**
 * How the cold path learns the package names of what a package requires (its generated .pc and
 * CMake files name them): the same walk, with the same options, continuing the chain so that a
 * cycle through packages not yet in the store is caught too, and sharing what the run resolved.
 */
export function requirementNamesWithin(options: ResolveOptions, chain: readonly string[], resolved: Resolved = new Map()): (requires: string[]) => Promise<string[]> {
  return async (requires) => {
    const walked = await walkResolved(requires, options, chain, resolved);
    // One package per repository, by the walk's rule: the name of each required image is its repository's.
    const names = new Map(walked.map((entry) => [repositoryOf(parseReference(entry.image)), entry.value.description.name]));
    return requires.map((image) => names.get(repositoryOf(parseReference(image)))!);
  };
}

/**
 * An installed package's link description: the stored one, or for a package installed before
 * descriptions were stored, worked out now without writing (the directory is read-only).
 */
export async function linkDescriptionOf(pkg: InstalledPackage): Promise<LinkDescription> {
  const stored = readLinkDescription(pkg.dir);
  if (stored) return stored;
  const { describePackage } = await coldPath();
  return describePackage(pkg.dir, pkg);
}

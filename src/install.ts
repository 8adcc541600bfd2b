import { limited, packageFetchesAtOnce } from './concurrency.js';
import { OcipkgError } from './errors.js';
import { imageTriples } from './fetch.js';
import { openSource } from './open.js';
import { canonicalReference, formatReference, parseReference, tagOrDigest, type ImageReference } from './reference.js';
import { linkDescriptionOf, resolvePackage } from './resolve.js';
import { walkRequirements } from './requirements.js';
import { trustRuleFor } from './project/trust.js';
import { keyId, readPublicKey } from './sign/keys.js';
import { storeRoot } from './store/paths.js';
import { recordProject } from './store/projects.js';
import { writeStoreIndex } from './store/index-json.js';
import { readRef, writeRef, type TagMove } from './store/refs.js';
import { verifiedWith } from './store/verified.js';
import { isoTimestamp } from './timestamp.js';
import { selectTriple } from './triple.js';
import { formatLockfile, pinnedReference, readLockfile, writeLockfile, type LockEntry, type Lockfile } from './project/lockfile.js';
import { findProject, locateDeclared, projectStart, resolveAlias, type Project } from './project/manifest.js';

/**
 * `ocipkg install` and `ocipkg update`: resolve every package the project declares, and the
 * packages those require, to digests; install the host's build of each into the store; and write
 * `ocipkg-lock.json`. Locked packages keep their pins: a tag that has moved since is reported, not
 * followed, until `update` moves it.
 */

export interface InstallProjectOptions {
  /** Where to look for the project; default OCIPKG_PROJECT_DIR, else the working directory. */
  start?: string;
  /** Fail when the lockfile is missing or would change, instead of writing it. */
  frozen?: boolean;
  /** Use the lockfile and the store only; never the network. */
  offline?: boolean;
  /** Packages (aliases or images) whose pins move to what their tags point at now; `true`: all. */
  update?: string[] | true;
  /** Target triple installed (every target is locked); default as for ocipkg-link. */
  target?: string;
  storeRoot?: string;
  /** One line per thing worth telling the user (drift) that does not stop the install. */
  warn?: (message: string) => void;
  progress?: (message: string) => void;
}

export interface InstallResult {
  project: Project;
  lockfile: Lockfile;
  /** Whether ocipkg-lock.json was (re)written. */
  written: boolean;
  /** Images whose tag now points elsewhere than the lockfile says. */
  drifted: string[];
  /** The pins this run moved (`update`): from the locked digest to what the tag points at now. */
  moved: TagMove[];
}


const canonical = (image: string) => canonicalReference(parseReference(image));

function frozenMismatch(project: Project, why: string): OcipkgError {
  return new OcipkgError('ELOCKFILE', `ocipkg-lock.json in ${project.dir} does not match package.json: ${why} (frozen lockfile; run \`ocipkg install\` without --frozen-lockfile or CI=true to update it)`);
}

/** A fresh lock entry: what the tag points at now, and the manifest of every target it lists. */
async function lockImage(ref: ImageReference): Promise<LockEntry> {
  const { root, manifests } = await imageTriples(ref);
  return { digest: root.digest, mediaType: root.mediaType, manifests, requires: [] };
}

/**
 * Offline, a pin can move only to what the store's refs index records for the tag (what the last
 * `get` or `install` with network saw), and holds only the targets the store has.
 */
function lockFromStore(image: string, ref: ImageReference, root: string): LockEntry {
  const record = ref.digest === undefined ? readRef(root, ref) : undefined;
  if (!record) throw new OcipkgError('ENOTFOUND', `${image}: the store has no record of its tag and ocipkg is offline; run \`ocipkg update\` with network`);
  return { digest: record.digest, mediaType: record.mediaType, manifests: record.manifests, requires: [] };
}

/**
 * Records in the store where a tag pointed when it was locked just now, as `get` records a tag it
 * resolves: the package is fetched by its pinned digest, and without this the store kept the tag's
 * old target after an `update` (`ocipkg-link TAG` outside the project still linked the old build)
 * and named a freshly installed package by its digest alone (`ocipkg rm TAG` found nothing).
 */
function recordTag(ref: ImageReference, entry: LockEntry, manifestDigest: string, root: string): boolean {
  if (ref.digest !== undefined) return false;
  const triple = Object.keys(entry.manifests).find((key) => entry.manifests[key] === manifestDigest);
  if (triple === undefined) return false;
  writeRef(root, { reference: canonicalReference(ref), digest: entry.digest, mediaType: entry.mediaType, manifests: { [triple]: manifestDigest }, updated: isoTimestamp() });
  return true;
}

/** Whether the tag still points at the locked digest; a registry that cannot be asked is reported, not fatal: the pins still hold. */
async function checkDrift(image: string, ref: ImageReference, entry: LockEntry, warn: (message: string) => void): Promise<boolean> {
  if (ref.digest !== undefined) return false;
  try {
    const now = await openSource(ref).resolve(tagOrDigest(ref));
    if (now.digest === entry.digest) return false;
    warn(`${image} has moved: locked at ${entry.digest}, the tag now points at ${now.digest}; keeping the lock (run \`ocipkg update ${image}\` to move it)`);
    return true;
  } catch (err) {
    warn(`could not check ${image} for drift: ${(err as Error).message}`);
    return false;
  }
}

/**
 * The id of the trusted key that verified `manifestDigest`, when the project's policy covers
 * `image` (resolvePackage has verified it by now and recorded the key in the store).
 */
function verifiedBy(image: string, manifestDigest: string, root: string, project: Project): string | undefined {
  const rule = trustRuleFor(image, project);
  if (!rule) return undefined;
  const pem = verifiedWith(root, manifestDigest, rule.keys.map((k) => k.pem));
  return pem && keyId(readPublicKey(pem));
}

export async function installProject(options: InstallProjectOptions = {}): Promise<InstallResult> {
  const start = options.start ?? projectStart();
  const project = findProject(start);
  if (!project) throw new OcipkgError('EINPUT', `no package.json in ${start} or above`);
  if (!project.hasSection) throw new OcipkgError('EINPUT', `${project.dir}/package.json has no "ocipkg" section (declare packages in "ocipkg.packages")`);
  const existing = readLockfile(project.dir);
  if (options.frozen && !existing) throw frozenMismatch(project, 'there is no lockfile');
  const offline = options.offline ?? process.env.OCIPKG_OFFLINE === '1';
  const triple = selectTriple(options.target);
  const root = options.storeRoot ?? storeRoot();
  const warn = options.warn ?? (() => {});
  const moving = options.update === true ? undefined : new Set((options.update ?? []).map((name) => canonical(resolveAlias(name, project))));
  const movesAll = options.update === true;

  const next: Lockfile = { packages: {} };
  /** Whether a tag locked just now was recorded in the store's refs (recordTag): index.json then follows. */
  let tagsRecorded = false;
  const drifted: string[] = [];
  const moved: TagMove[] = [];

  // Keyed as written (a lock entry per canonical reference); the identity for one version per
  // repository is that reference, so two tags of one repository conflict even when they name one
  // build today: the lockfile must not hold two pins that may part tomorrow.
  /** An image pinned (locked now, or as locked, checked for drift) and its package in the store. */
  const pinAndFetch = async (image: string) => {
    // Fetched from where a relative `oci:` path in package.json really is.
    const located = locateDeclared(parseReference(image), project);
    const locked = existing?.packages[image];
    let entry = movesAll || moving?.has(image) ? undefined : locked;
    let drift = false;
    let resolvedNow = false;
    if (entry === undefined) {
      if (options.frozen) throw frozenMismatch(project, `${image} is not locked`);
      if (offline && !(movesAll || moving?.has(image))) throw new OcipkgError('ENOTFOUND', `${image} is not in ocipkg-lock.json and ocipkg is offline; run \`ocipkg install\` with network`);
      options.progress?.(`locking ${image}`);
      entry = offline ? lockFromStore(image, located, root) : await lockImage(located);
      resolvedNow = !offline;
      if (locked && locked.digest !== entry.digest) moved.push({ image, from: locked.digest, to: entry.digest });
    } else if (!offline) {
      drift = await checkDrift(image, located, entry, warn);
    }
    const pkg = await resolvePackage(formatReference(pinnedReference(located, entry, triple, project.dir)), {
      target: triple, offline, project: false, progress: options.progress, storeRoot: root,
    });
    if (resolvedNow && recordTag(located, entry, pkg.manifestDigest, root)) tagsRecorded = true;
    return { entry, drift, pkg };
  };
  // The declared packages are fetched side by side (packageFetchesAtOnce says how many). The walk
  // below still visits them, and what they require, one by one in declaration order, so the
  // lockfile, the drift list and the first error are what a sequential install gives.
  const declared = Object.values(project.packages).map((d) => d.image);
  const fetchLimited = limited(packageFetchesAtOnce(), pinAndFetch);
  const started = new Map(declared.map((image) => [canonical(image), fetchLimited(canonical(image))]));
  for (const pending of started.values()) pending.catch(() => {});

  // Keyed as written (a lock entry per canonical reference); the identity for one version per
  // repository is that reference, so two tags of one repository conflict even when they name one
  // build today: the lockfile must not hold two pins that may part tomorrow.
  await walkRequirements(declared, async (image) => {
    const { entry, drift, pkg } = await (started.get(image) ?? pinAndFetch(image));
    if (drift) drifted.push(image);
    const requires = (await linkDescriptionOf(pkg)).requires.map(canonical);
    const { signedBy: _previous, ...pin } = entry;
    const signedBy = verifiedBy(image, pkg.manifestDigest, root, project);
    next.packages[image] = { ...pin, requires, ...(signedBy !== undefined && { signedBy }) };
    return { value: undefined, requires, identity: image };
  });

  const unknown = [...(moving ?? [])].filter((image) => !next.packages[image]);
  if (unknown.length > 0) throw new OcipkgError('EINPUT', `${unknown.join(', ')}: not a package declared in ${project.dir}/package.json or required by one`);

  const text = formatLockfile(next);
  const changed = existing === undefined || formatLockfile(existing) !== text;
  if (changed && options.frozen) {
    const stale = Object.keys(existing!.packages).filter((image) => !next.packages[image]);
    throw frozenMismatch(project, stale.length > 0 ? `${stale.join(', ')} no longer needed` : 'locked requirements differ');
  }
  if (changed) writeLockfile(project.dir, next);
  if (tagsRecorded) await writeStoreIndex(root);
  // So that `ocipkg store prune` keeps what this lockfile pins, for as long as it exists.
  recordProject(root, project.dir);
  return { project, lockfile: next, written: changed, drifted, moved };
}

import { OcipkgError } from './errors.js';
import { linkDescriptionOf } from './link/description.js';
import { canonicalReference, formatReference, parseReference, tagOrDigest, repositoryOf, type ImageReference } from './reference.js';
import { resolvePackage } from './resolve.js';
import { selectTriple } from './triple.js';
import { formatLockfile, pinnedReference, readLockfile, writeLockfile, type LockEntry, type Lockfile } from './project/lockfile.js';
import { findProject, locateDeclared, projectStart, resolveAlias, type Project } from './project/manifest.js';

/**
 * `ocipkg install` and `ocipkg update`: resolve every package the project declares, and the
 * packages those require, to digests; install the host's build of each into the store; and write
 * `ocipkg-lock.json`. Locked packages keep their pins: a tag that has moved since is reported, not
 * followed, until `update` moves it.
 */

export interface InstallOptions {
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
}


const canonical = (image: string) => canonicalReference(parseReference(image));

function frozenMismatch(project: Project, why: string): OcipkgError {
  return new OcipkgError('ELOCKFILE', `ocipkg-lock.json in ${project.dir} does not match package.json: ${why} (frozen lockfile; run \`ocipkg install\` without --frozen-lockfile or CI=true to update it)`);
}

/** A fresh lock entry: what the tag points at now, and the manifest of every target it lists. */
async function lockImage(ref: ImageReference): Promise<LockEntry> {
  const { imageTriples } = await import('./fetch.js');
  const { root, manifests } = await imageTriples(ref);
  return { digest: root.digest, mediaType: root.mediaType, manifests, requires: [] };
}

/** Whether the tag still points at the locked digest; a registry that cannot be asked is reported, not fatal: the pins still hold. */
async function checkDrift(image: string, ref: ImageReference, entry: LockEntry, warn: (message: string) => void): Promise<boolean> {
  if (ref.digest !== undefined) return false;
  try {
    const { openContent } = await import('./open.js');
    const now = await openContent(ref).resolve(tagOrDigest(ref));
    if (now.digest === entry.digest) return false;
    warn(`${image} has moved: locked at ${entry.digest}, the tag now points at ${now.digest}; keeping the lock (run \`ocipkg update ${image}\` to move it)`);
    return true;
  } catch (err) {
    warn(`could not check ${image} for drift: ${(err as Error).message}`);
    return false;
  }
}

export async function installProject(options: InstallOptions = {}): Promise<InstallResult> {
  const start = options.start ?? projectStart();
  const project = findProject(start);
  if (!project) throw new OcipkgError('EINPUT', `no package.json with an "ocipkg" section in ${start} or above`);
  const existing = readLockfile(project.dir);
  if (options.frozen && !existing) throw frozenMismatch(project, 'there is no lockfile');
  const offline = options.offline ?? process.env.OCIPKG_OFFLINE === '1';
  const target = selectTriple(options.target);
  const warn = options.warn ?? (() => {});
  const moving = options.update === true ? undefined : new Set((options.update ?? []).map((name) => canonical(resolveAlias(name, project))));
  const movesAll = options.update === true;

  const next: Lockfile = { packages: {} };
  const drifted: string[] = [];
  const repositories = new Map<string, string>();
  const visiting = new Set<string>();

  const visit = async (image: string): Promise<void> => {
    if (visiting.has(image)) throw new OcipkgError('EMANIFEST', `${image} requires itself (through its requires)`);
    if (next.packages[image]) return;
    const ref = parseReference(image);
    // Keyed as written; fetched from where a relative `oci:` path in package.json really is.
    const located = locateDeclared(ref, project);
    const other = repositories.get(repositoryOf(ref));
    if (other !== undefined && other !== image) {
      throw new OcipkgError('ECONFLICT', `conflicting versions of ${repositoryOf(ref)}: both ${other} and ${image} are needed; declare or require one version`);
    }
    repositories.set(repositoryOf(ref), image);
    visiting.add(image);

    const locked = existing?.packages[image];
    let entry = movesAll || moving?.has(image) ? undefined : locked;
    if (entry === undefined) {
      if (options.frozen) throw frozenMismatch(project, `${image} is not locked`);
      if (offline) throw new OcipkgError('ENOTFOUND', `${image} is not in ocipkg-lock.json and ocipkg is offline; run \`ocipkg install\` with network`);
      options.progress?.(`locking ${image}`);
      entry = await lockImage(located);
    } else if (!offline && (await checkDrift(image, located, entry, warn))) {
      drifted.push(image);
    }

    const pkg = await resolvePackage(formatReference(pinnedReference(located, entry, target, project.dir)), {
      target, offline, project: false, progress: options.progress, ...(options.storeRoot !== undefined && { storeRoot: options.storeRoot }),
    });
    const description = await linkDescriptionOf(pkg);
    const requires = description.requires.map(canonical);
    next.packages[image] = { ...entry, requires };
    for (const required of requires) await visit(required);
    visiting.delete(image);
  };

  for (const declared of Object.values(project.packages)) await visit(canonical(declared.image));
  const unknown = [...(moving ?? [])].filter((image) => !next.packages[image]);
  if (unknown.length > 0) throw new OcipkgError('EINPUT', `${unknown.join(', ')}: not a package declared in ${project.dir}/package.json or required by one`);

  const text = formatLockfile(next);
  const changed = existing === undefined || formatLockfile(existing) !== text;
  if (changed && options.frozen) {
    const stale = Object.keys(existing!.packages).filter((image) => !next.packages[image]);
    throw frozenMismatch(project, stale.length > 0 ? `${stale.join(', ')} no longer needed` : 'locked requirements differ');
  }
  if (changed) writeLockfile(project.dir, next);
  return { project, lockfile: next, written: changed, drifted };
}

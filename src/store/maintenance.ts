import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readlink, rename, stat, unlink } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { errno, machineFailure, OcipkgError } from '../errors.js';
import { isDigest } from '../oci/digest.js';
import { VerifyingStream } from '../oci/verify.js';
import { LAYER_TYPES } from '../oci/mediatypes.js';
import type { Descriptor } from '../oci/types.js';
import { canonicalReference, parseReference, type ImageReference } from '../reference.js';
import { badLink, createExtractor } from '../fs/extract.js';
import { pathExists } from '../fs/atomic.js';
import { diskUsage, removeTree } from '../fs/tree.js';
import { isSiblingTemp, ownerRunning, uniqueName } from '../fs/names.js';
import { readInstalledPackage } from './package.js';
import { PACKAGE_ROOT_DIR, STAGING_PREFIX, storePaths } from './paths.js';
import { keepPartials } from './partial.js';
import { keepRefTargets, listRefs, readRef, removeRef, type RefRecord } from './refs.js';
import { pinningProjects, type PinnedProject } from './projects.js';
import { forgetUsed, lastUsed } from './usage.js';
import { writeStoreIndex } from './index-json.js';
import { forgetVerified } from './verified.js';

/**
 * Store maintenance: `prune` (garbage collection) and `verify` (re-hash and repair).
 *
 * Both run while other ocipkg processes fetch into the same store, with no lock to take: fetchers
 * never take one either, and a warm `ocipkg-link` must not wait on a prune. Safety comes from what
 * a fetch does (see install.ts): it works in `tmp/<name>-<pid>-<random>`, publishes blobs by
 * rename, renames a complete package into place, and only then records the ref. So:
 *   - a staging entry is abandoned only when its process is gone (or it is very old);
 *   - content younger than the grace period (`--min-age`, GRACE_MS by default) is never pruned: it
 *     may be a fetch's, published but not yet referenced; a package counts as young when it was
 *     installed or used (usage.ts) within it;
 *   - a package is moved aside before deletion and put back if it was used meanwhile.
 * A fetch that reuses a blob orphaned longer ago than GRACE_MS can still lose it mid-install: that
 * fetch fails cleanly (nothing is installed unverified) and the next run fetches it again.
 */

/** Recently written content may belong to a fetch that has not recorded its ref yet. */
export const GRACE_MS = 10 * 60_000;
/** A staging entry this old is abandoned even if a process with its pid exists (pids are reused). */
const STAGING_MAX_AGE_MS = 24 * 60 * 60_000;

export interface PruneOptions {
  /** List what would go, remove nothing. */
  dryRun?: boolean;
  /**
   * Keep what was used (or installed) more recently than this; default GRACE_MS, which also keeps
   * a concurrent fetch's content that is published but not yet installed. 0 keeps only lockfile pins.
   */
  graceMs?: number;
}

export interface PruneResult {
  /** Manifest digests of the packages removed. */
  packages: string[];
  blobs: string[];
  /** References removed because every package they named went. */
  refs: string[];
  /** Paths (relative to the store) of abandoned staging entries and temp files. */
  staging: string[];
  /** Recorded projects forgotten because their lockfile is gone. */
  forgottenProjects: string[];
  /** Space freed on disk (that would be, in a dry run). */
  bytes: number;
}

async function names(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (errno(err) === 'ENOENT') return [];
    throw err;
  }
}

/** mtime in ms, or undefined when the path is gone (removed by another process meanwhile). */
async function modified(path: string): Promise<number | undefined> {
  try {
    return (await lstat(path)).mtimeMs;
  } catch (err) {
    if (errno(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** Whether a temp entry's owner is gone: its pid is not running here, or it is older than any fetch. */
function abandoned(name: string, mtimeMs: number, now: number, graceMs: number): boolean {
  const age = now - mtimeMs;
  const running = ownerRunning(name);
  if (running === undefined) return age > graceMs;
  return !running || age > STAGING_MAX_AGE_MS;
}

/** Every digest a ref names: what it pointed at (maybe an index) and the manifest for each target. */
function referencedDigests(refs: RefRecord[]): Set<string> {
  return new Set(refs.flatMap((r) => [r.digest, ...Object.values(r.manifests)]));
}

/** The blobs a package was installed from: its manifest, config and layers. */
function packageBlobs(root: string, manifestDigest: string): string[] {
  const pkg = readInstalledPackage(root, manifestDigest);
  if (!pkg) return [manifestDigest];
  return [manifestDigest, pkg.manifest.config.digest, ...pkg.manifest.layers.map((l) => l.digest)];
}

/**
 * Moves a package directory out of `packages/` (one rename, so readers see it complete or not at
 * all), then deletes it. Returns false when it was gone already or `keep()` says it is wanted after
 * all, in which case it is put back.
 */
async function removePackage(root: string, digest: string, keep: () => boolean): Promise<boolean> {
  const dir = storePaths.package(root, digest);
  const trash = join(storePaths.tmp(root), uniqueName('prune-'));
  await mkdir(storePaths.tmp(root), { recursive: true });
  try {
    // Moving a directory rewrites its `..` entry, which needs write permission on it.
    await chmod(dir, 0o755);
    await rename(dir, trash);
  } catch (err) {
    if (errno(err) === 'ENOENT') return false;
    throw err;
  }
  if (keep()) {
    try {
      await rename(trash, dir);
      await chmod(dir, 0o555);
      return false;
    } catch (err) {
      // A fetch installed it again meanwhile: its copy stands, this one goes.
      if (!['ENOTEMPTY', 'EEXIST'].includes(errno(err) ?? '')) throw err;
    }
  }
  await removeTree(trash);
  return true;
}

async function unlinkIfPresent(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (err) {
    if (errno(err) === 'ENOENT') return false;
    throw err;
  }
}

/** Sibling temp files left by killed writers of refs and index.json. */
async function staleTempFiles(root: string, now: number, graceMs: number): Promise<string[]> {
  const found: string[] = [];
  const visit = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (errno(err) === 'ENOENT') return;
      throw err;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await visit(path);
      else if (isSiblingTemp(entry.name)) {
        const mtime = await modified(path);
        if (mtime !== undefined && abandoned(entry.name, mtime, now, graceMs)) found.push(path);
      }
    }
  };
  await visit(storePaths.refs(root));
  for (const name of await names(root)) {
    const mtime = isSiblingTemp(name) ? await modified(join(root, name)) : undefined;
    if (mtime !== undefined && abandoned(name, mtime, now, graceMs)) found.push(join(root, name));
  }
  return found;
}

/** Every digest the lockfiles of recorded projects pin: what each tag pointed at and each target's manifest. */
function pinnedDigests(projects: PinnedProject[]): Set<string> {
  return new Set(projects.flatMap((p) => Object.values(p.lockfile.packages).flatMap((e) => [e.digest, ...Object.values(e.manifests)])));
}

/** When a package was last of use: its last recorded use, else when it was installed (its directory's mtime). */
async function lastUseOf(root: string, digest: string): Promise<number | undefined> {
  const installed = await modified(storePaths.package(root, digest));
  if (installed === undefined) return undefined;
  return Math.max(installed, lastUsed(root, digest) ?? 0);
}

/** A package is gone: so are the records about it. */
function forgetPackage(root: string, digest: string): void {
  forgetVerified(root, digest);
  forgetUsed(root, digest);
}

/**
 * After packages went: refs whose every target's package is gone are removed, and refs that lost
 * some targets keep the others. `gone` says whether a manifest's package is (or, in a dry run,
 * would be) gone. Returns the references removed.
 */
function dropRefsTo(root: string, gone: (digest: string) => boolean, dryRun: boolean): string[] {
  const removed: string[] = [];
  for (const record of listRefs(root)) {
    const targets = Object.entries(record.manifests).filter(([, digest]) => !gone(digest)).map(([target]) => target);
    if (targets.length === Object.keys(record.manifests).length) continue;
    if (targets.length === 0) {
      if (!dryRun) removeRef(root, parseReference(record.reference));
      removed.push(record.reference);
    } else if (!dryRun) {
      keepRefTargets(root, record, targets);
    }
  }
  return removed;
}

/**
 * Unlinks the blobs in `candidates` that no package left in the store and no ref needs (nor
 * `alsoNeeded`), unless younger than `graceMs`. Returns those removed, with the space they took.
 */
async function freeBlobs(root: string, candidates: Iterable<string>, options: { graceMs: number; dryRun: boolean; gonePackages: Set<string>; alsoNeeded?: Set<string> }): Promise<{ blobs: string[]; bytes: number }> {
  const needed = new Set([...referencedDigests(listRefs(root)), ...(options.alsoNeeded ?? [])]);
  for (const hex of await names(storePaths.packages(root))) {
    const digest = `sha256:${hex}`;
    if (isDigest(digest) && !options.gonePackages.has(digest)) for (const blob of packageBlobs(root, digest)) needed.add(blob);
  }
  const now = Date.now();
  const result = { blobs: [] as string[], bytes: 0 };
  for (const digest of new Set(candidates)) {
    if (needed.has(digest) || !isDigest(digest)) continue;
    const path = storePaths.blob(root, digest);
    const mtime = await modified(path);
    if (mtime === undefined || now - mtime < options.graceMs) continue;
    const bytes = await diskUsage(path);
    if (options.dryRun || (await unlinkIfPresent(path))) {
      result.blobs.push(digest);
      result.bytes += bytes;
    }
  }
  return result;
}

/**
 * Removes every package that no lockfile of a recorded project pins and that was not used within
 * `graceMs` (so `graceMs: 0` keeps only what lockfiles pin), the refs left pointing at nothing,
 * blobs nothing left needs, and abandoned staging entries and temp files; then rewrites index.json
 * to match. A recorded project whose lockfile is gone is forgotten.
 */
export async function pruneStore(root: string, options: PruneOptions = {}): Promise<PruneResult> {
  const graceMs = options.graceMs ?? GRACE_MS;
  const dryRun = options.dryRun ?? false;
  const now = Date.now();
  const result: PruneResult = { packages: [], blobs: [], refs: [], staging: [], forgottenProjects: [], bytes: 0 };

  // 1. Abandoned staging first: a dead fetch's half-written package is nobody's.
  const tmp = storePaths.tmp(root);
  for (const name of await names(tmp)) {
    const path = join(tmp, name);
    const mtime = await modified(path);
    if (mtime === undefined || !abandoned(name, mtime, now, graceMs)) continue;
    // A killed install's downloads stay, as partials the next get continues (until they are old).
    if (!dryRun && name.startsWith(STAGING_PREFIX)) keepPartials(root, join(path, 'blobs'));
    result.bytes += await diskUsage(path);
    if (!dryRun) await removeTree(path);
    result.staging.push(relative(root, path));
  }
  for (const path of await staleTempFiles(root, now, graceMs)) {
    if (dryRun || (await unlinkIfPresent(path))) result.staging.push(relative(root, path));
  }

  // 2. Packages neither pinned nor recently used.
  const { projects, forgotten } = pinningProjects(root, { dryRun });
  result.forgottenProjects = forgotten;
  const pinned = pinnedDigests(projects);
  const recent = async (digest: string) => {
    const used = await lastUseOf(root, digest);
    return used !== undefined && now - used < graceMs;
  };
  const gone = new Set<string>();
  const candidates: string[] = [];
  for (const hex of await names(storePaths.packages(root))) {
    const digest = `sha256:${hex}`;
    if (!isDigest(digest) || pinned.has(digest) || (await recent(digest))) continue;
    const blobs = packageBlobs(root, digest);
    const bytes = await diskUsage(storePaths.package(root, digest));
    // Used again while this ran (a lookup's mark lands after the check above): put back.
    if (dryRun || (await removePackage(root, digest, () => Date.now() - (lastUsed(root, digest) ?? 0) < graceMs))) {
      if (!dryRun) forgetPackage(root, digest);
      gone.add(digest);
      candidates.push(...blobs);
      result.packages.push(digest);
      result.bytes += bytes;
    }
  }

  // 3. Refs to nothing, then blobs nothing needs. Every blob is a candidate: one orphaned by an
  // earlier rm or tag move goes too, unless young (it may be a fetch's, published but not yet installed).
  result.refs = dropRefsTo(root, (digest) => gone.has(digest) || !readInstalledPackage(root, digest), dryRun);
  const blobDir = join(root, 'blobs', 'sha256');
  const freed = await freeBlobs(root, [...candidates, ...(await names(blobDir)).map((hex) => `sha256:${hex}`)], { graceMs, dryRun, gonePackages: gone, alsoNeeded: pinned });
  result.blobs = freed.blobs;
  result.bytes += freed.bytes;

  if (!dryRun) await forgetOrphanedUse(root);
  if (!dryRun && (result.packages.length > 0 || result.blobs.length > 0 || result.refs.length > 0) && (await pathExists(join(root, 'oci-layout')))) {
    await writeStoreIndex(root);
  }
  return result;
}

/** Use records of packages no longer in the store (removed by an older ocipkg, or by hand). */
async function forgetOrphanedUse(root: string): Promise<void> {
  for (const hex of await names(join(root, 'used', 'sha256'))) {
    const digest = `sha256:${hex}`;
    if (isDigest(digest) && !(await pathExists(storePaths.package(root, digest)))) forgetUsed(root, digest);
  }
}

export interface RemoveResult {
  /** The references removed, as recorded. */
  untagged: string[];
  /** Manifest digests of the packages removed: those no other reference names. */
  packages: string[];
  blobs: string[];
  /** Space freed on disk. */
  bytes: number;
}

/**
 * `ocipkg rm`: removes these references from the store, then at once every package only they
 * named and the blobs nothing left needs (as `docker rmi` untags, and deletes an image no other tag
 * names). A reference the store does not hold is an error, before anything is removed.
 */
/**
 * Refuses to untag a reference a package the store keeps names in its requirements: its builds look
 * the requirement up by that reference, and offline they would fail. Removing both at once is fine.
 */
function refuseRequired(root: string, removing: RefRecord[]): void {
  const removed = new Set(removing.map((record) => record.reference));
  for (const kept of listRefs(root)) {
    if (removed.has(kept.reference)) continue;
    for (const digest of new Set(Object.values(kept.manifests))) {
      for (const required of readInstalledPackage(root, digest)?.config.package?.requires ?? []) {
        const name = canonicalReference(parseReference(required));
        if (!removed.has(name)) continue;
        throw new OcipkgError('EINPUT', `${name} is required by ${kept.reference}, which the store keeps; remove both (ocipkg rm ${kept.reference} ${name}) or neither`);
      }
    }
  }
}

export async function removeImages(root: string, refs: ImageReference[]): Promise<RemoveResult> {
  const records = refs.map((ref) => {
    const record = readRef(root, ref);
    if (!record) throw new OcipkgError('ENOTFOUND', `${canonicalReference(ref)} is not in the store ${root} (\`ocipkg store list\` shows what is)`);
    return record;
  });
  refuseRequired(root, records);
  const result: RemoveResult = { untagged: [], packages: [], blobs: [], bytes: 0 };
  for (const record of records) {
    if (result.untagged.includes(record.reference)) continue;
    removeRef(root, parseReference(record.reference));
    result.untagged.push(record.reference);
  }
  const stillNamed = () => referencedDigests(listRefs(root));
  const gone = new Set<string>();
  const candidates = records.map((r) => r.digest);
  for (const digest of new Set(records.flatMap((r) => Object.values(r.manifests)))) {
    if (stillNamed().has(digest)) continue;
    const blobs = packageBlobs(root, digest);
    const bytes = await diskUsage(storePaths.package(root, digest));
    if (await removePackage(root, digest, () => stillNamed().has(digest))) {
      forgetPackage(root, digest);
      gone.add(digest);
      candidates.push(...blobs);
      result.packages.push(digest);
      result.bytes += bytes;
    }
  }
  const freed = await freeBlobs(root, candidates, { graceMs: 0, dryRun: false, gonePackages: gone });
  result.blobs = freed.blobs;
  result.bytes += freed.bytes;
  if (await pathExists(join(root, 'oci-layout'))) await writeStoreIndex(root);
  return result;
}

export interface VerifyProblem {
  kind: 'blob' | 'package';
  digest: string;
  /** One line: what is wrong. */
  reason: string;
}

export interface VerifyResult {
  blobs: number;
  packages: number;
  problems: VerifyProblem[];
  /** Packages installed without their layers (OCIPKG_KEEP_LAYERS=0), whose files could not be compared. */
  unchecked: string[];
  /** With `fix`: the references removed because they pointed at something removed. */
  removedRefs: string[];
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return `sha256:${hash.digest('hex')}`;
}

/** One line per entry of a tree: type, and for files the exec bit and content hash; for links the target. */
async function treeSignature(dir: string): Promise<Map<string, string>> {
  const signature = new Map<string, string>();
  const visit = async (sub: string): Promise<void> => {
    for (const entry of await readdir(join(dir, sub), { withFileTypes: true })) {
      const rel = sub === '' ? entry.name : `${sub}/${entry.name}`;
      const path = join(dir, rel);
      if (entry.isDirectory()) {
        signature.set(rel, 'directory');
        await visit(rel);
      } else if (entry.isSymbolicLink()) {
        signature.set(rel, `symlink to ${await readlink(path)}`);
      } else if (entry.isFile()) {
        // The store makes files read-only; only the execute bit survives from the layer.
        const exec = (await stat(path)).mode & 0o111 ? 'executable ' : '';
        signature.set(rel, `${exec}file ${await hashFile(path)}`);
      } else {
        signature.set(rel, 'special file');
      }
    }
  };
  await visit('');
  return signature;
}

/** The first difference between a package's files and its layers, re-extracted; undefined if none. */
async function compareWithLayers(root: string, digest: string, layers: Descriptor[]): Promise<string | undefined> {
  const scratch = join(storePaths.tmp(root), uniqueName('verify-'));
  await mkdir(scratch, { recursive: true });
  try {
    for (const layer of layers) {
      const type = LAYER_TYPES[layer.mediaType];
      if (!type) return `layer ${layer.digest} has unsupported media type "${layer.mediaType}"`;
      const label = `layer ${layer.digest} in store ${root}`;
      await pipeline(
        createReadStream(storePaths.blob(root, layer.digest)),
        new VerifyingStream(layer, `store ${root}`),
        createExtractor(scratch, { gzip: type.gzip, label, invalidCode: 'EMANIFEST' }),
      );
    }
    const expected = await treeSignature(scratch);
    const actual = await treeSignature(join(storePaths.package(root, digest), PACKAGE_ROOT_DIR));
    for (const [path, what] of expected) {
      const found = actual.get(path);
      if (found === undefined) return `${path} is missing`;
      if (found !== what) return `${path} differs from its layer (expected ${what}, found ${found})`;
    }
    for (const path of actual.keys()) if (!expected.has(path)) return `${path} is not in any layer`;
    return undefined;
  } finally {
    await removeTree(scratch);
  }
}

/**
 * Stops a verification that the machine got in the way of (a full disk under the scratch
 * extraction, a store it may not write or read): that says nothing about what is checked, and
 * `--fix` must not remove what could not be checked.
 */
function cannotCheck(what: string, err: unknown): void {
  const failure = machineFailure(err);
  if (failure) throw new OcipkgError('EIO', `cannot check ${what}: ${failure.message.split('\n')[0]}; nothing was removed`, { cause: err });
}

/**
 * Re-hashes every blob and checks every package's files against its layers, re-extracted into a
 * scratch directory. Per-file hashes recorded at install would be quicker, but they would only
 * show that files still match what was extracted then; re-extracting checks the files against the
 * verified layers themselves, and needs nothing stored beyond the blobs the store keeps anyway.
 *
 * With `fix`, corrupt blobs are deleted, corrupt packages removed (a package whose manifest,
 * config or layer blob is missing or corrupt cannot be vouched for, so it counts as corrupt), and
 * refs naming either are dropped, so the next `get` fetches and verifies them afresh.
 */
export async function verifyStore(root: string, options: { fix?: boolean } = {}): Promise<VerifyResult> {
  const result: VerifyResult = { blobs: 0, packages: 0, problems: [], unchecked: [], removedRefs: [] };
  const badBlobs = new Set<string>();
  const blobDir = join(root, 'blobs', 'sha256');
  for (const hex of await names(blobDir)) {
    const digest = `sha256:${hex}`;
    let found: string;
    try {
      found = isDigest(digest) ? await hashFile(join(blobDir, hex)) : 'not a sha256 digest name';
    } catch (err) {
      if (errno(err) === 'ENOENT') continue; // pruned meanwhile
      cannotCheck(`blob ${digest}`, err);
      found = `unreadable (${errno(err) ?? String(err)})`;
    }
    result.blobs++;
    if (found === digest) continue;
    badBlobs.add(digest);
    result.problems.push({ kind: 'blob', digest, reason: found.startsWith('sha256:') ? `content has digest ${found}` : found });
  }

  const badPackages = new Set<string>();
  for (const hex of await names(storePaths.packages(root))) {
    const digest = `sha256:${hex}`;
    if (!isDigest(digest)) continue;
    let reason: string | undefined;
    try {
      const pkg = readInstalledPackage(root, digest);
      if (!pkg) continue; // pruned meanwhile
      result.packages++;
      if (pkg.manifestDigest !== digest) {
        reason = `package.json names manifest ${pkg.manifestDigest}`;
      } else {
        // Installed without its layers (OCIPKG_KEEP_LAYERS=0): nothing to compare its files with.
        const layersKept = pkg.layersKept !== false;
        if (!layersKept) result.unchecked.push(digest);
        const blobs = [digest, pkg.manifest.config.digest, ...(layersKept ? pkg.manifest.layers.map((l) => l.digest) : [])];
        const missing = [];
        for (const blob of blobs) if (badBlobs.has(blob) || !(await pathExists(storePaths.blob(root, blob)))) missing.push(blob);
        reason = missing.length > 0
          ? `cannot be checked: blob ${missing[0]} is missing or corrupt`
          : layersKept ? await compareWithLayers(root, digest, pkg.manifest.layers) : undefined;
        // Installed before links were checked across layers, or changed since: either way, refused now.
        const bad = reason === undefined ? await badLink(pkg.root) : undefined;
        if (bad !== undefined) reason = bad.problem === 'loops' ? `${bad.path} is a symlink that loops` : `${bad.path} is a symlink that leads outside the package`;
      }
    } catch (err) {
      cannotCheck(`package ${digest}`, err);
      // A package.json that is not JSON, a layer that no longer extracts: either way, corrupt.
      reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    }
    // Gone meanwhile (a concurrent prune) is not corruption.
    if (reason !== undefined && (await pathExists(storePaths.package(root, digest)))) {
      badPackages.add(digest);
      result.problems.push({ kind: 'package', digest, reason });
    }
  }

  if (options.fix && result.problems.length > 0) {
    for (const digest of badBlobs) await unlinkIfPresent(join(blobDir, digest.slice('sha256:'.length)));
    for (const digest of badPackages) if (await removePackage(root, digest, () => false)) forgetPackage(root, digest);
    const bad = new Set([...badBlobs, ...badPackages]);
    for (const record of listRefs(root)) {
      if (![record.digest, ...Object.values(record.manifests)].some((d) => bad.has(d))) continue;
      removeRef(root, parseReference(record.reference));
      result.removedRefs.push(record.reference);
    }
    if (await pathExists(join(root, 'oci-layout'))) await writeStoreIndex(root);
  }
  return result;
}

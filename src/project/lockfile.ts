import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errno, OcipkgError } from '../errors.js';
import { canonicalReference, type ImageReference } from '../reference.js';
import { noBuildError } from '../artifact/triples.js';
import { writeFileAtomicSync } from '../fs/atomic.js';
import { isStringMap } from '../json-shape.js';
import { isDigest } from '../oci/digest.js';

/**
 * `ocipkg-lock.json`, beside the project's package.json: for each image (canonical reference, one
 * entry per package, dependencies of packages included) the digest its tag pointed at and the
 * manifest of every target that index lists, so a lockfile written on Linux pins the macOS build
 * it never downloaded. Resolution uses these digests, never the tag.
 *
 *   { "lockfileVersion": 1,
 *     "packages": { "ghcr.io/acme/zstd:1.5.6": { "digest": "sha256:…", "mediaType": "…",
 *                   "manifests": { "aarch64-apple-darwin": "sha256:…", "x86_64-unknown-linux-gnu": "sha256:…" },
 *                   "requires": [] } } }
 *
 * Written with sorted keys and two-space indentation so that diffs review well. Reading is
 * synchronous and import-light: it is on the warm path of `ocipkg-link`.
 */

export const LOCKFILE = 'ocipkg-lock.json';
const VERSION = 1;

export interface LockEntry {
  /** What the tag pointed at when locked: an index or a single manifest. */
  digest: string;
  mediaType: string;
  /** Target triple (`""` for a manifest that records none) -> manifest digest. */
  manifests: Record<string, string>;
  /** Canonical references of the images this package requires (for the host's build). */
  requires: string[];
  /** Under a trust policy: the id (`sha256:` of the public key) of the key that verified the pin. */
  signedBy?: string;
}

export interface Lockfile {
  packages: Record<string, LockEntry>;
}

export function lockfilePath(projectDir: string): string {
  return join(projectDir, LOCKFILE);
}

function invalid(path: string, why: string): OcipkgError {
  return new OcipkgError('ELOCKFILE', `${path}: invalid lockfile: ${why}; fix it or delete it and run \`ocipkg install\``);
}

/** The project's lockfile, or undefined when it has none. A lockfile that cannot be read is an error, never ignored. */
export function readLockfile(projectDir: string): Lockfile | undefined {
  const path = lockfilePath(projectDir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (errno(err) === 'ENOENT') return undefined;
    throw err;
  }
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw invalid(path, 'not JSON');
  }
  if (typeof doc !== 'object' || doc === null || doc.lockfileVersion !== VERSION) throw invalid(path, `not lockfileVersion ${VERSION}`);
  const packages = doc.packages;
  if (typeof packages !== 'object' || packages === null || Array.isArray(packages)) throw invalid(path, '"packages" is not an object');
  for (const [image, entry] of Object.entries(packages as Record<string, Record<string, unknown>>)) {
    const ok =
      typeof entry?.digest === 'string' &&
      typeof entry.mediaType === 'string' &&
      isStringMap(entry.manifests) &&
      Array.isArray(entry.requires) &&
      entry.requires.every((r) => typeof r === 'string') &&
      (entry.signedBy === undefined || typeof entry.signedBy === 'string');
    if (!ok) throw invalid(path, `"${image}" needs digest, mediaType, manifests and requires`);
    // Pins become references and store paths: each one checked here, where the file can be named.
    const pins: [string, unknown][] = [['digest', entry.digest], ...Object.entries(entry.manifests as Record<string, string>).map(([triple, pin]): [string, unknown] => [`manifests[${JSON.stringify(triple)}]`, pin])];
    for (const [where, pin] of pins) {
      if (!isDigest(pin as string)) throw invalid(path, `packages[${JSON.stringify(image)}].${where} is ${JSON.stringify(pin)}, not a sha256 digest`);
    }
  }
  return { packages: packages as Record<string, LockEntry> };
}

/** Objects with their keys in sorted order, recursively; arrays keep their order. */
function sortedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((key) => [key, sortedKeys((value as Record<string, unknown>)[key])]),
  );
}

/** The lockfile's text: the same content always gives the same bytes. */
export function formatLockfile(lock: Lockfile): string {
  return `${JSON.stringify(sortedKeys({ lockfileVersion: VERSION, packages: lock.packages }), null, 2)}\n`;
}

export function writeLockfile(projectDir: string, lock: Lockfile): void {
  writeFileAtomicSync(lockfilePath(projectDir), formatLockfile(lock));
}

/**
 * The reference, by manifest digest, that a lock entry pins for `ref` and `triple` (or the
 * target-less manifest of a single-manifest image). A locked image whose index listed no build for
 * the target is an error naming those it did list; `projectDir` says which lockfile.
 */
export function pinnedReference(ref: ImageReference, entry: LockEntry, triple: string, projectDir: string): ImageReference {
  const manifest = entry.manifests[triple] ?? entry.manifests[''];
  if (manifest === undefined) throw noBuildError(`${canonicalReference(ref)} as locked in ${projectDir}`, triple, Object.keys(entry.manifests), 'locked');
  const { tag: _tag, ...untagged } = ref;
  return { ...untagged, digest: manifest };
}

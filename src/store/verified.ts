import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { errno } from '../errors.js';
import { digestHex } from '../oci/digest.js';
import { writeFileAtomicSync } from '../fs/atomic.js';

/**
 * Which trusted keys a package's signatures were verified with, so that the warm path checks a
 * policy by comparing key texts instead of fetching and verifying signatures on every build:
 *
 *   verified/sha256/<manifest hex>.json     { "keys": ["-----BEGIN PUBLIC KEY-----..."] }
 *
 * A key that verified once stays recorded; a policy that no longer lists it (or lists a new one
 * only) finds no match here and sends the resolution back to the registry to verify again.
 * Synchronous and import-light: the warm path reads it.
 */

function recordPath(root: string, digest: string): string {
  return join(root, 'verified', 'sha256', `${digestHex(digest)}.json`);
}

/** Key texts are compared without the whitespace around them. */
const normalizedKey = (pem: string) => pem.trim();

function verifiedKeys(root: string, digest: string): string[] {
  try {
    const doc = JSON.parse(readFileSync(recordPath(root, digest), 'utf8')) as { keys?: unknown };
    return Array.isArray(doc.keys) ? doc.keys.filter((k): k is string => typeof k === 'string') : [];
  } catch (err) {
    // Missing or unreadable: not verified, which only means "verify again".
    if (errno(err) === 'ENOENT' || err instanceof SyntaxError) return [];
    throw err;
  }
}

/** The first of `pems` (public keys) that a package's signatures were verified with, if any. */
export function verifiedWith(root: string, digest: string, pems: string[]): string | undefined {
  const recorded = verifiedKeys(root, digest);
  return pems.find((pem) => recorded.includes(normalizedKey(pem)));
}

export function recordVerified(root: string, digest: string, pem: string): void {
  const keys = verifiedKeys(root, digest);
  if (keys.includes(normalizedKey(pem))) return;
  const path = recordPath(root, digest);
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomicSync(path, `${JSON.stringify({ keys: [...keys, normalizedKey(pem)] }, null, 2)}\n`);
}

/** Forgets a removed package's verification (prune). */
export function forgetVerified(root: string, digest: string): void {
  rmSync(recordPath(root, digest), { force: true });
}

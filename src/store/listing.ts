import { stat } from 'node:fs/promises';
import { errno } from '../errors.js';
import { diskUsage } from '../fs/tree.js';
import { listPackages, type InstalledPackage } from './package.js';
import { storePaths } from './paths.js';
import { listRefs } from './refs.js';
import { lastUsed } from './usage.js';
import { isoTimestamp } from '../timestamp.js';

/** `ocipkg store list`: what the store holds, one row per reference and target, with what each takes. */

export interface StoreRow {
  /** The canonical reference recorded, or null for a package no reference names (prune removes it). */
  reference: string | null;
  target: string | null;
  manifest: string;
  /** Bytes on disk: the package's files and the blobs it was installed from (shared blobs counted in each). */
  size: number;
  /** ISO times: when the package was installed, and last returned by a lookup (null: never since recorded). */
  fetched: string | null;
  lastUsed: string | null;
}

async function blobBytes(root: string, pkg: InstalledPackage): Promise<number> {
  let bytes = 0;
  for (const digest of [pkg.manifestDigest, pkg.manifest.config.digest, ...pkg.manifest.layers.map((l) => l.digest)]) {
    bytes += await diskUsage(storePaths.blob(root, digest));
  }
  return bytes;
}

/** Installed before `fetched` was recorded: the package.json's mtime is when it was written. */
async function fetchedAt(pkg: InstalledPackage): Promise<string | null> {
  if (pkg.fetched) return pkg.fetched;
  try {
    return isoTimestamp((await stat(pkg.dir)).mtimeMs);
  } catch (err) {
    if (errno(err) === 'ENOENT') return null;
    throw err;
  }
}

export async function listStore(root: string): Promise<StoreRow[]> {
  const packages = new Map(listPackages(root).map((pkg) => [pkg.manifestDigest, pkg]));
  const facts = new Map<string, Omit<StoreRow, 'reference' | 'target' | 'manifest'>>();
  for (const [digest, pkg] of packages) {
    const used = lastUsed(root, digest);
    facts.set(digest, {
      size: (await diskUsage(pkg.dir)) + (await blobBytes(root, pkg)),
      fetched: await fetchedAt(pkg),
      lastUsed: used === undefined ? null : isoTimestamp(used),
    });
  }
  const rows: StoreRow[] = [];
  const named = new Set<string>();
  for (const record of listRefs(root)) {
    for (const [target, manifest] of Object.entries(record.manifests)) {
      const known = facts.get(manifest);
      if (!known) continue; // a ref to a package removed meanwhile
      named.add(manifest);
      rows.push({ reference: record.reference, target: target || null, manifest, ...known });
    }
  }
  for (const [digest, pkg] of packages) {
    if (!named.has(digest)) rows.push({ reference: null, target: pkg.target ?? null, manifest: digest, ...facts.get(digest)! });
  }
  // Packages no reference names last.
  const key = (row: StoreRow) => row.reference ?? '\uffff';
  rows.sort((a, b) => key(a).localeCompare(key(b)) || String(a.target).localeCompare(String(b.target)));
  return rows;
}

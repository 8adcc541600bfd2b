import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { errno } from '../errors.js';
import { canonicalReference, parseReference, type ImageReference } from '../reference.js';
import { writeFileAtomicSync } from '../fs/atomic.js';
import { storePaths } from './paths.js';

/**
 * A directory name for an absolute layout path: part of its sha256. node:crypto is loaded only
 * here, for `oci:` references, so that registry lookups on the warm path never pay for it.
 */
function layoutKey(path: string): string {
  const { createHash } = process.getBuiltinModule('node:crypto');
  return createHash('sha256').update(path).digest('hex').slice(0, 32);
}

/**
 * The refs index: which digest a tag pointed at when it was last fetched, and which manifest serves
 * each target triple, so that a warm lookup needs no network. It is a cache of the registry's
 * answers: a missing or unreadable record only means "ask again".
 *
 * Layout under `refs/`, always two directory levels and a file, whatever the reference:
 *   <encoded registry>/<encoded repository>/<tag>.json          e.g. 127.0.0.1%3A5000/acme%2Fzstd/1.0.json
 *   <encoded registry>/<encoded repository>/@sha256-<hex>.json  a reference by digest (of an index, say)
 *   oci/<sha256 of the absolute path>/<tag>.json                an `oci:` layout directory
 * Encoding the whole repository into one name (its `/` included) keeps every repository the grammar
 * allows apart from every other and from the record files: a repository `x.json/y` is a directory
 * `x.json%2Fy`, never a record, and never a parent of another repository's records. Tags start with
 * a word character, so the `@` names cannot collide with them; `oci` is no registry name (a registry
 * has a dot or a port, or is `localhost`). Synchronous and import-light: this is on the warm path.
 */
export interface RefRecord {
  /** Canonical reference: `registry/repository:tag`, `registry/repository@digest` or `oci:/abs/path:tag`. */
  reference: string;
  /** What the tag (or digest) pointed at: a manifest or an index. */
  digest: string;
  mediaType: string;
  /** Target triple (`""` when the manifest records none) -> manifest digest. */
  manifests: Record<string, string>;
  /** ISO time of the last write. */
  updated: string;
}

/** A tag that points elsewhere than it did: what `get`, `outdated` and `update` report. */
export interface TagMove {
  /** Canonical reference (or the alias, for a declared package). */
  image: string;
  /** The digest it pointed at (recorded or locked), or null when nothing was. */
  from: string | null;
  /** The digest it points at now. */
  to: string;
}

/** The reference an `oci:` path is recorded under: relative paths made absolute. */
function normalized(ref: ImageReference): ImageReference {
  return ref.kind === 'oci' ? { ...ref, path: resolve(ref.path) } : ref;
}

function recordPath(root: string, ref: ImageReference): string {
  const name = ref.digest !== undefined ? `@${ref.digest.replace(':', '-')}` : (ref.tag ?? 'latest');
  const dir =
    ref.kind === 'oci'
      ? join('oci', layoutKey(resolve(ref.path)))
      : join(encodeURIComponent(ref.registry), encodeURIComponent(ref.repository));
  return join(storePaths.refs(root), dir, `${name}.json`);
}

function readRecord(path: string): RefRecord | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return undefined;
    throw err;
  }
  try {
    const record = JSON.parse(text) as RefRecord;
    const valid = typeof record?.reference === 'string' && typeof record.digest === 'string' && typeof record.manifests === 'object' && record.manifests !== null;
    return valid ? record : undefined;
  } catch {
    return undefined;
  }
}

export function readRef(root: string, ref: ImageReference): RefRecord | undefined {
  return readRecord(recordPath(root, normalized(ref)));
}

/**
 * Records where `record.reference` points (stored under its canonical form, `oci:` paths absolute). When the record already names the same digest, the manifests
 * known for other targets are kept (each `get` learns about one target); a tag that moved starts over.
 */
export function writeRef(root: string, record: RefRecord): RefRecord {
  const key = normalized(parseReference(record.reference));
  const path = recordPath(root, key);
  const existing = readRecord(path);
  const merged: RefRecord = {
    reference: canonicalReference(key),
    digest: record.digest,
    mediaType: record.mediaType,
    manifests: existing?.digest === record.digest ? { ...existing.manifests, ...record.manifests } : { ...record.manifests },
    updated: record.updated,
  };
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomicSync(path, `${JSON.stringify(merged, null, 2)}\n`);
  return merged;
}

/** Keeps only these targets of a record (prune, once the other targets' packages are gone). */
export function keepRefTargets(root: string, record: RefRecord, targets: string[]): void {
  const key = normalized(parseReference(record.reference));
  const manifests = Object.fromEntries(Object.entries(record.manifests).filter(([target]) => targets.includes(target)));
  writeFileAtomicSync(recordPath(root, key), `${JSON.stringify({ ...record, manifests }, null, 2)}\n`);
}

export function removeRef(root: string, ref: ImageReference): void {
  rmSync(recordPath(root, normalized(ref)), { force: true });
}

/** The entries of a directory of the index; a missing one (or a stray file in its place) has none. */
function entries(dir: string) {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return [];
    throw err;
  }
}

/** Every record in the index, in no particular order; unreadable ones are skipped. */
export function listRefs(root: string): RefRecord[] {
  const records: RefRecord[] = [];
  for (const registry of entries(storePaths.refs(root))) {
    if (!registry.isDirectory()) continue;
    for (const repository of entries(join(storePaths.refs(root), registry.name))) {
      if (!repository.isDirectory()) continue;
      const dir = join(storePaths.refs(root), registry.name, repository.name);
      for (const file of entries(dir)) {
        const record = file.isFile() && file.name.endsWith('.json') ? readRecord(join(dir, file.name)) : undefined;
        if (record) records.push(record);
      }
    }
  }
  return records;
}

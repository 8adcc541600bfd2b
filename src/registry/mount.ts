import { isDigest } from '../oci/digest.js';
import type { Descriptor } from '../oci/types.js';
import { repositoryScope, sessionFor } from './auth.js';
import { debugLine } from './debug-line.js';
import { discard, registryOrigin } from './http.js';

/**
 * Cross-repository blob mount: before a blob is uploaded to a repository, a registry that already
 * holds it in another of its repositories is asked to link it over instead
 * (`POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo>`; 201 is done, 202 means it did not
 * mount). That is publishing one library under two names, `--append`, or `copy` within a registry,
 * without sending a byte. Which repositories hold a blob comes from a record that outlives the
 * process (the store's, see store/blob-locations.ts): every manifest read from or written to a
 * repository says that its config and layers live there.
 */

export interface BlobLocationRecord {
  /** Repositories of `registry` said to hold `digest`, best first. */
  repositories(registry: string, digest: string): string[];
  record(registry: string, repository: string, digests: string[]): void;
}

let locations: BlobLocationRecord | undefined;

/** Set by open.ts, which knows the store: the registry layer cannot import it. */
export function useBlobLocationRecord(record: BlobLocationRecord): void {
  locations = record;
}

/** A manifest's blobs live in the repository it was read from or pushed to; an index has none. */
export function noteManifestBlobs(registry: string, repository: string, manifest: Uint8Array): void {
  if (!locations) return;
  let doc: { config?: { digest?: unknown }; layers?: { digest?: unknown }[] };
  try {
    doc = JSON.parse(Buffer.from(manifest).toString('utf8')) as typeof doc;
  } catch {
    return;
  }
  const digests = [doc?.config?.digest, ...(Array.isArray(doc?.layers) ? doc.layers.map((l) => l?.digest) : [])];
  const valid = digests.filter((d): d is string => typeof d === 'string' && isDigest(d));
  if (valid.length > 0) locations.record(registry, repository, valid);
}

/** Sources tried per blob: a stale record costs one round trip each. */
const MAX_SOURCES = 3;

/**
 * Mounts `desc` into `repository` from another repository of the same registry that the record
 * says holds it. True when the registry mounted it; false (upload it) when no source is known, the
 * registry declined, or the request failed: a mount is only ever a shortcut, and the upload that
 * follows reports any real failure. A 202 opens an upload session the mount did not use; it is
 * cancelled, so that uploads keep one code path (client.ts).
 */
export async function mountBlob(target: { registry: string; repository: string }, desc: Descriptor): Promise<boolean> {
  if (!locations) return false;
  const { registry, repository } = target;
  const sources = locations.repositories(registry, desc.digest).filter((r) => r !== repository).slice(0, MAX_SOURCES);
  for (const from of sources) {
    try {
      const url = new URL(`/v2/${repository}/blobs/uploads/`, await registryOrigin(registry));
      url.searchParams.set('mount', desc.digest);
      url.searchParams.set('from', from);
      const res = await sessionFor(registry).send({
        method: 'POST',
        url,
        headers: { 'content-length': '0' },
        scopes: [repositoryScope(repository, 'pull,push'), repositoryScope(from, 'pull')],
      });
      discard(res);
      if (res.statusCode === 201) {
        debugLine(`mounted ${desc.digest} into ${registry}/${repository} from ${from}`);
        locations.record(registry, repository, [desc.digest]);
        return true;
      }
      const session = res.headers.location;
      if (res.statusCode === 202 && typeof session === 'string') {
        const cancel = await sessionFor(registry).send({ method: 'DELETE', url: new URL(session, url), scopes: [repositoryScope(repository, 'pull,push')] });
        discard(cancel);
      }
    } catch {
      return false;
    }
  }
  return false;
}

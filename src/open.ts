import { LayoutDirectory } from './layout/directory.js';
import type { ImageReference } from './reference.js';
import { RegistryRepository } from './registry/client.js';
import { pullSource } from './registry/mirrors.js';
import { useBlobLocationRecord } from './registry/mount.js';
import type { ContentSource, ContentStore } from './oci/content.js';
import { blobLocations, recordBlobLocation } from './store/blob-locations.js';
import { storePaths, storeRoot } from './store/paths.js';

let recording = false;

/**
 * Hands the registry client the store's record of which repositories hold each blob, for
 * cross-repository mounts (registry/mount.ts): once, when a registry is first opened.
 */
function recordBlobLocations(): void {
  if (recording) return;
  recording = true;
  const root = storeRoot();
  useBlobLocationRecord({
    repositories: (registry, digest) => blobLocations(root, digest).flatMap((l) => (l.startsWith(`${registry}/`) ? [l.slice(registry.length + 1)] : [])),
    record: (registry, repository, digests) => recordBlobLocation(root, `${registry}/${repository}`, digests),
  });
}

/** The target an image reference lives in: a registry repository or an OCI layout directory. */
export function openContent(ref: ImageReference): ContentStore {
  if (ref.kind === 'oci') return new LayoutDirectory(ref.path);
  recordBlobLocations();
  return new RegistryRepository(ref.registry, ref.repository);
}

/**
 * What a pull of an image reference reads: as openContent, except that a registry reference goes
 * to the endpoints registries.conf gives it (mirrors, then the primary at its location). Pushes
 * never do: mirrors serve pulls only.
 */
export function openSource(ref: ImageReference): ContentSource {
  if (ref.kind === 'oci') return new LayoutDirectory(ref.path);
  recordBlobLocations();
  return pullSource(ref, storePaths.tmp(storeRoot()));
}

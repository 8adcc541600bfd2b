import { LayoutDirectory } from './layout/directory.js';
import type { ImageReference } from './reference.js';
import { RegistryRepository } from './registry/client.js';
import { pullSource } from './registry/mirrors.js';
import type { ContentSource, ContentStore } from './oci/content.js';
import { storePaths, storeRoot } from './store/paths.js';

/** The target an image reference lives in: a registry repository or an OCI layout directory. */
export function openContent(ref: ImageReference): ContentStore {
  return ref.kind === 'oci' ? new LayoutDirectory(ref.path) : new RegistryRepository(ref.registry, ref.repository);
}

/**
 * What a pull of an image reference reads: as openContent, except that a registry reference goes
 * to the endpoints registries.conf gives it (mirrors, then the primary at its location). Pushes
 * never do: mirrors serve pulls only.
 */
export function openSource(ref: ImageReference): ContentSource {
  return ref.kind === 'oci' ? new LayoutDirectory(ref.path) : pullSource(ref, storePaths.tmp(storeRoot()));
}

import { LayoutDirectory } from './layout/directory.js';
import type { ImageReference } from './reference.js';
import { RegistryRepository } from './registry/client.js';
import type { ContentStore } from './oci/content.js';

/** The target an image reference lives in: a registry repository or an OCI layout directory. */
export function openContent(ref: ImageReference): ContentStore {
  return ref.kind === 'oci' ? new LayoutDirectory(ref.path) : new RegistryRepository(ref.registry, ref.repository);
}

import { LayoutTarget } from './layout/directory.js';
import type { ImageReference } from './reference.js';
import { RegistryTarget } from './registry/client.js';
import type { Target } from './oci/content.js';

/** The target an image reference lives in: a registry repository or an OCI layout directory. */
export function openTarget(ref: ImageReference): Target {
  return ref.kind === 'oci' ? new LayoutTarget(ref.path) : new RegistryTarget(ref.registry, ref.repository);
}

import { OcipkgError } from '../errors.js';
import type { LayoutReader } from '../layout/directory.js';
import { parseReference } from '../reference.js';

/**
 * The image an oci-archive holds: `pack` (like the Rust ocipkg) writes one index.json entry whose
 * `org.opencontainers.image.ref.name` is the full image name. Archives from other tools may carry a
 * bare tag; those need an explicit IMAGE (push) and cannot be loaded by name.
 */
export async function archiveImage(layout: LayoutReader, archive: string): Promise<{ sourceRef: string; name: string | undefined }> {
  const refs = await layout.listRefs();
  if (refs.length !== 1) {
    throw new OcipkgError('EINPUT', `${archive}: expected exactly one named image in the archive, found ${refs.length}`);
  }
  const sourceRef = refs[0]!.name;
  return { sourceRef, name: isFullReference(sourceRef) ? sourceRef : undefined };
}

function isFullReference(name: string): boolean {
  try {
    return parseReference(name).kind === 'registry' && name.includes('/');
  } catch {
    return false;
  }
}

/** The archive's own image name, or an error saying IMAGE must be given. */
export function requireName(name: string | undefined, archive: string): string {
  if (name === undefined) throw new OcipkgError('EINPUT', `${archive} does not record a full image name; pass IMAGE explicitly`);
  return name;
}

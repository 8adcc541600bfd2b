import { OcipkgError } from '../errors.js';
import { ANNOTATION_TARGET } from '../oci/mediatypes.js';
import type { Descriptor, ImageIndex } from '../oci/types.js';
import { platformToTriples } from '../triple.js';

/**
 * The triple an index entry is for: the full triple from ocipkg's annotation, else the glibc triple
 * of its platform (the platform object cannot say musl), else none (attestations, unknown/unknown).
 */
export function entryTriple(desc: Descriptor): string | undefined {
  const annotated = desc.annotations?.[ANNOTATION_TARGET];
  if (annotated) return annotated;
  return desc.platform ? platformToTriples(desc.platform)[0] : undefined;
}

/** Every target an index offers, triple -> manifest digest (first entry wins, as in the index order). */
export function indexTriples(index: ImageIndex): Record<string, string> {
  const targets: Record<string, string> = {};
  for (const desc of index.manifests) {
    const triple = entryTriple(desc);
    if (triple !== undefined && !(triple in targets)) targets[triple] = desc.digest;
  }
  return targets;
}

/**
 * The error for an image without a build for `triple`, listing those it has: `what` names the
 * image (and where it was looked up), `listed` what the list is (published, locked, recorded).
 */
export function noBuildError(what: string, triple: string, available: string[], listed = 'available'): OcipkgError {
  return new OcipkgError('ENOTARGET', `${what} has no build for ${triple} (${listed}: ${available.length ? available.join(', ') : 'none'})`);
}

/** The index entry for exactly `triple`, or an ENOTARGET error listing what was published. */
export function selectFromIndex(index: ImageIndex, triple: string, image: string): Descriptor {
  const chosen = index.manifests.find((desc) => entryTriple(desc) === triple);
  if (chosen) return chosen;
  throw noBuildError(image, triple, Object.keys(indexTriples(index)));
}

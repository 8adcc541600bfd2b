import { OcipkgError } from '../errors.js';
import { ANNOTATION_TARGET } from '../oci/mediatypes.js';
import type { Descriptor, ImageIndex } from '../oci/types.js';
import { platformToTriples } from '../triple.js';
import { isName } from './package-data.js';

/**
 * The triple an index entry is for: the full triple from ocipkg's annotation, else the glibc triple
 * of its platform (the platform object cannot say musl), else none (attestations, unknown/unknown).
 * An annotation that is no name is refused: triples become lockfile keys and appear in messages
 * and listings. `where` names the index in that error.
 */
export function entryTriple(desc: Descriptor, where: string): string | undefined {
  const annotated = desc.annotations?.[ANNOTATION_TARGET];
  if (annotated !== undefined && annotated !== '' && !isName(annotated)) {
    throw new OcipkgError('EMANIFEST', `${where}: the ${ANNOTATION_TARGET} annotation of ${desc.digest}, ${JSON.stringify(annotated)}, is not a target name (letters, digits, . _ + -)`);
  }
  if (annotated) return annotated;
  return desc.platform ? platformToTriples(desc.platform)[0] : undefined;
}

/**
 * Every target an index offers, triple -> manifest digest: an annotated entry before one whose
 * platform alone says the triple, else the first in the index order. Two annotated entries naming
 * one triple for different builds are refused: which one a tag gives must not depend on the order.
 */
export function indexTriples(index: ImageIndex, where: string): Record<string, string> {
  const annotated: Record<string, string> = {};
  const byPlatform: Record<string, string> = {};
  for (const desc of index.manifests) {
    const triple = entryTriple(desc, where);
    if (triple === undefined) continue;
    if (!desc.annotations?.[ANNOTATION_TARGET]) {
      byPlatform[triple] ??= desc.digest;
    } else if (annotated[triple] !== undefined && annotated[triple] !== desc.digest) {
      throw new OcipkgError('EMANIFEST', `${where}: the index lists two builds for ${triple} (${annotated[triple]}, ${desc.digest}); a target has one`);
    } else {
      annotated[triple] = desc.digest;
    }
  }
  return { ...byPlatform, ...annotated };
}

/**
 * The error for an image without a build for `triple`, listing those it has: `what` names the
 * image (and where it was looked up), `listed` what the list is (published, locked, recorded).
 */
export function noBuildError(what: string, triple: string, available: string[], listed = 'available'): OcipkgError {
  return new OcipkgError('ENOTARGET', `${what} has no build for ${triple} (${listed}: ${available.length ? available.join(', ') : 'none'})`);
}

/**
 * The index entries for exactly `triple`, those that name it in ocipkg's annotation first, then
 * those whose platform alone says it (which cannot tell glibc from musl, nor MinGW from MSVC: the
 * caller checks the target each build records); an ENOTARGET error listing what was published when
 * there are none. An index naming two builds for one triple is refused (indexTriples).
 */
export function selectFromIndex(index: ImageIndex, triple: string, image: string): Descriptor[] {
  // Every entry checked, not only those before the chosen one: an index with a hostile entry is refused whatever is asked of it.
  const targets = indexTriples(index, image);
  const matching = index.manifests.filter((desc) => entryTriple(desc, image) === triple);
  const annotated = matching.filter((desc) => desc.annotations?.[ANNOTATION_TARGET]);
  if (matching.length > 0) return [...annotated, ...matching.filter((desc) => !annotated.includes(desc))];
  throw noBuildError(image, triple, Object.keys(targets));
}

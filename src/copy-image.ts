import { copy, type CopyOptions } from './copy.js';
import { isOcipkgError } from './errors.js';
import type { ContentSink, ContentSource } from './oci/content.js';
import { fetchSmallBlob, parseManifest } from './oci/manifest.js';
import { OCI_INDEX } from './oci/mediatypes.js';
import type { Descriptor } from './oci/types.js';
import { descriptorFor } from './oci/verify.js';
import { referrersTag } from './sign/bundles.js';
import { signatureTag } from './sign/signatures.js';

/**
 * `ocipkg copy`: an image with everything a consumer of it may ask for, so that a site which only
 * reaches the copy can still select any target and check any signature: every manifest of an index
 * (copy() walks the whole graph) and, for the image and each manifest of it, the signatures attached
 * (cosign's legacy `sha256-<hex>.sig` tag, and OCI 1.1 referrers: from the referrers API where the
 * source has one, else the `sha256-<hex>` fallback tag). Bytes move unchanged, so every digest at
 * the destination equals the source's.
 */

export interface CopiedImage {
  root: Descriptor;
  /** The tags written beside the image: signature and referrers tags. */
  attached: string[];
}

/** The descriptor `tag` names in `src`, or undefined when it names nothing. */
async function resolveIfTagged(src: ContentSource, tag: string): Promise<Descriptor | undefined> {
  try {
    return await src.resolve(tag);
  } catch (err) {
    if (isOcipkgError(err, 'ENOTFOUND')) return undefined;
    throw err;
  }
}

/** The image's own digest and, for an index, the digest of each manifest it lists. */
async function signableDigests(src: ContentSource, root: Descriptor): Promise<string[]> {
  const parsed = parseManifest(await fetchSmallBlob(src, root), root.mediaType, `${src.location}@${root.digest}`);
  return [root.digest, ...(parsed.kind === 'index' ? parsed.index.manifests.map((m) => m.digest) : [])];
}

/** Copies what is attached to `digest`; returns the tags it wrote. */
async function copyAttached(src: ContentSource, dst: ContentSink & Partial<Pick<ContentSource, 'referrers'>>, digest: string, options: CopyOptions): Promise<string[]> {
  const written: string[] = [];
  for (const tag of [signatureTag(digest), referrersTag(digest)]) {
    if ((await resolveIfTagged(src, tag)) === undefined) continue;
    await copy(src, tag, dst, tag, options);
    written.push(tag);
  }
  if (written.includes(referrersTag(digest))) return written;
  // Referrers the source lists only through its API: copied by digest, and listed under the
  // fallback tag where the destination has no API to find them by their subject.
  const listed = (await src.referrers?.(digest)) ?? [];
  if (listed.length === 0) return written;
  for (const referrer of listed) await copy(src, referrer.digest, dst, undefined, options);
  if ((await dst.referrers?.(digest)) === undefined) {
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: listed }));
    const index = descriptorFor(OCI_INDEX, bytes);
    await dst.push(index, bytes);
    await dst.tag(index, referrersTag(digest));
    written.push(referrersTag(digest));
  }
  return written;
}

/**
 * Copies what `srcRef` names in `src`, with every target and every signature, to `dst`, tagged
 * `dstTag` when given.
 */
export async function copyImage(src: ContentSource, srcRef: string, dst: ContentSink, dstTag: string | undefined, options: CopyOptions = {}): Promise<CopiedImage> {
  const root = await copy(src, srcRef, dst, dstTag, options);
  const attached: string[] = [];
  for (const digest of await signableDigests(src, root)) attached.push(...(await copyAttached(src, dst, digest, options)));
  return { root, attached };
}

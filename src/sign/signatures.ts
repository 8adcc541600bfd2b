import { isOcipkgError, OcipkgError } from '../errors.js';
import type { ContentSource, ContentStore } from '../oci/content.js';
import { digestHex } from '../oci/digest.js';
import { fetchSmallBlob, parseManifest } from '../oci/manifest.js';
import { OCI_MANIFEST } from '../oci/mediatypes.js';
import type { Descriptor, ImageManifest } from '../oci/types.js';
import { descriptorFor } from '../oci/verify.js';

/**
 * cosign's legacy signature storage, through any content store (a registry repository, a layout,
 * the store): the signatures of the manifest or index `sha256:<hex>` live in the same repository
 * under the tag `sha256-<hex>.sig`, as an OCI image manifest with one layer per signature. Each
 * layer's blob is a simple-signing payload; its annotation holds the base64 signature of it.
 * Everything cosign writes beside (certificates, bundles) is kept as it is and not read here.
 */

export const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
const IMAGE_CONFIG = 'application/vnd.oci.image.config.v1+json';

/** How often adding a signature is retried when another writer replaced the manifest meanwhile. */
const APPEND_TRIES = 3;
/** More signatures than any image collects; a manifest listing more is refused, not fetched. */
const MAX_SIGNATURES = 256;

export interface StoredSignature {
  payload: Buffer;
  /** Base64 DER. */
  signature: string;
}

export function signatureTag(digest: string): string {
  return `sha256-${digestHex(digest)}.sig`;
}

/** The signature manifest of `digest` and its descriptor, or undefined when it has none. */
async function signatureManifest(source: ContentSource, digest: string): Promise<{ desc: Descriptor; manifest: ImageManifest } | undefined> {
  let desc: Descriptor;
  try {
    desc = await source.resolve(signatureTag(digest));
  } catch (err) {
    if (isOcipkgError(err, 'ENOTFOUND')) return undefined;
    throw err;
  }
  const where = `${source.location}:${signatureTag(digest)}`;
  const parsed = parseManifest(await fetchSmallBlob(source, desc), desc.mediaType, where);
  if (parsed.kind !== 'manifest') throw new OcipkgError('EMANIFEST', `${where}: a signature tag names an index, not a manifest`);
  if (parsed.manifest.layers.length > MAX_SIGNATURES) {
    throw new OcipkgError('ETOOLARGE', `${where}: ${parsed.manifest.layers.length} signatures, more than ${MAX_SIGNATURES}`);
  }
  return { desc, manifest: parsed.manifest };
}

/** Every signature stored for `digest`, payloads fetched and checked against their descriptors. */
export async function readSignatures(source: ContentSource, digest: string): Promise<StoredSignature[]> {
  const found = await signatureManifest(source, digest);
  if (!found) return [];
  const signatures: StoredSignature[] = [];
  for (const layer of found.manifest.layers) {
    const signature = layer.annotations?.[SIGNATURE_ANNOTATION];
    if (layer.mediaType !== SIMPLE_SIGNING || signature === undefined) continue;
    signatures.push({ payload: await fetchSmallBlob(source, layer), signature });
  }
  return signatures;
}

/** An empty image config over the payloads, as cosign writes it: `rootfs.diff_ids` lists them. */
function signatureConfig(layers: Descriptor[]): Buffer {
  return Buffer.from(JSON.stringify({
    architecture: '',
    created: '0001-01-01T00:00:00Z',
    history: layers.map(() => ({ created: '0001-01-01T00:00:00Z' })),
    os: '',
    rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.digest) },
    config: {},
  }));
}

/**
 * Adds a signature of `digest` (appending to those already there; the same signature twice is
 * stored once) and returns the signature manifest's descriptor. The tag is read, modified and
 * written, which races with another signer (cosign's own spec says so): the result is read back and
 * the write retried when the other one won.
 */
export async function appendSignature(store: ContentStore, digest: string, signed: StoredSignature): Promise<Descriptor> {
  const payloadDesc: Descriptor = { ...descriptorFor(SIMPLE_SIGNING, signed.payload), annotations: { [SIGNATURE_ANNOTATION]: signed.signature } };
  const ours = (layer: Descriptor) => layer.digest === payloadDesc.digest && layer.annotations?.[SIGNATURE_ANNOTATION] === signed.signature;
  for (let attempt = 1; ; attempt++) {
    const existing = await signatureManifest(store, digest);
    if (existing?.manifest.layers.some(ours)) return existing.desc;
    const layers = [...(existing?.manifest.layers ?? []), payloadDesc];
    const configBytes = signatureConfig(layers);
    const config = descriptorFor(IMAGE_CONFIG, configBytes);
    const manifest: ImageManifest = { schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers };
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    const desc = descriptorFor(OCI_MANIFEST, manifestBytes);
    if (!(await store.exists(payloadDesc))) await store.push(payloadDesc, signed.payload);
    if (!(await store.exists(config))) await store.push(config, configBytes);
    await store.push(desc, manifestBytes);
    await store.tag(desc, signatureTag(digest));
    const now = await signatureManifest(store, digest);
    if (now?.manifest.layers.some(ours)) return now.desc;
    if (attempt === APPEND_TRIES) {
      throw new OcipkgError('ECONFLICT', `${store.location}:${signatureTag(digest)} kept changing while the signature was added; try again`);
    }
  }
}

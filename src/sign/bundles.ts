import type { KeyObject } from 'node:crypto';
import { bundleFromJSON, BUNDLE_V03_LEGACY_MEDIA_TYPE, BUNDLE_V03_MEDIA_TYPE, type Bundle } from '@sigstore/bundle';
import { toSignedEntity, Verifier, type TrustMaterial } from '@sigstore/verify';
import { isOcipkgError, OcipkgError } from '../errors.js';
import type { ContentSource } from '../oci/content.js';
import { digestHex } from '../oci/digest.js';
import { fetchSmallBlob, parseManifest } from '../oci/manifest.js';
import { OCI_MANIFEST } from '../oci/mediatypes.js';
import type { Descriptor } from '../oci/types.js';
import { jsonObject } from './encoding.js';

/**
 * cosign 3's signatures: a sigstore bundle (v0.3 JSON) attached to the signed manifest or index as
 * an OCI 1.1 referrer (cosign's specs/BUNDLE_SPEC.md): a manifest with `artifactType` the bundle
 * media type, the empty config, one layer holding the bundle, and `subject` the signed digest.
 * Registries without the referrers API (distribution, GHCR) list referrers in an image index under
 * the fallback tag `sha256-<hex>`; that is what is read here, through any content source. What
 * cosign signs for an image with a key (cmd/cosign/cli/sign/sign.go, signDigestBundle) is a DSSE
 * envelope over an in-toto v1 statement whose one subject has the digest `{"sha256": "<hex>"}` and
 * whose predicateType is https://sigstore.dev/cosign/sign/v1.
 */

export const BUNDLE_ARTIFACT_TYPE = BUNDLE_V03_MEDIA_TYPE;
export const INTOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const INTOTO_STATEMENT_V1 = 'https://in-toto.io/Statement/v1';
export const COSIGN_SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';

/** More bundles than any image collects; a referrers list naming more is refused, not fetched. */
const MAX_BUNDLES = 64;

export function referrersTag(digest: string): string {
  return `sha256-${digestHex(digest)}`;
}

/**
 * The bundle referrers of `digest`: from the referrers API where the source has it, else from the
 * fallback tag (none without the tag), as cosign looks them up.
 */
async function bundleReferrers(source: ContentSource, digest: string): Promise<Descriptor[]> {
  const listed = await source.referrers?.(digest);
  if (listed !== undefined) return onlyBundles(listed, `referrers of ${source.location}@${digest}`);
  const tag = referrersTag(digest);
  let desc: Descriptor;
  try {
    desc = await source.resolve(tag);
  } catch (err) {
    if (isOcipkgError(err, 'ENOTFOUND')) return [];
    throw err;
  }
  const where = `${source.location}:${tag}`;
  const parsed = parseManifest(await fetchSmallBlob(source, desc), desc.mediaType, where);
  if (parsed.kind !== 'index') return []; // Not a referrers list (a tag of that name used otherwise).
  return onlyBundles(parsed.index.manifests, where);
}

function onlyBundles(manifests: Descriptor[], where: string): Descriptor[] {
  const bundles = manifests.filter((m) => m.artifactType === BUNDLE_ARTIFACT_TYPE && m.mediaType === OCI_MANIFEST);
  if (bundles.length > MAX_BUNDLES) throw new OcipkgError('ETOOLARGE', `${where}: ${bundles.length} bundles, more than ${MAX_BUNDLES}`);
  return bundles;
}

/**
 * The bundle blobs attached to `digest`: each listed referrer manifest is fetched (checked against
 * its descriptor, capped in size) and kept only when it is a bundle artifact whose subject is
 * `digest`, its first layer the bundle (as cosign's ociremote.Bundle reads it).
 */
export async function readBundles(source: ContentSource, digest: string): Promise<Buffer[]> {
  const found: Buffer[] = [];
  for (const referrer of await bundleReferrers(source, digest)) {
    const parsed = parseManifest(await fetchSmallBlob(source, referrer), referrer.mediaType, `${source.location}@${referrer.digest}`);
    if (parsed.kind !== 'manifest') continue;
    const { manifest } = parsed;
    const layer = manifest.layers[0];
    if (manifest.artifactType !== BUNDLE_ARTIFACT_TYPE || manifest.subject?.digest !== digest || layer?.mediaType !== BUNDLE_ARTIFACT_TYPE) continue;
    found.push(await fetchSmallBlob(source, layer));
  }
  return found;
}

/** A bundle ocipkg can check with a key: v0.3, a public key (no certificate), a DSSE envelope. */
function parseBundle(bytes: Buffer): Bundle | undefined {
  try {
    const json: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    const bundle = bundleFromJSON(json);
    if (bundle.mediaType !== BUNDLE_V03_MEDIA_TYPE && bundle.mediaType !== BUNDLE_V03_LEGACY_MEDIA_TYPE) return undefined;
    if (bundle.verificationMaterial.content.$case !== 'publicKey' || bundle.content.$case !== 'dsseEnvelope') return undefined;
    return bundle;
  } catch {
    return undefined;
  }
}

/** Trust material holding one key, whatever the bundle's hint; no CA, log or timestamp authority. */
function keyMaterial(key: KeyObject): TrustMaterial {
  return {
    certificateAuthorities: [],
    timestampAuthorities: [],
    tlogs: [],
    ctlogs: [],
    publicKey: () => ({ publicKey: key, validFor: () => true }),
  };
}

/**
 * The in-toto statement of `bytes` when one of `keys` signed it and its subject names `digest`,
 * with the index of that key; undefined otherwise (another tool's bundle, another digest, another
 * key, a certificate). Transparency-log entries and timestamps are not checked, as `cosign verify
 * --key --insecure-ignore-tlog` does not: ocipkg holds no log's or authority's key.
 */
export function verifyBundle(bytes: Buffer, digest: string, keys: KeyObject[]): { key: number; statement: Record<string, unknown> } | undefined {
  const bundle = parseBundle(bytes);
  if (!bundle || bundle.content.$case !== 'dsseEnvelope') return undefined;
  const envelope = bundle.content.dsseEnvelope;
  if (envelope.payloadType !== INTOTO_PAYLOAD_TYPE || envelope.signatures.length !== 1) return undefined;
  let statement: Record<string, unknown> | undefined;
  try {
    statement = jsonObject(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(envelope.payload)));
  } catch {
    return undefined;
  }
  if (!statement || statement._type !== INTOTO_STATEMENT_V1 || statement.predicateType !== COSIGN_SIGN_PREDICATE) return undefined;
  const hex = digestHex(digest);
  const subjects = Array.isArray(statement.subject) ? statement.subject : [];
  if (!subjects.some((s) => jsonObject(jsonObject(s)?.digest)?.sha256 === hex)) return undefined;
  const entity = { ...toSignedEntity(bundle), tlogEntries: [], timestamps: [] };
  for (const [index, key] of keys.entries()) {
    try {
      new Verifier(keyMaterial(key), { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 }).verify(entity);
      return { key: index, statement };
    } catch {
      // Not this key.
    }
  }
  return undefined;
}

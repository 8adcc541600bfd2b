import { OcipkgError } from '../errors.js';
import { isDigest } from '../oci/digest.js';
import { DOCKER_HUB } from '../reference.js';
import { jsonObject } from './encoding.js';

/**
 * The payload a cosign signature signs: sigstore's `SimpleContainerImage`, byte for byte as Go's
 * encoding/json marshals it (struct members in declaration order, map keys sorted, `<`, `>`, `&`,
 * U+2028 and U+2029 escaped), so that ocipkg and cosign sign the same bytes for the same image.
 */

export const COSIGN_SIGNATURE_TYPE = 'cosign container image signature';

export interface SignedImage {
  /** The digest the signer claims to sign: what a verifier compares with the image's own. */
  digest: string;
  /** `registry/repository` the signer named; cosign does not check it, it is for messages. */
  dockerReference: string;
  /** `optional`: what the signer added (cosign's `-a key=value`), undefined when it is null. */
  annotations?: Record<string, unknown>;
}

/** JSON text of a string as Go writes it: JSON.stringify's escapes plus Go's HTML-safe ones. */
function goString(value: string): string {
  // Go writes a lone surrogate (invalid UTF-8 once encoded) as U+FFFD: bytes JSON.stringify would not give.
  if (/\p{Cs}/u.test(value)) throw new OcipkgError('EINPUT', `annotation text ${JSON.stringify(value)} is not valid Unicode`);
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Go sorts a map's keys by their UTF-8 bytes, which is not JavaScript's UTF-16 order. */
function goMap(entries: Record<string, string>): string {
  const keys = Object.keys(entries).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return `{${keys.map((key) => `${goString(key)}:${goString(entries[key]!)}`).join(',')}}`;
}

/**
 * go-containerregistry spells Docker Hub `index.docker.io`; the payload cosign would write for an
 * image there says so.
 */
function dockerReference(reference: { registry: string; repository: string }): string {
  return `${reference.registry === DOCKER_HUB ? 'index.docker.io' : reference.registry}/${reference.repository}`;
}

/**
 * The bytes to sign for the manifest `digest` of an image in `reference`'s repository, with
 * cosign's `-a` annotations in `optional` (null without any, as cosign writes it).
 */
export function signingPayload(reference: { registry: string; repository: string }, digest: string, annotations?: Record<string, string>): Buffer {
  if (!isDigest(digest)) throw new OcipkgError('EINPUT', `cannot sign "${digest}": not a sha256 digest`);
  const optional = annotations && Object.keys(annotations).length > 0 ? goMap(annotations) : 'null';
  return Buffer.from(
    `{"critical":{"identity":{"docker-reference":${goString(dockerReference(reference))}},` +
      `"image":{"docker-manifest-digest":${goString(digest)}},"type":${goString(COSIGN_SIGNATURE_TYPE)}},` +
      `"optional":${optional}}`,
  );
}

/**
 * Member `name` of `object`. Go matches JSON members to struct fields without regard to case, and
 * the last match wins: a payload holding `digest` under two spellings would name one image to cosign
 * and maybe another to ocipkg, so it is refused.
 */
function member(object: Record<string, unknown>, name: string): unknown {
  const folded = (key: string) => key.toLowerCase() === name.toLowerCase() || key.toUpperCase() === name.toUpperCase();
  if (Object.keys(object).some((key) => key !== name && folded(key))) throw refused(`it spells "${name}" in more than one way`);
  return object[name];
}

function refused(detail: string): OcipkgError {
  return new OcipkgError('ESIGNATURE', `the signed payload is not a cosign image signature: ${detail}`);
}

/** What a signed payload claims; refuses anything but a cosign image signature naming a digest. */
export function parsePayload(bytes: Uint8Array): SignedImage {
  let parsed: unknown;
  try {
    // A BOM is kept, so that JSON.parse refuses it as Go does.
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes));
  } catch {
    throw refused('not JSON');
  }
  const top = jsonObject(parsed);
  if (!top) throw refused('not a JSON object');
  const critical = jsonObject(member(top, 'critical'));
  if (!critical) throw refused('no "critical" object');
  const type = member(critical, 'type');
  if (type !== COSIGN_SIGNATURE_TYPE) throw refused(`its type is ${JSON.stringify(type)}, not "${COSIGN_SIGNATURE_TYPE}"`);
  const image = jsonObject(member(critical, 'image'));
  const digest = image && member(image, 'docker-manifest-digest');
  if (typeof digest !== 'string' || !isDigest(digest)) throw refused('no sha256 "docker-manifest-digest"');
  const identity = jsonObject(member(critical, 'identity'));
  const reference = identity && member(identity, 'docker-reference');
  if (typeof reference !== 'string') throw refused('no "docker-reference"');
  const optional = member(top, 'optional');
  const annotations = jsonObject(optional);
  if (optional !== undefined && optional !== null && !annotations) throw refused('"optional" is neither null nor an object');
  return { digest, dockerReference: reference, ...(annotations && { annotations }) };
}

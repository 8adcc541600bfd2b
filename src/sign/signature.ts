import { sign, verify, type KeyObject } from 'node:crypto';
import { decodeBase64 } from './encoding.js';
import { parsePayload } from './payload.js';

/**
 * cosign's signature over a payload: ECDSA with SHA-256 of the payload bytes, the signature
 * ASN.1 DER encoded and then base64 (what cosign puts in a signature layer's annotation and prints).
 */

export function signPayload(privateKey: KeyObject, payload: Uint8Array): string {
  return sign('sha256', payload, { key: privateKey, dsaEncoding: 'der' }).toString('base64');
}

/** Whether `signatureB64` is `publicKey`'s signature of `payload`; false for anything malformed. */
export function verifyPayload(publicKey: KeyObject, payload: Uint8Array, signatureB64: string): boolean {
  const signature = decodeBase64(signatureB64);
  // Malformed DER verifies as false: OpenSSL parses it strictly, as Go's ecdsa.VerifyASN1 does.
  return signature !== undefined && verify('sha256', payload, { key: publicKey, dsaEncoding: 'der' }, signature);
}

/**
 * Which of `keys` (its index) signed `payload` as a signature of `digest`: the payload must be a
 * cosign image signature naming that digest. A payload ocipkg cannot read vouches for nothing.
 */
export function signerOf(payload: Uint8Array, signatureB64: string, digest: string, keys: KeyObject[]): number | undefined {
  let claimed: string;
  try {
    claimed = parsePayload(payload).digest;
  } catch {
    return undefined;
  }
  if (claimed !== digest) return undefined;
  const index = keys.findIndex((key) => verifyPayload(key, payload, signatureB64));
  return index < 0 ? undefined : index;
}

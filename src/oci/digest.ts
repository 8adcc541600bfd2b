import { OcipkgError } from '../errors.js';

/**
 * Digest names: validation and the hex part used as a file name. Import-light on purpose (no
 * hashing, no streams): the store's paths need it on the warm path. Hashing lives in verify.ts.
 */
const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** True for the only digest algorithm ocipkg writes and accepts: `sha256:<64 hex>`. */
export function isDigest(value: string): boolean {
  return DIGEST.test(value);
}

export function assertDigest(value: string, what = 'digest'): string {
  if (!isDigest(value)) {
    throw new OcipkgError('EMANIFEST', `invalid ${what} "${value}" (expected sha256:<64 hex digits>)`);
  }
  return value;
}

/** The hex part of a digest, used as a file name. */
export function digestHex(digest: string): string {
  return assertDigest(digest).slice('sha256:'.length);
}

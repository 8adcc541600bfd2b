import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, scryptSync, type KeyObject } from 'node:crypto';
import { xsalsa20poly1305 } from '@noble/ciphers/salsa';
import { OcipkgError } from '../errors.js';
import { decodeBase64, decodePem, encodePem, jsonObject } from './encoding.js';

/**
 * cosign's key files, so that a key pair made by either tool serves the other. The private key is
 * go-securesystemslib's `encrypted` format inside PEM: JSON naming an scrypt KDF and a NaCl
 * secretbox, whose ciphertext opens to a PKCS #8 DER key. The public key is SPKI (`PUBLIC KEY`).
 * Only ECDSA P-256 is taken: it is what `cosign generate-key-pair` makes and what ocipkg signs with.
 */

/** What cosign writes; it still reads the older type, and so does ocipkg. */
export const SIGSTORE_PRIVATE_KEY_TYPE = 'ENCRYPTED SIGSTORE PRIVATE KEY';
export const COSIGN_PRIVATE_KEY_TYPE = 'ENCRYPTED COSIGN PRIVATE KEY';
export const PUBLIC_KEY_TYPE = 'PUBLIC KEY';

/**
 * The scrypt work factors go-securesystemslib accepts (legacy 2^15, standard 2^16, OWASP 2^17), all
 * with r=8, p=1. Anything else is refused before deriving: N comes from the file, and scrypt's
 * memory grows with it.
 */
const SCRYPT_N = [32768, 65536, 131072];
const WRITTEN_N = 65536;
const SCRYPT_R = 8;
const SCRYPT_P = 1;
const SALT_BYTES = 32;
const NONCE_BYTES = 24;
const BOX_KEY_BYTES = 32;
const BOX_TAG_BYTES = 16;

export type Password = string | Uint8Array;

export interface KeyPairPems {
  privatePem: string;
  publicPem: string;
}

function boxKey(password: Password, salt: Uint8Array, n: number): Buffer {
  // scrypt takes 128 * N * r bytes (64 MiB at 2^16), over Node's default cap of 32 MiB.
  return scryptSync(password, salt, BOX_KEY_BYTES, { N: n, r: SCRYPT_R, p: SCRYPT_P, maxmem: 256 * n * SCRYPT_R });
}

function assertP256(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    const kind = key.asymmetricKeyType === 'ec' ? `EC ${key.asymmetricKeyDetails?.namedCurve}` : key.asymmetricKeyType;
    throw new OcipkgError('EKEY', `${what} is a ${kind} key; only ECDSA P-256 keys are supported`);
  }
  return key;
}

/** A new P-256 key pair, the private key encrypted under `password` as cosign writes it. */
export function generateKeyPair(password: Password): KeyPairPems {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });
  const salt = randomBytes(SALT_BYTES);
  const nonce = randomBytes(NONCE_BYTES);
  const key = boxKey(password, salt, WRITTEN_N);
  const ciphertext = xsalsa20poly1305(key, nonce).encrypt(pkcs8);
  key.fill(0);
  pkcs8.fill(0);
  // Members in the order go-securesystemslib's structs marshal them, byte strings as base64.
  const encrypted = JSON.stringify({
    kdf: { name: 'scrypt', params: { N: WRITTEN_N, r: SCRYPT_R, p: SCRYPT_P }, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(ciphertext).toString('base64'),
  });
  return {
    privatePem: encodePem(SIGSTORE_PRIVATE_KEY_TYPE, Buffer.from(encrypted)),
    publicPem: encodePem(PUBLIC_KEY_TYPE, publicKey.export({ type: 'spki', format: 'der' })),
  };
}

interface SealedKey {
  n: number;
  salt: Buffer;
  nonce: Buffer;
  ciphertext: Buffer;
}

function parseSealed(body: Buffer): SealedKey {
  const malformed = (detail: string) => new OcipkgError('EKEY', `the private key is not in cosign's encrypted format: ${detail}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw malformed('its body is not JSON');
  }
  const kdf = jsonObject(jsonObject(parsed)?.kdf);
  const params = jsonObject(kdf?.params);
  const cipher = jsonObject(jsonObject(parsed)?.cipher);
  if (!kdf || !params || !cipher) throw malformed('no kdf and cipher');
  if (kdf.name !== 'scrypt') throw malformed(`unknown kdf ${JSON.stringify(kdf.name)}`);
  if (cipher.name !== 'nacl/secretbox') throw malformed(`unknown cipher ${JSON.stringify(cipher.name)}`);
  const { N: n, r, p } = params;
  if (typeof n !== 'number' || !SCRYPT_N.includes(n) || r !== SCRYPT_R || p !== SCRYPT_P) {
    throw new OcipkgError('EKEY', `the private key uses unsupported scrypt parameters N=${String(n)} r=${String(r)} p=${String(p)} (cosign's are N=32768, 65536 or 131072 with r=8, p=1)`);
  }
  const bytes = (value: unknown) => (typeof value === 'string' ? decodeBase64(value) : undefined);
  const salt = bytes(kdf.salt);
  const nonce = bytes(cipher.nonce);
  const ciphertext = bytes(jsonObject(parsed)?.ciphertext);
  if (!salt) throw malformed('the salt is not base64');
  if (nonce?.length !== NONCE_BYTES) throw malformed(`the nonce is not ${NONCE_BYTES} bytes of base64`);
  if (!ciphertext || ciphertext.length < BOX_TAG_BYTES) throw malformed('the ciphertext is not base64 of a sealed box');
  return { n, salt, nonce, ciphertext };
}

/** The private key of a cosign key file (either PEM type), decrypted with `password`. */
export function readPrivateKey(pem: string, password: Password): KeyObject {
  const { type, body } = decodePem(pem, 'the private key');
  if (type !== SIGSTORE_PRIVATE_KEY_TYPE && type !== COSIGN_PRIVATE_KEY_TYPE) {
    throw new OcipkgError('EKEY', `the private key is a PEM "${type}" block, not a cosign key ("${SIGSTORE_PRIVATE_KEY_TYPE}")`);
  }
  const sealed = parseSealed(body);
  const key = boxKey(password, sealed.salt, sealed.n);
  let pkcs8: Uint8Array;
  try {
    pkcs8 = xsalsa20poly1305(key, sealed.nonce).decrypt(sealed.ciphertext);
  } catch (err) {
    // The box's tag covers the ciphertext: a wrong password and damaged bytes look the same.
    throw new OcipkgError('EKEY', 'wrong password for the private key (or the key file is damaged)', { cause: err });
  } finally {
    key.fill(0);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
  } catch (err) {
    throw new OcipkgError('EKEY', 'the private key decrypts to no PKCS #8 key', { cause: err });
  } finally {
    pkcs8.fill(0);
  }
  return assertP256(privateKey, 'the private key');
}

/** A `PUBLIC KEY` (SPKI) PEM, which must hold an ECDSA P-256 key. */
export function readPublicKey(pem: string): KeyObject {
  const { type, body } = decodePem(pem, 'the public key');
  // Only this type: createPublicKey would also take a certificate or a PKCS #1 RSA key.
  if (type !== PUBLIC_KEY_TYPE) throw new OcipkgError('EKEY', `the public key is a PEM "${type}" block, not "${PUBLIC_KEY_TYPE}"`);
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: body, format: 'der', type: 'spki' });
  } catch (err) {
    throw new OcipkgError('EKEY', 'the public key is not a valid SPKI key', { cause: err });
  }
  return assertP256(publicKey, 'the public key');
}

/**
 * A stable name for a key pair: `sha256:` and the hex SHA-256 of the public key's SPKI DER, the
 * same for the private key and its public key and for every PEM spelling of them.
 */
export function keyId(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return `sha256:${createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex')}`;
}

import { OcipkgError } from '../errors.js';
import { isObject } from '../json-shape.js';

/**
 * The encodings of cosign's files, as Go writes them: PEM (encoding/pem: 64-column lines) and
 * padded standard base64 (encoding/base64's StdEncoding). Reading is strict, because a key or a
 * signature that decodes to something other than what was written is one to refuse, not repair.
 */

const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Padded standard base64, or undefined (Buffer.from alone skips junk and ignores missing padding). */
export function decodeBase64(text: string): Buffer | undefined {
  if (!STRICT_BASE64.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  // The pattern admits non-zero bits in the last character's unused part; Go refuses those too.
  return bytes.toString('base64') === text ? bytes : undefined;
}

export function encodePem(type: string, body: Uint8Array): string {
  const lines = Buffer.from(body).toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.map((line) => `${line}\n`).join('')}-----END ${type}-----\n`;
}

/**
 * The first PEM block of `text` (text around it is ignored, as Go's pem.Decode does): its type and
 * body. `what` names the input in errors. PEM headers (`Proc-Type: ...`) are refused: no cosign key has them.
 */
export function decodePem(text: string, what: string): { type: string; body: Buffer } {
  const match = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/.exec(text);
  if (!match) throw new OcipkgError('EKEY', `${what} is not PEM`);
  const body = decodeBase64(match[2]!.replace(/\s+/g, ''));
  if (body === undefined) throw new OcipkgError('EKEY', `${what}: the ${match[1]} block is not base64`);
  return { type: match[1]!, body };
}

/** `value` as a JSON object (not null, not an array), or undefined. */
export function jsonObject(value: unknown): Record<string, unknown> | undefined {
  return isObject(value) ? value : undefined;
}

import type { Readable } from 'node:stream';
import { OcipkgError } from '../errors.js';
import { assertDigest } from './digest.js';
import { verifyBytes } from './verify.js';
import type { ContentSource } from './content.js';
import { INDEX_TYPES, MANIFEST_TYPES, MAX_MANIFEST_BYTES } from './mediatypes.js';
import type { Descriptor, ImageIndex, ImageManifest } from './types.js';
import { isObject, isStringMap } from '../json-shape.js';

export type ParsedManifest =
  | { kind: 'index'; index: ImageIndex }
  | { kind: 'manifest'; manifest: ImageManifest };

/** Reads a whole stream into memory, refusing more than `limit` bytes (for manifests and configs only). */
export async function readAll(stream: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      stream.destroy();
      throw new OcipkgError('ETOOLARGE', `${what} is larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * Manifests, indexes and configs are read whole into memory, so past MAX_MANIFEST_BYTES they are
 * refused (ETOOLARGE): here when a descriptor already says so, before anything is fetched...
 */
export function checkManifestSize(desc: Descriptor, what: string): void {
  if (desc.size > MAX_MANIFEST_BYTES) {
    throw new OcipkgError('ETOOLARGE', `${what} is ${desc.size} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`);
  }
}

/** ... and here as soon as the bytes do. */
export function readManifestBytes(stream: Readable, what: string): Promise<Buffer> {
  return readAll(stream, MAX_MANIFEST_BYTES, what);
}

/** Fetches a manifest, index or config from a target and checks it against its descriptor. */
export async function fetchSmallBlob(source: ContentSource, desc: Descriptor): Promise<Buffer> {
  const what = `${desc.digest} in ${source.location}`;
  checkManifestSize(desc, what);
  const bytes = await readManifestBytes(await source.fetch(desc), what);
  verifyBytes(desc, bytes, source.location);
  return bytes;
}

function checkDescriptor(d: unknown, where: string): Descriptor {
  const desc = d as Descriptor;
  if (typeof desc !== 'object' || desc === null || typeof desc.mediaType !== 'string' || typeof desc.digest !== 'string' || !Number.isSafeInteger(desc.size) || desc.size < 0) {
    throw new OcipkgError('EMANIFEST', `${where}: a descriptor lacks mediaType, digest or size`);
  }
  assertDigest(desc.digest, `digest in ${where}`);
  if (desc.annotations !== undefined && !isStringMap(desc.annotations)) {
    throw new OcipkgError('EMANIFEST', `${where}: the annotations of ${desc.digest} are not a map of strings`);
  }
  if (desc.platform !== undefined && !isPlatform(desc.platform)) {
    throw new OcipkgError('EMANIFEST', `${where}: the platform of ${desc.digest} is not an object of "os" and "architecture" strings (and an optional "variant")`);
  }
  return desc;
}

/** What triple matching reads of a platform: anything else would crash it, not fail to match. */
function isPlatform(value: unknown): boolean {
  return isObject(value) && typeof value.os === 'string' && typeof value.architecture === 'string' && (value.variant === undefined || typeof value.variant === 'string');
}

/**
 * Parses a manifest or an index. `mediaType` is what the source said (Content-Type, descriptor);
 * the document's own `mediaType` field, when present, must agree with it.
 */
export function parseManifest(bytes: Uint8Array, mediaType: string, where: string): ParsedManifest {
  if (!MANIFEST_TYPES.includes(mediaType)) {
    throw new OcipkgError('EMANIFEST', `${where}: unsupported manifest media type "${mediaType}"`);
  }
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new OcipkgError('EMANIFEST', `${where}: manifest is not JSON`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc) || doc.schemaVersion !== 2) {
    throw new OcipkgError('EMANIFEST', `${where}: not an OCI manifest or index (schemaVersion 2)`);
  }
  if (doc.mediaType !== undefined && doc.mediaType !== mediaType) {
    throw new OcipkgError('EMANIFEST', `${where}: served as ${mediaType} but declares ${String(doc.mediaType)}`);
  }
  if (INDEX_TYPES.includes(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw new OcipkgError('EMANIFEST', `${where}: index without "manifests"`);
    doc.manifests.forEach((m) => checkDescriptor(m, where));
    return { kind: 'index', index: doc as unknown as ImageIndex };
  }
  if (!Array.isArray(doc.layers) || doc.config === undefined) {
    throw new OcipkgError('EMANIFEST', `${where}: manifest without "config" and "layers"`);
  }
  checkDescriptor(doc.config, where);
  doc.layers.forEach((l) => checkDescriptor(l, where));
  return { kind: 'manifest', manifest: doc as unknown as ImageManifest };
}

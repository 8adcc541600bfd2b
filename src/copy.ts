import { OcipkgError } from './errors.js';
import type { ContentSource, ContentSink } from './oci/content.js';
import { VerifyingStream } from './oci/verify.js';
import { fetchSmallBlob, parseManifest } from './oci/manifest.js';
import { MANIFEST_TYPES } from './oci/mediatypes.js';
import type { Descriptor } from './oci/types.js';

export interface CopyOptions {
  /** Blobs moved at once. */
  concurrency?: number;
  /** Called once per blob or manifest, after it is at the destination (`skipped` when it already was). */
  onCopied?: (desc: Descriptor, skipped: boolean) => void;
  /** For an index: copy only the manifests this returns true for (the index itself is copied as is). */
  filter?: (desc: Descriptor) => boolean;
}

/** Runs `work` over `items` with at most `limit` in flight; the first failure wins. */
async function eachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  });
  await Promise.all(lanes);
}

function where(err: unknown, side: 'source' | 'destination', location: string, desc: Descriptor): never {
  if (err instanceof OcipkgError) throw err;
  throw new OcipkgError('EREGISTRY', `copying ${desc.digest} (${desc.mediaType}) failed at the ${side} ${location}: ${(err as Error).message}`, { cause: err });
}

async function copyBlob(src: ContentSource, dst: ContentSink, desc: Descriptor, options: CopyOptions): Promise<void> {
  if (await dst.exists(desc)) {
    options.onCopied?.(desc, true);
    return;
  }
  // Opened by the destination, again for each try of an upload it retries.
  const open = async () => {
    const body = await src.fetch(desc).catch((err: unknown) => where(err, 'source', src.location, desc));
    const verified = body.pipe(new VerifyingStream(desc, src.location));
    body.on('error', (err) => verified.destroy(err));
    verified.on('close', () => body.destroy());
    return verified;
  };
  await dst.push(desc, open).catch((err: unknown) => where(err, 'destination', dst.location, desc));
  options.onCopied?.(desc, false);
}

/**
 * Copies the graph under `desc` (index -> manifests -> config and layers), children before
 * parents, so a destination never holds a manifest whose blobs are missing.
 */
async function copyNode(src: ContentSource, dst: ContentSink, desc: Descriptor, options: CopyOptions): Promise<void> {
  if (!MANIFEST_TYPES.includes(desc.mediaType)) {
    await copyBlob(src, dst, desc, options);
    return;
  }
  const bytes = await fetchSmallBlob(src, desc);
  const parsed = parseManifest(bytes, desc.mediaType, `${src.location}@${desc.digest}`);
  const limit = options.concurrency ?? 4;
  if (parsed.kind === 'index') {
    const children = parsed.index.manifests.filter((m) => options.filter?.(m) ?? true);
    await eachLimited(children, 2, (child) => copyNode(src, dst, child, options));
  } else {
    await eachLimited([parsed.manifest.config, ...parsed.manifest.layers], limit, (blob) => copyBlob(src, dst, blob, options));
  }
  if (await dst.exists(desc)) {
    options.onCopied?.(desc, true);
    return;
  }
  await dst.push(desc, bytes).catch((err: unknown) => where(err, 'destination', dst.location, desc));
  options.onCopied?.(desc, false);
}

/**
 * Copies what `srcRef` names in `src` to `dst`, tagging it `dstRef` there when given; blobs the
 * destination already has are skipped. The one function behind push, pull-to-layout and publish.
 */
export async function copy(src: ContentSource, srcRef: string, dst: ContentSink, dstRef?: string, options: CopyOptions = {}): Promise<Descriptor> {
  const root = await src.resolve(srcRef);
  await copyNode(src, dst, root, options);
  if (dstRef !== undefined) await dst.tag(root, dstRef);
  return root;
}

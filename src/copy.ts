import { PassThrough, type Readable } from 'node:stream';
import { OcipkgError } from './errors.js';
import type { ContentSource, ContentSink } from './oci/content.js';
import { VerifyingStream } from './oci/verify.js';
import { limited } from './concurrency.js';
import { noteBufferChurn, transferHoldsBuffers } from './tuning.js';
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

type Side = 'source' | 'destination';

/**
 * `err` as the failure of `what` at one side of the copy. An OcipkgError keeps its code. Anything
 * else comes from local content (a layout, an archive, the store): the registry client gives every
 * network failure a code of its own.
 */
function failedAt(err: unknown, side: Side, content: { location: string }, what: string): OcipkgError {
  const code = err instanceof OcipkgError ? err.code : 'EIO';
  const why = err instanceof Error ? err.message : String(err);
  return new OcipkgError(code, `${what} failed at the ${side} ${content.location}: ${why}`, { cause: err });
}

async function at<T>(side: Side, content: { location: string }, what: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    throw failedAt(err, side, content, what);
  }
}

const copying = (desc: Descriptor) => `copying ${desc.digest} (${desc.mediaType})`;

async function copyBlob(src: ContentSource, dst: ContentSink, desc: Descriptor, options: CopyOptions): Promise<void> {
  if (await at('destination', dst, copying(desc), () => dst.exists(desc))) {
    options.onCopied?.(desc, true);
    return;
  }
  await uploadBlob(src, dst, desc);
  options.onCopied?.(desc, false);
}

/**
 * Sends one blob the destination does not have, streamed from the source and verified on the way.
 * The destination asks nothing more before it writes: the one question, `exists`, was asked above.
 */
async function uploadBlob(src: ContentSource, dst: ContentSink, desc: Descriptor): Promise<void> {
  const what = copying(desc);
  // The destination sees a failure of the source only as its stream failing, and fails with it.
  // Recorded here, where it is known to be the source's, it is reported as the source's.
  let sourceFailure: OcipkgError | undefined;
  const fromSource = (err: unknown) => (sourceFailure ??= failedAt(err, 'source', src, what));
  // Opened by the destination, again for each try of an upload it retries.
  const open = async (): Promise<Readable> => {
    sourceFailure = undefined;
    const body = await src.fetch(desc).catch((err: unknown) => {
      throw fromSource(err);
    });
    const verified = new VerifyingStream(desc, src.location);
    // The destination reads `out`. Ending it early (its own failure, a retry) destroys it with no
    // error reaching the two streams before it, so their error handlers hear only the source's.
    const out = new PassThrough();
    body.on('error', (err) => out.destroy(fromSource(err)));
    verified.on('error', (err) => out.destroy(fromSource(err)));
    // Every chunk read is a new buffer, dead once sent; V8 would let tens of MiB of them pile up.
    const released = transferHoldsBuffers('upload');
    verified.on('data', (chunk: Buffer) => noteBufferChurn(chunk.length));
    // A registry can answer (refusing the digest) before verification fails at the stream's end,
    // and stop listening: the failure is in sourceFailure, and a sink verifies what it keeps.
    out.on('error', () => {});
    out.on('close', () => {
      released();
      verified.destroy();
      body.destroy();
    });
    return body.pipe(verified).pipe(out);
  };
  try {
    await dst.push(desc, open);
  } catch (err) {
    throw sourceFailure ?? failedAt(err, 'destination', dst, what);
  }
}

/**
 * Copies the graph under `desc` (index -> manifests -> config and layers), children before
 * parents, so a destination never holds a manifest whose blobs are missing. A manifest given `tag`
 * goes up under it in one step, asked nothing first: a registry stores and tags it in one PUT.
 */
async function copyNode(src: ContentSource, dst: ContentSink, desc: Descriptor, options: CopyOptions, tag?: string): Promise<void> {
  if (!MANIFEST_TYPES.includes(desc.mediaType)) {
    await copyBlob(src, dst, desc, options);
    return;
  }
  const what = copying(desc);
  const bytes = await at('source', src, what, () => fetchSmallBlob(src, desc));
  const parsed = await at('source', src, what, async () => parseManifest(bytes, desc.mediaType, `${src.location}@${desc.digest}`));
  const limit = options.concurrency ?? 4;
  if (parsed.kind === 'index') {
    const children = parsed.index.manifests.filter((m) => options.filter?.(m) ?? true);
    await Promise.all(children.map(limited(2, (child: Descriptor) => copyNode(src, dst, child, options))));
  } else {
    await Promise.all([parsed.manifest.config, ...parsed.manifest.layers].map(limited(limit, (blob: Descriptor) => copyBlob(src, dst, blob, options))));
  }
  if (tag !== undefined) {
    await at('destination', dst, `${what} as ${tag}`, () => dst.push(desc, bytes, tag));
  } else if (await at('destination', dst, what, () => dst.exists(desc))) {
    options.onCopied?.(desc, true);
    return;
  } else {
    await at('destination', dst, what, () => dst.push(desc, bytes));
  }
  options.onCopied?.(desc, false);
}

/**
 * Copies what `srcRef` names in `src` to `dst`, tagging it `dstRef` there when given; blobs the
 * destination already has are skipped. The one function behind push, pull-to-layout and publish.
 * Every failure names its side (source or destination), where that is, and the digest (or the
 * reference, before one is known).
 */
export async function copy(src: ContentSource, srcRef: string, dst: ContentSink, dstRef?: string, options: CopyOptions = {}): Promise<Descriptor> {
  const root = await at('source', src, `resolving ${srcRef}`, () => src.resolve(srcRef));
  if (dstRef !== undefined && !MANIFEST_TYPES.includes(root.mediaType)) {
    throw failedAt(new OcipkgError('EMANIFEST', `${root.mediaType} is not a manifest or index`), 'source', src, `tagging ${root.digest} as ${dstRef}`);
  }
  await copyNode(src, dst, root, options, dstRef);
  return root;
}

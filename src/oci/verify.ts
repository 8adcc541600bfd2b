import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { OcipkgError } from '../errors.js';
import { assertDigest } from './digest.js';
import { transferStarted, type TransferSpan } from '../transfers.js';
import type { Descriptor } from './types.js';

/** Hashing: digests of bytes in memory and streams checked against their descriptors. */

export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** A descriptor for bytes already in memory (manifests, configs). */
export function descriptorFor(mediaType: string, data: Uint8Array): Descriptor {
  return { mediaType, digest: sha256(data), size: data.byteLength };
}

/** Checks that bytes in memory match a descriptor. */
export function verifyBytes(desc: Descriptor, data: Uint8Array, where = ''): void {
  const at = where ? ` from ${where}` : '';
  if (data.byteLength !== desc.size) {
    throw new OcipkgError('EBADSIZE', `${desc.digest}${at}: expected ${desc.size} bytes, got ${data.byteLength}`);
  }
  const found = sha256(data);
  if (found !== desc.digest) {
    throw new OcipkgError('EINTEGRITY', `${desc.digest}${at}: content has digest ${found}`);
  }
}

/**
 * A pass-through stream that fails unless exactly `desc.size` bytes with digest `desc.digest` went
 * through it. Too many bytes fail as soon as they arrive; a digest mismatch fails at the end, before
 * the stream reports completion, so nothing downstream can treat unverified content as finished.
 * Every blob a transfer moves passes one, so it is where the bytes are counted for progress.
 */
export class VerifyingStream extends Transform {
  private readonly hash = createHash('sha256');
  private seen = 0;
  /** Whether the span has been closed (done, or abandoned on destroy). */
  private finished = false;
  private readonly span: TransferSpan | undefined;

  constructor(
    private readonly desc: Descriptor,
    private readonly where = '',
  ) {
    super();
    assertDigest(desc.digest);
    this.span = transferStarted(desc);
  }

  get bytesSeen(): number {
    return this.seen;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.desc.size) {
      done(this.failure('EBADSIZE', `more than the expected ${this.desc.size} bytes`));
      return;
    }
    this.hash.update(chunk);
    this.span?.moved(chunk.length);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    if (this.seen !== this.desc.size) {
      done(this.failure('EBADSIZE', `expected ${this.desc.size} bytes, got ${this.seen}`));
      return;
    }
    const found = `sha256:${this.hash.digest('hex')}`;
    if (found !== this.desc.digest) {
      done(this.failure('EINTEGRITY', `content has digest ${found}`));
      return;
    }
    this.finished = true;
    this.span?.done();
    done();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // An upload that stops reading at the declared length closes this before its flush: every
    // byte went through, which is what progress reports (the digest is checked where it is kept).
    if (!this.finished) {
      if (err === null && this.seen === this.desc.size) this.span?.done();
      else this.span?.abandoned();
    }
    this.finished = true;
    callback(err);
  }

  private failure(code: 'EBADSIZE' | 'EINTEGRITY', what: string): OcipkgError {
    const at = this.where ? ` from ${this.where}` : '';
    return new OcipkgError(code, `${this.desc.digest}${at}: ${what}`);
  }
}

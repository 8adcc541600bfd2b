import { Readable } from 'node:stream';
import { OcipkgError } from '../errors.js';
import { Backoff, discard, isTransient, sleep, type HttpResponse } from './http.js';

export interface ResumeOptions {
  /** The blob's size from its descriptor: a download that has it all is not resumed. */
  size: number;
  /** The first byte the reader wants (a partial download kept from an earlier run has the rest); default 0. */
  offset?: number;
  /** The blob, for messages: `blob REGISTRY/REPOSITORY@DIGEST`. */
  what: string;
  /** Requests the blob from `offset`; resolves to a 200 or 206 response, or rejects. */
  reopen: (offset: number) => Promise<HttpResponse>;
  /** The error for a transport failure the download cannot go on from, after `attempts` tries. */
  failure: (err: unknown, attempts: number) => OcipkgError;
}

/** The first byte a 206 answer holds, from `Content-Range: bytes START-END/TOTAL`. */
function rangeStart(res: HttpResponse): number | undefined {
  const match = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(String(res.headers['content-range'] ?? '').trim());
  return match ? Number(match[1]) : undefined;
}

/**
 * How many leading bytes of `res` the reader already has, when it wants the blob from `position`:
 * none for a 206 starting there; `position` for a 200 (a server without ranges sends the whole blob,
 * so the transfer starts over and its first bytes are skipped). A range starting elsewhere is refused.
 */
function bytesToSkip(res: HttpResponse, position: number, what: string): number {
  if (res.statusCode !== 206) return position;
  const start = rangeStart(res);
  if (start !== position) {
    discard(res);
    throw new OcipkgError('EREGISTRY', `${what}: asked for bytes from ${position}, got a range starting at ${start ?? 'an unreadable offset'}`);
  }
  return 0;
}

/**
 * A blob download as one stream that outlives its connections, holding the blob from `offset`
 * on. When the body is cut off or stalls midway, the blob is requested again from the first
 * missing byte (`Range: bytes=N-`): a 206 carries on from there, a 200 (a server without ranges)
 * starts over and its first N bytes are skipped. Readers see one continuous body, so whoever
 * verifies it (VerifyingStream) still hashes the whole blob exactly once, and a server that
 * restarted with different bytes fails that check.
 */
export function resumingBody(first: HttpResponse, options: ResumeOptions): Readable {
  async function* chunks(): AsyncGenerator<Buffer> {
    let res = first;
    // The absolute offset of the next byte to pass on, and the bytes of `res` to drop before it.
    let position = options.offset ?? 0;
    let skip = bytesToSkip(res, position, options.what);
    const backoff = new Backoff();
    for (;;) {
      try {
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          const fresh = skip > 0 ? chunk.subarray(Math.min(skip, chunk.length)) : chunk;
          skip -= chunk.length - fresh.length;
          if (fresh.length === 0) continue;
          position += fresh.length;
          backoff.progressed();
          yield fresh;
        }
        // A clean end, short or not: the verifier downstream judges the size.
        return;
      } catch (err) {
        if (!isTransient(err) || position >= options.size) throw options.failure(err, backoff.failures + 1);
        const delay = backoff.next();
        if (delay === undefined) throw options.failure(err, backoff.failures);
        await sleep(delay);
      }
      res = await options.reopen(position);
      skip = bytesToSkip(res, position, options.what);
    }
  }
  return Readable.from(chunks(), { objectMode: false });
}

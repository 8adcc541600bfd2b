import { Readable } from 'node:stream';
import { OcipkgError } from '../errors.js';
import { Backoff, discard, isTransient, sleep, type HttpResponse } from './http.js';

export interface ResumeOptions {
  /** The blob's size from its descriptor: a download that has it all is not resumed. */
  size: number;
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
 * A blob download as one stream that outlives its connections. When the body is cut off or stalls
 * midway, the blob is requested again from the first missing byte (`Range: bytes=N-`): a 206 carries
 * on from there, a 200 (a server without ranges) starts over and its first N bytes are skipped.
 * Readers see one continuous body, so whoever verifies it (VerifyingStream) still hashes the whole
 * blob exactly once, and a server that restarted with different bytes fails that check.
 */
export function resumingBody(first: HttpResponse, options: ResumeOptions): Readable {
  async function* chunks(): AsyncGenerator<Buffer> {
    let res = first;
    let received = 0;
    // Bytes of the current response that were already passed on (after a restart from zero).
    let skip = 0;
    const backoff = new Backoff();
    for (;;) {
      try {
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          const fresh = skip > 0 ? chunk.subarray(Math.min(skip, chunk.length)) : chunk;
          skip -= chunk.length - fresh.length;
          if (fresh.length === 0) continue;
          received += fresh.length;
          backoff.progressed();
          yield fresh;
        }
        // A clean end, short or not: the verifier downstream judges the size.
        return;
      } catch (err) {
        if (!isTransient(err) || received >= options.size) throw options.failure(err, backoff.failures + 1);
        const delay = backoff.next();
        if (delay === undefined) throw options.failure(err, backoff.failures);
        await sleep(delay);
      }
      res = await options.reopen(received);
      if (res.statusCode === 206) {
        const start = rangeStart(res);
        if (start !== received) {
          discard(res);
          throw new OcipkgError('EREGISTRY', `${options.what}: asked for bytes from ${received}, got a range starting at ${start ?? 'an unreadable offset'}`);
        }
        skip = 0;
      } else {
        skip = received;
      }
    }
  }
  return Readable.from(chunks(), { objectMode: false });
}

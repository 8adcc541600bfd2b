import { Readable } from 'node:stream';
import { OcipkgError } from '../errors.js';
import type { BlobOpener, ContentStore } from '../oci/content.js';
import { assertDigest, isDigest } from '../oci/digest.js';
import { sha256, verifyBytes } from '../oci/verify.js';
import { checkManifestSize, parseManifest, readManifestBytes } from '../oci/manifest.js';
import { MANIFEST_TYPES, MAX_MANIFEST_BYTES, OCI_INDEX, OCI_MANIFEST } from '../oci/mediatypes.js';
import type { Descriptor } from '../oci/types.js';
import { repositoryScope, sessionFor } from './auth.js';
import { Backoff, discard, isTransient, isTransientStatus, readBody, registryOrigin, sleep, statusError, transportError, type HttpMethod, type HttpResponse } from './http.js';
import { mountBlob, noteManifestBlobs } from './mount.js';
import { resumingBody } from './resume.js';

/** Every manifest type ocipkg reads, so the registry need not convert (or refuse) what it stores. */
const MANIFEST_ACCEPT = MANIFEST_TYPES.join(', ');

type Access = 'pull' | 'pull,push';

interface RequestInit {
  headers?: Record<string, string>;
  body?: Uint8Array | Readable;
}

/** `text/plain; charset=utf-8` -> `text/plain`. */
function bareMediaType(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  return (value ?? '').split(';')[0]!.trim().toLowerCase();
}

/**
 * Content-Types that say nothing about what a document is (static file servers and some proxies
 * use them for any JSON); anything else that is not a manifest type is a wrong answer.
 */
const UNSPECIFIC_TYPES = new Set(['', 'application/json', 'application/octet-stream', 'text/plain']);

/**
 * The media type of manifest bytes whose Content-Type did not say: the document's own `mediaType`,
 * else its shape (an index has `manifests`), as the OCI image spec allows the field to be absent.
 */
function sniffManifestType(bytes: Buffer, where: string): string {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new OcipkgError('EMANIFEST', `${where} is not JSON`, { cause: err });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new OcipkgError('EMANIFEST', `${where} is not a manifest or index (not a JSON object)`);
  }
  const { mediaType, manifests } = doc as { mediaType?: unknown; manifests?: unknown };
  if (typeof mediaType === 'string' && MANIFEST_TYPES.includes(mediaType)) return mediaType;
  return Array.isArray(manifests) ? OCI_INDEX : OCI_MANIFEST;
}

/** The media type a manifest response's Content-Type stands for, sniffing only when it says nothing. */
function manifestType(res: HttpResponse, bytes: Buffer, where: string): string {
  const header = bareMediaType(res.headers['content-type']);
  if (MANIFEST_TYPES.includes(header)) return header;
  if (UNSPECIFIC_TYPES.has(header)) return sniffManifestType(bytes, where);
  throw new OcipkgError('EMANIFEST', `${where} was served as "${header}", which is not a manifest or index type`);
}

/** `err`, the last of `attempts` tries that each failed for a moment. */
function gaveUp(err: OcipkgError, attempts: number): OcipkgError {
  return new OcipkgError(err.code, `${err.message}; gave up after ${attempts} attempts`, { cause: err.cause ?? err });
}

/**
 * A repository in an OCI distribution registry, as a ContentStore. Manifest bytes it fetches or pushes
 * are kept for the life of the instance (they are small and capped), so `resolve` then `fetch`, or
 * `push` then `tag`, costs one request, not two.
 */
export class RegistryRepository implements ContentStore {
  readonly location: string;
  private readonly manifests = new Map<string, Buffer>();

  constructor(
    readonly registry: string,
    readonly repository: string,
  ) {
    this.location = `${registry}/${repository}`;
  }

  /** `path` relative to the repository's API root, e.g. `blobs/sha256:...`. */
  private async url(path: string): Promise<URL> {
    return new URL(`/v2/${this.repository}/${path}`, await registryOrigin(this.registry));
  }

  private async request(method: HttpMethod, path: string | URL, access: Access, init: RequestInit = {}): Promise<HttpResponse> {
    const url = typeof path === 'string' ? await this.url(path) : path;
    return sessionFor(this.registry).send({
      method,
      url,
      headers: init.headers ?? {},
      body: init.body,
      scopes: [repositoryScope(this.repository, access)],
    });
  }

  private async expect(res: HttpResponse, ok: (status: number) => boolean, what: string): Promise<void> {
    if (!ok(res.statusCode)) throw await statusError(res, what, this.registry);
  }

  private what(kind: 'manifest' | 'blob', reference: string): string {
    return `${kind} ${this.location}${isDigest(reference) ? '@' : ':'}${reference}`;
  }

  private isManifest(desc: Descriptor): boolean {
    return MANIFEST_TYPES.includes(desc.mediaType);
  }

  async resolve(reference: string): Promise<Descriptor> {
    const byDigest = reference.includes(':');
    if (byDigest) assertDigest(reference);
    const what = this.what('manifest', reference);
    const { res, bytes } = await this.getManifest(reference, MANIFEST_ACCEPT, what);
    const mediaType = manifestType(res, bytes, what);
    const digest = sha256(bytes);
    if (byDigest && digest !== reference) {
      throw new OcipkgError('EINTEGRITY', `${what}: registry sent content with digest ${digest}`);
    }
    this.manifests.set(digest, bytes);
    return { mediaType, digest, size: bytes.byteLength };
  }

  /**
   * The OCI 1.1 referrers API: an index of the manifests whose subject is `digest`, or undefined
   * when the registry answers 404 (it has no such API, as distribution 2 has not).
   */
  async referrers(digest: string): Promise<Descriptor[] | undefined> {
    assertDigest(digest);
    const what = `referrers of ${this.location}@${digest}`;
    const res = await this.request('GET', `referrers/${digest}`, 'pull', { headers: { accept: OCI_INDEX } });
    if (res.statusCode === 404) {
      discard(res);
      return undefined;
    }
    await this.expect(res, (s) => s === 200, what);
    const parsed = parseManifest(await readBody(res, MAX_MANIFEST_BYTES, what), OCI_INDEX, what);
    if (parsed.kind !== 'index') throw new OcipkgError('EMANIFEST', `${what}: not an index`);
    return parsed.index.manifests;
  }

  /** A manifest or index read whole (capped at MAX_MANIFEST_BYTES) and checked against `desc`. */
  async fetchManifestBytes(desc: Descriptor): Promise<Buffer> {
    const cached = this.manifests.get(desc.digest);
    if (cached) return cached;
    const what = this.what('manifest', desc.digest);
    checkManifestSize(desc, what);
    const { bytes } = await this.getManifest(desc.digest, `${desc.mediaType}, ${MANIFEST_ACCEPT}`, what);
    verifyBytes(desc, bytes, this.location);
    this.manifests.set(desc.digest, bytes);
    return bytes;
  }

  /**
   * A manifest read whole (capped at MAX_MANIFEST_BYTES). A body cut off or stalled midway is
   * fetched again, with the same backoff as a failed request; it is small, so no ranges.
   */
  private async getManifest(reference: string, accept: string, what: string): Promise<{ res: HttpResponse; bytes: Buffer }> {
    const backoff = new Backoff();
    for (;;) {
      const res = await this.request('GET', `manifests/${reference}`, 'pull', { headers: { accept } });
      await this.expect(res, (s) => s === 200, what);
      try {
        const bytes = await readBody(res, MAX_MANIFEST_BYTES, what);
        noteManifestBlobs(this.registry, this.repository, bytes);
        return { res, bytes };
      } catch (err) {
        const delay = isTransient(err) ? backoff.next() : undefined;
        if (delay === undefined) throw transportError(err, await this.url(`manifests/${reference}`), this.registry, Math.max(backoff.failures, 1));
        await sleep(delay);
      }
    }
  }

  /**
   * A blob's bytes as one stream that resumes across dropped or stalled connections (see
   * resume.ts). Redirects (to a CDN, commonly) are followed by the session, without credentials.
   * A Content-Length other than the descriptor's size is refused before any byte is read.
   */
  async fetch(desc: Descriptor): Promise<Readable> {
    return this.fetchFrom(desc, 0);
  }

  /**
   * A blob's bytes from `offset` on (the rest of a download an earlier run kept), asked for with
   * `Range: bytes=OFFSET-`; a server that ignores ranges sends it all and the first bytes are
   * skipped (resume.ts). `offset` must be below the size: the distribution registry answers a range
   * starting at the blob's end with 416, so the caller recognises a complete partial itself.
   */
  async fetchFrom(desc: Descriptor, offset: number): Promise<Readable> {
    assertDigest(desc.digest);
    if (this.isManifest(desc)) return Readable.from([await this.fetchManifestBytes(desc)]);
    if (!Number.isSafeInteger(offset) || offset < 0 || (offset > 0 && offset >= desc.size)) throw new RangeError(`offset ${offset} outside a blob of ${desc.size} bytes`);
    const what = this.what('blob', desc.digest);
    const path = `blobs/${desc.digest}`;
    const res = await this.request('GET', path, 'pull', offset > 0 ? { headers: { range: `bytes=${offset}-` } } : {});
    await this.expect(res, (s) => s === 200 || (offset > 0 && s === 206), what);
    const declared = res.headers['content-length'];
    const expected = res.statusCode === 206 ? desc.size - offset : desc.size;
    if (declared !== undefined && Number(declared) !== expected) {
      discard(res);
      throw new OcipkgError('EBADSIZE', `${what}: registry sent ${String(declared)} bytes, the descriptor says ${expected}${res.statusCode === 206 ? ` from byte ${offset}` : ''}`);
    }
    const url = await this.url(path);
    return resumingBody(res, {
      size: desc.size,
      offset,
      what,
      reopen: async (offset) => {
        const again = await this.request('GET', path, 'pull', { headers: { range: `bytes=${offset}-` } });
        await this.expect(again, (s) => s === 200 || s === 206, what);
        return again;
      },
      failure: (err, attempts) => transportError(err, url, this.registry, attempts),
    });
  }

  async exists(desc: Descriptor): Promise<boolean> {
    assertDigest(desc.digest);
    const kind = this.isManifest(desc) ? 'manifest' : 'blob';
    const res = await this.request('HEAD', `${kind}s/${desc.digest}`, 'pull', {
      ...(kind === 'manifest' && { headers: { accept: `${desc.mediaType}, ${MANIFEST_ACCEPT}` } }),
    });
    if (res.statusCode === 404) {
      await res.body.dump();
      return false;
    }
    await this.expect(res, (s) => s === 200, this.what(kind, desc.digest));
    await res.body.dump();
    return true;
  }

  /**
   * A blob goes up as one upload session (POST for a Location, then every byte in one PUT). A
   * session that fails for a moment (a reset, a 5xx, 408, 429) is abandoned and a new one started,
   * with a fresh stream from `content`, under the same backoff as any other request.
   */
  async push(desc: Descriptor, content: BlobOpener | Uint8Array): Promise<void> {
    assertDigest(desc.digest);
    if (this.isManifest(desc)) {
      await this.pushManifest(desc, typeof content === 'function' ? await content() : content);
      return;
    }
    if (await this.exists(desc)) return;
    if (await mountBlob(this, desc)) return;
    const what = `upload of ${this.what('blob', desc.digest)}`;
    const backoff = new Backoff();
    for (;;) {
      const body = typeof content === 'function' ? await content() : content;
      let failed: HttpResponse | undefined;
      try {
        failed = await this.uploadOnce(desc, body, what);
      } catch (err) {
        if (body instanceof Readable) body.destroy();
        const transient = err instanceof OcipkgError && err.code === 'EUNREACHABLE' && isTransient(err.cause);
        const delay = transient ? backoff.next() : undefined;
        if (delay === undefined) throw backoff.failures > 1 ? gaveUp(err as OcipkgError, backoff.failures) : err;
        await sleep(delay);
        continue;
      }
      if (failed === undefined) return;
      if (body instanceof Readable) body.destroy();
      const delay = backoff.next(failed.headers['retry-after']);
      if (delay === undefined) {
        const err = await statusError(failed, what, this.registry);
        throw backoff.failures > 1 ? gaveUp(err, backoff.failures) : err;
      }
      await failed.body.dump();
      await sleep(delay);
    }
  }

  /** One upload session; undefined once the blob is in, else the response that says "not now". */
  private async uploadOnce(desc: Descriptor, body: Readable | Uint8Array, what: string): Promise<HttpResponse | undefined> {
    const started = await this.request('POST', 'blobs/uploads/', 'pull,push', { headers: { 'content-length': '0' } });
    if (started.statusCode !== 202) {
      if (isTransientStatus(started.statusCode)) return started;
      throw await statusError(started, what, this.registry);
    }
    await started.body.dump();
    const location = started.headers.location;
    if (typeof location !== 'string') {
      throw new OcipkgError('EREGISTRY', `${this.registry} started an ${what} without a Location`);
    }
    // Location may be relative or absolute and may already carry a query (the upload state).
    const url = new URL(location, await registryOrigin(this.registry));
    url.searchParams.set('digest', desc.digest);
    // Bytes go as a stream too: retrying a PUT to a session that failed is push's decision, not send's.
    const res = await this.request('PUT', url, 'pull,push', {
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
      body: body instanceof Readable ? body : Readable.from([body]),
    });
    if (isTransientStatus(res.statusCode)) return res;
    await this.expect(res, (s) => s === 201 || s === 204 || s === 200, what);
    await res.body.dump();
    return undefined;
  }

  private async pushManifest(desc: Descriptor, content: Readable | Uint8Array): Promise<void> {
    const what = this.what('manifest', desc.digest);
    checkManifestSize(desc, what);
    const bytes = content instanceof Readable ? await readManifestBytes(content, what) : Buffer.from(content);
    verifyBytes(desc, bytes, this.location);
    await this.putManifest(desc, bytes, desc.digest);
    noteManifestBlobs(this.registry, this.repository, bytes);
    this.manifests.set(desc.digest, bytes);
  }

  private async putManifest(desc: Descriptor, bytes: Buffer, reference: string): Promise<void> {
    const res = await this.request('PUT', `manifests/${reference}`, 'pull,push', {
      headers: { 'content-type': desc.mediaType },
      body: bytes,
    });
    await this.expect(res, (s) => s === 201 || s === 200, this.what('manifest', reference));
    await res.body.dump();
  }

  async tag(desc: Descriptor, reference: string): Promise<void> {
    if (!MANIFEST_TYPES.includes(desc.mediaType)) {
      throw new OcipkgError('EMANIFEST', `cannot tag ${desc.digest} in ${this.location}: ${desc.mediaType} is not a manifest or index`);
    }
    await this.putManifest(desc, await this.fetchManifestBytes(desc), reference);
  }
}

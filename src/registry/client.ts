import { Readable } from 'node:stream';
import { OcipkgError } from '../errors.js';
import type { Target } from '../oci/content.js';
import { assertDigest, isDigest, sha256, verifyBytes } from '../oci/digest.js';
import { MANIFEST_TYPES, MAX_MANIFEST_BYTES, OCI_INDEX, OCI_MANIFEST } from '../oci/mediatypes.js';
import type { Descriptor } from '../oci/types.js';
import { repositoryScope, sessionFor } from './auth.js';
import { readAll, readBody, registryOrigin, statusError, type HttpMethod, type HttpResponse } from './http.js';

/** Every manifest type ocipkg reads, so the registry need not convert (or refuse) what it stores. */
const MANIFEST_ACCEPT = MANIFEST_TYPES.join(', ');
/** One page of the tag list is a JSON array of short strings; a generous cap still bounds memory. */
const MAX_TAG_PAGE_BYTES = 4 * 1024 * 1024;

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
 * The media type of manifest bytes whose Content-Type did not say: the document's own `mediaType`,
 * else its shape (an index has `manifests`), as the OCI image spec allows the field to be absent.
 */
function sniffManifestType(bytes: Buffer, where: string): string {
  let doc: { mediaType?: unknown; manifests?: unknown };
  try {
    doc = JSON.parse(bytes.toString('utf8')) as typeof doc;
  } catch (err) {
    throw new OcipkgError('EMANIFEST', `${where} is not JSON`, { cause: err });
  }
  if (typeof doc.mediaType === 'string' && MANIFEST_TYPES.includes(doc.mediaType)) return doc.mediaType;
  return Array.isArray(doc.manifests) ? OCI_INDEX : OCI_MANIFEST;
}

/** The `rel="next"` target of a Link header, as the distribution spec paginates tag lists. */
function nextLink(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header.join(', ') : header;
  return value ? /<([^>]*)>\s*;[^,]*\brel="?next"?/.exec(value)?.[1] : undefined;
}

/**
 * A repository in an OCI distribution registry, as a Target. Manifest bytes it fetches or pushes
 * are kept for the life of the instance (they are small and capped), so `resolve` then `fetch`, or
 * `push` then `tag`, costs one request, not two.
 */
export class RegistryTarget implements Target {
  readonly location: string;
  private readonly manifests = new Map<string, Buffer>();

  constructor(
    readonly registry: string,
    readonly repository: string,
  ) {
    this.location = `${registry}/${repository}`;
  }

  private async request(method: HttpMethod, path: string | URL, access: Access, init: RequestInit = {}): Promise<HttpResponse> {
    const url = typeof path === 'string' ? new URL(`/v2/${this.repository}/${path}`, await registryOrigin(this.registry)) : path;
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
    const res = await this.request('GET', `manifests/${reference}`, 'pull', { headers: { accept: MANIFEST_ACCEPT } });
    await this.expect(res, (s) => s === 200, what);
    const bytes = await readBody(res, MAX_MANIFEST_BYTES, what);
    const header = bareMediaType(res.headers['content-type']);
    const mediaType = MANIFEST_TYPES.includes(header) ? header : sniffManifestType(bytes, what);
    const digest = sha256(bytes);
    if (byDigest && digest !== reference) {
      throw new OcipkgError('EINTEGRITY', `${what}: registry sent content with digest ${digest}`);
    }
    this.manifests.set(digest, bytes);
    return { mediaType, digest, size: bytes.byteLength };
  }

  /** A manifest or index read whole (capped at MAX_MANIFEST_BYTES) and checked against `desc`. */
  async fetchManifestBytes(desc: Descriptor): Promise<Buffer> {
    const cached = this.manifests.get(desc.digest);
    if (cached) return cached;
    const what = this.what('manifest', desc.digest);
    if (desc.size > MAX_MANIFEST_BYTES) {
      throw new OcipkgError('ETOOLARGE', `${what} is ${desc.size} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`);
    }
    const res = await this.request('GET', `manifests/${desc.digest}`, 'pull', {
      headers: { accept: `${desc.mediaType}, ${MANIFEST_ACCEPT}` },
    });
    await this.expect(res, (s) => s === 200, what);
    const bytes = await readBody(res, MAX_MANIFEST_BYTES, what);
    verifyBytes(desc, bytes, this.location);
    this.manifests.set(desc.digest, bytes);
    return bytes;
  }

  async fetch(desc: Descriptor): Promise<Readable> {
    assertDigest(desc.digest);
    if (this.isManifest(desc)) return Readable.from([await this.fetchManifestBytes(desc)]);
    // Redirects (to a CDN, commonly) are followed by the session, without credentials.
    const res = await this.request('GET', `blobs/${desc.digest}`, 'pull');
    await this.expect(res, (s) => s === 200, this.what('blob', desc.digest));
    return res.body;
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

  async push(desc: Descriptor, content: Readable | Uint8Array): Promise<void> {
    assertDigest(desc.digest);
    if (this.isManifest(desc)) {
      await this.pushManifest(desc, content);
      return;
    }
    if (await this.exists(desc)) {
      // Nothing will read the caller's stream; release its file handle now rather than at GC.
      if (content instanceof Readable) content.destroy();
      return;
    }
    const what = this.what('blob', desc.digest);
    const started = await this.request('POST', 'blobs/uploads/', 'pull,push', { headers: { 'content-length': '0' } });
    await this.expect(started, (s) => s === 202, `upload of ${what}`);
    await started.body.dump();
    const location = started.headers.location;
    if (typeof location !== 'string') {
      throw new OcipkgError('EREGISTRY', `${this.registry} started an upload of ${what} without a Location`);
    }
    // Location may be relative or absolute and may already carry a query (the upload state).
    const url = new URL(location, await registryOrigin(this.registry));
    url.searchParams.set('digest', desc.digest);
    const res = await this.request('PUT', url, 'pull,push', {
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
      body: content,
    });
    await this.expect(res, (s) => s === 201 || s === 204 || s === 200, `upload of ${what}`);
    await res.body.dump();
  }

  private async pushManifest(desc: Descriptor, content: Readable | Uint8Array): Promise<void> {
    const what = this.what('manifest', desc.digest);
    if (desc.size > MAX_MANIFEST_BYTES) {
      throw new OcipkgError('ETOOLARGE', `${what} is ${desc.size} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`);
    }
    const bytes = content instanceof Readable ? await readAll(content, MAX_MANIFEST_BYTES, what) : Buffer.from(content);
    verifyBytes(desc, bytes, this.location);
    await this.putManifest(desc, bytes, desc.digest);
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

  /** All tags of the repository, following the registry's `Link` pagination. */
  async listTags(pageSize?: number): Promise<string[]> {
    const what = `tag list of ${this.location}`;
    let url: URL | undefined = new URL(`/v2/${this.repository}/tags/list`, await registryOrigin(this.registry));
    if (pageSize !== undefined) url.searchParams.set('n', String(pageSize));
    const tags: string[] = [];
    while (url) {
      const res = await this.request('GET', url, 'pull');
      await this.expect(res, (s) => s === 200, what);
      const next = nextLink(res.headers.link);
      let page: { tags?: unknown };
      try {
        page = JSON.parse((await readBody(res, MAX_TAG_PAGE_BYTES, what)).toString('utf8')) as typeof page;
      } catch (err) {
        if (err instanceof OcipkgError) throw err;
        throw new OcipkgError('EREGISTRY', `${this.registry} sent an unreadable ${what}`, { cause: err });
      }
      // A repository without tags may say `"tags": null`.
      if (Array.isArray(page.tags)) tags.push(...page.tags.filter((t): t is string => typeof t === 'string'));
      url = next === undefined ? undefined : new URL(next, url);
    }
    return tags;
  }
}

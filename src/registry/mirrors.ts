import { createWriteStream } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OcipkgError } from '../errors.js';
import { uniqueName } from '../fs/names.js';
import type { ContentSource } from '../oci/content.js';
import { MANIFEST_TYPES } from '../oci/mediatypes.js';
import type { Descriptor } from '../oci/types.js';
import { VerifyingStream } from '../oci/verify.js';
import type { RegistryReference } from '../reference.js';
import { RegistryRepository } from './client.js';
import { debugLine as log } from './debug-line.js';
import { allowPlainHttp } from './http.js';
import { pullEndpoints } from './registries-conf.js';

/**
 * A pull served by several endpoints: the mirrors registries.conf lists for a reference, then the
 * primary. containers/image serves a whole pull from the first endpoint that has the manifest; here
 * every request walks the list on its own, which content addressing makes safe: a blob or manifest
 * fetched by digest is verified, so a mirror that lacks it, fails, or sends other bytes only means
 * the next endpoint is asked. Each endpoint is its own RegistryRepository, so each host gets its
 * own session and credentials, and a mirror never sees the primary's.
 */

interface Endpoint {
  repository: RegistryRepository;
  /** `mirror 127.0.0.1:5001/acme/zstd`, `primary ghcr.io/acme/zstd`. */
  label: string;
}

export class EndpointSource implements ContentSource {
  readonly location: string;

  /** `spoolDir`: where a mirror's blob is held until verified (the store's tmp/). */
  constructor(
    private readonly endpoints: Endpoint[],
    private readonly spoolDir: string,
  ) {
    this.location = endpoints.at(-1)!.repository.location;
  }

  /**
   * `attempt` at each endpoint in turn until one succeeds. Only OcipkgErrors (what a registry or the
   * network did) move on to the next endpoint; anything else is a local failure and stops the pull.
   * After the last, one error names every endpoint and its failure, with the primary's code.
   */
  private async walk<T>(what: string, attempt: (endpoint: Endpoint, last: boolean) => Promise<T>): Promise<T> {
    const failures: string[] = [];
    let lastError: OcipkgError | undefined;
    for (const [i, endpoint] of this.endpoints.entries()) {
      try {
        const result = await attempt(endpoint, i === this.endpoints.length - 1);
        log(`${what} from ${endpoint.label}`);
        return result;
      } catch (err) {
        if (!(err instanceof OcipkgError)) throw err;
        lastError = err;
        failures.push(`${endpoint.label}: ${err.message}`);
        if (i < this.endpoints.length - 1) log(`${what}: ${endpoint.label} failed (${err.message}); trying the next endpoint`);
      }
    }
    throw new OcipkgError(lastError!.code, `${what}: every endpoint failed: ${failures.join('; ')}`, { cause: lastError });
  }

  resolve(reference: string): Promise<Descriptor> {
    return this.walk(`${this.location}${reference.includes(':') ? '@' : ':'}${reference}`, ({ repository }) => repository.resolve(reference));
  }

  /**
   * Manifests are small and verified whole by the client. A blob from any endpoint but the last is
   * held in the spool until its digest checks out, so a mirror's wrong bytes never reach the reader
   * and the next endpoint can still serve it; the last endpoint (the primary) streams straight
   * through, verified by the reader as always.
   */
  fetch(desc: Descriptor): Promise<Readable> {
    if (MANIFEST_TYPES.includes(desc.mediaType)) {
      return this.walk(`manifest ${desc.digest}`, async ({ repository }) => Readable.from([await repository.fetchManifestBytes(desc)]));
    }
    return this.walk(`blob ${desc.digest}`, ({ repository }, last) => (last ? repository.fetch(desc) : this.spooled(repository, desc)));
  }

  /**
   * The rest of a blob from `offset`, for a download that continues a partial one. Streamed from the
   * first endpoint that answers, unspooled: the part already held cannot be verified apart from the
   * rest, so the reader's check of the whole blob is the one check, and a mismatch there makes the
   * store fetch the blob again from nothing, through `fetch` and its per-endpoint fallback.
   */
  fetchFrom(desc: Descriptor, offset: number): Promise<Readable> {
    return this.walk(`blob ${desc.digest} from byte ${offset}`, ({ repository }) => repository.fetchFrom(desc, offset));
  }

  /** The blob fetched whole into the spool and verified, then read back from an unlinked file. */
  private async spooled(repository: RegistryRepository, desc: Descriptor): Promise<Readable> {
    await mkdir(this.spoolDir, { recursive: true });
    const path = join(this.spoolDir, uniqueName('mirror-'));
    try {
      await pipeline(await repository.fetch(desc), new VerifyingStream(desc, repository.location), createWriteStream(path, { flags: 'wx' }));
      const handle = await open(path);
      await rm(path);
      return handle.createReadStream();
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
  }

  async exists(desc: Descriptor): Promise<boolean> {
    for (const { repository } of this.endpoints) {
      if (await repository.exists(desc).catch(() => false)) return true;
    }
    return false;
  }

  /** The first endpoint that has the referrers API answers; a pull-through cache commonly has not. */
  async referrers(digest: string): Promise<Descriptor[] | undefined> {
    for (const [i, { repository }] of this.endpoints.entries()) {
      const last = i === this.endpoints.length - 1;
      const found = await repository.referrers(digest).catch((err: unknown) => {
        if (last) throw err;
        return undefined;
      });
      if (found !== undefined) return found;
    }
    return undefined;
  }
}

/**
 * The content source a pull of `ref` reads: the registry itself, or, when registries.conf gives it
 * mirrors or a rewritten location, an EndpointSource over them.
 */
export function pullSource(ref: RegistryReference, spoolDir: string): ContentSource {
  const endpoints = pullEndpoints(ref);
  for (const endpoint of endpoints) if (endpoint.insecure) allowPlainHttp(endpoint.registry);
  const repositories = endpoints.map((e) => ({ repository: new RegistryRepository(e.registry, e.repository), label: `${e.mirror ? 'mirror' : 'primary'} ${e.registry}/${e.repository}` }));
  if (repositories.length === 1) return repositories[0]!.repository;
  return new EndpointSource(repositories, spoolDir);
}

import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errno, OcipkgError } from '../errors.js';
import type { BlobOpener, ContentSource, ContentStore } from '../oci/content.js';
import { digestHex, isDigest } from '../oci/digest.js';
import { verifyBytes, VerifyingStream } from '../oci/verify.js';
import { readManifestBytes } from '../oci/manifest.js';
import { ANNOTATION_REF_NAME, OCI_INDEX, OCI_MANIFEST } from '../oci/mediatypes.js';
import { OCI_LAYOUT_FILE, type Descriptor, type ImageIndex } from '../oci/types.js';
import { createFileOnce, publishFile, writeFileAtomic } from '../fs/atomic.js';
import { uniqueName } from '../fs/names.js';

export interface LayoutOptions {
  /**
   * Where pushes write their temp files; must be on the same file system as the layout. Default:
   * the layout directory itself (the store passes its `tmp/`).
   */
  ingestDir?: string;
  /** What messages call it; default `oci:DIR`. */
  location?: string;
}

export interface LayoutRef {
  /** The `org.opencontainers.image.ref.name` annotation. */
  name: string;
  descriptor: Descriptor;
}

const EMPTY_INDEX: ImageIndex = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] };

/**
 * Read-modify-write of index.json is serialised per directory within this process; across processes
 * the last writer wins, which is the same contract skopeo and oras give for a layout.
 */
const indexLocks = new Map<string, Promise<unknown>>();

function withIndexLock<T>(dir: string, work: () => Promise<T>): Promise<T> {
  const previous = indexLocks.get(dir) ?? Promise.resolve();
  const next = previous.then(work, work);
  const settled = next.catch(() => undefined);
  indexLocks.set(dir, settled);
  void settled.then(() => {
    if (indexLocks.get(dir) === settled) indexLocks.delete(dir);
  });
  return next;
}

/**
 * The read side of an OCI image layout, wherever its files are (a directory, or entries of an
 * oci-archive read in place): index.json, tags as the `ref.name` annotations of its entries, blobs
 * by digest.
 */
export abstract class LayoutReader implements ContentSource {
  abstract readonly location: string;

  /** index.json's bytes; undefined when the layout has none. */
  protected abstract readIndexBytes(): Promise<Buffer | undefined>;
  abstract fetch(desc: Descriptor): Promise<Readable>;
  abstract exists(desc: Descriptor): Promise<boolean>;

  /** index.json; a layout without one is not a layout (EINPUT). */
  async readIndex(): Promise<ImageIndex> {
    const bytes = await this.readIndexBytes();
    if (bytes === undefined) throw new OcipkgError('EINPUT', `${this.location} is not an OCI image layout (no index.json)`);
    let index: ImageIndex;
    try {
      index = JSON.parse(bytes.toString('utf8')) as ImageIndex;
    } catch (err) {
      throw new OcipkgError('EMANIFEST', `${this.location}: index.json is not JSON`, { cause: err });
    }
    if (typeof index !== 'object' || index === null || !Array.isArray(index.manifests)) {
      throw new OcipkgError('EMANIFEST', `${this.location}: index.json has no "manifests" list`);
    }
    return index;
  }

  /** The tagged entries of index.json. */
  async listRefs(): Promise<LayoutRef[]> {
    const index = await this.readIndex();
    return index.manifests.flatMap((descriptor) => {
      const name = descriptor.annotations?.[ANNOTATION_REF_NAME];
      return name === undefined ? [] : [{ name, descriptor }];
    });
  }

  /**
   * A digest, or a tag: the entry whose ref.name is the tag, else one whose ref.name is a full image
   * reference ending in `:TAG` (containerd and some exporters write those). With no reference, or
   * with the default `latest` when nothing is named at all, a layout holding exactly one manifest
   * resolves to it, as skopeo does.
   */
  async resolve(reference?: string): Promise<Descriptor> {
    const { manifests } = await this.readIndex();
    if (reference !== undefined && isDigest(reference)) return this.resolveDigest(reference, manifests);
    const named = (d: Descriptor) => d.annotations?.[ANNOTATION_REF_NAME];
    if (reference === undefined || (reference === 'latest' && manifests.every((d) => named(d) === undefined))) {
      if (manifests.length === 1) return manifests[0]!;
      throw new OcipkgError('ENOTFOUND', `${this.location} holds ${manifests.length} manifests; name one with :TAG or @DIGEST`);
    }
    const exact = manifests.find((d) => named(d) === reference);
    if (exact) return exact;
    const suffixed = manifests.filter((d) => {
      const name = named(d);
      return name !== undefined && name.endsWith(`:${reference}`) && name.lastIndexOf(':') > name.lastIndexOf('/');
    });
    const digests = new Set(suffixed.map((d) => d.digest));
    if (digests.size === 1) return suffixed[0]!;
    if (digests.size > 1) {
      throw new OcipkgError('ENOTFOUND', `${this.location}: "${reference}" is ambiguous (${suffixed.map(named).join(', ')})`);
    }
    const available = manifests.map(named).filter((n) => n !== undefined);
    throw new OcipkgError('ENOTFOUND', `${this.location} has no tag "${reference}" (available: ${available.join(', ') || 'none'})`);
  }

  /** A digest listed in index.json, else a manifest blob found by digest (its media type read from it). */
  private async resolveDigest(digest: string, manifests: Descriptor[]): Promise<Descriptor> {
    const listed = manifests.find((d) => d.digest === digest);
    if (listed) return listed;
    const bytes = await readManifestBytes(await this.fetch({ mediaType: OCI_MANIFEST, digest, size: 0 }), `${digest} in ${this.location}`);
    let mediaType: unknown;
    try {
      mediaType = (JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown }).mediaType;
    } catch {
      throw new OcipkgError('EMANIFEST', `${digest} in ${this.location} is not a manifest (not JSON)`);
    }
    const desc: Descriptor = { mediaType: typeof mediaType === 'string' ? mediaType : OCI_MANIFEST, digest, size: bytes.length };
    verifyBytes(desc, bytes, this.location);
    return desc;
  }
}

/**
 * An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/<hex>`), as skopeo's and
 * oras's `oci:` transports read and write it. The directory is created on the first push or tag.
 */
export class LayoutDirectory extends LayoutReader implements ContentStore {
  readonly dir: string;
  readonly location: string;
  private readonly ingestDir: string;

  constructor(dir: string, options: LayoutOptions = {}) {
    super();
    this.dir = resolvePath(dir);
    this.location = options.location ?? `oci:${dir}`;
    this.ingestDir = options.ingestDir ?? this.dir;
  }

  blobPath(digest: string): string {
    return join(this.dir, 'blobs', 'sha256', digestHex(digest));
  }

  protected async readIndexBytes(): Promise<Buffer | undefined> {
    try {
      return await readFile(join(this.dir, 'index.json'));
    } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return undefined;
      throw err;
    }
  }

  async fetch(desc: Descriptor): Promise<Readable> {
    try {
      // Opening first turns a missing blob into an error here rather than on the stream.
      const handle = await open(this.blobPath(desc.digest), 'r');
      return handle.createReadStream();
    } catch (err) {
      if (errno(err) === 'ENOENT') throw new OcipkgError('ENOTFOUND', `${desc.digest} is not in ${this.location}`, { cause: err });
      throw err;
    }
  }

  async exists(desc: Descriptor): Promise<boolean> {
    try {
      return (await stat(this.blobPath(desc.digest))).isFile();
    } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return false;
      throw err;
    }
  }

  /** Creates the layout skeleton if missing; an existing `oci-layout` or index.json is never replaced. */
  async ensureLayout(): Promise<void> {
    await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true });
    await mkdir(this.ingestDir, { recursive: true });
    await createFileOnce(join(this.dir, 'oci-layout'), JSON.stringify(OCI_LAYOUT_FILE));
    await createFileOnce(join(this.dir, 'index.json'), JSON.stringify(EMPTY_INDEX));
  }

  /**
   * Verifies content against `desc` on its way into a temp file, then renames it into place
   * read-only, then points `tag` at it when given. Another writer of the same digest getting there
   * first is success.
   */
  async push(desc: Descriptor, content: BlobOpener | Uint8Array, tag?: string): Promise<void> {
    await this.pushBlob(desc, content);
    if (tag !== undefined) await this.tag(desc, tag);
  }

  private async pushBlob(desc: Descriptor, content: BlobOpener | Uint8Array): Promise<void> {
    await this.ensureLayout();
    const tmp = join(this.ingestDir, uniqueName(`.ingest-${digestHex(desc.digest).slice(0, 12)}-`));
    try {
      if (content instanceof Uint8Array) {
        verifyBytes(desc, content, this.location);
        await writeFile(tmp, content, { flag: 'wx' });
      } else {
        await pipeline(await content(), new VerifyingStream(desc, this.location), (await open(tmp, 'wx')).createWriteStream());
      }
      await publishFile(tmp, this.blobPath(desc.digest));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** Points `reference` at `desc` in index.json, replacing an entry with the same ref.name. */
  async tag(desc: Descriptor, reference: string): Promise<void> {
    await this.ensureLayout();
    await withIndexLock(this.dir, async () => {
      const index = await this.readIndex();
      const entry: Descriptor = {
        mediaType: desc.mediaType,
        digest: desc.digest,
        size: desc.size,
        ...(desc.platform && { platform: desc.platform }),
        ...(desc.artifactType && { artifactType: desc.artifactType }),
        annotations: { ...desc.annotations, [ANNOTATION_REF_NAME]: reference },
      };
      index.manifests = [...index.manifests.filter((d) => d.annotations?.[ANNOTATION_REF_NAME] !== reference), entry];
      await writeFileAtomic(join(this.dir, 'index.json'), JSON.stringify(index));
    });
  }
}

import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Header } from 'tar';
import { OcipkgError } from '../errors.js';
import { digestHex } from '../oci/digest.js';
import { verifyBytes, VerifyingStream } from '../oci/verify.js';
import { ANNOTATION_REF_NAME, OCI_INDEX } from '../oci/mediatypes.js';
import { OCI_LAYOUT_FILE, type Descriptor, type ImageIndex } from '../oci/types.js';

/**
 * Writes an oci-archive: a tar of an OCI image layout holding one image. Entries are `oci-layout`,
 * `index.json`, `blobs/`, `blobs/sha256/` and the blobs sorted by digest, all with mtime 0, uid/gid
 * 0 and mode 0644 / 0755, so the same content gives the same archive bytes.
 *
 * Compatibility with the Rust ocipkg (termoshtt/ocipkg, image/write.rs and image/layout.rs): it
 * writes exactly one manifest in index.json, annotated `org.opencontainers.image.ref.name` with the
 * full image name `host[:port]/repository:tag` (its `ImageName` display form, never just a tag),
 * and `load` parses that annotation back with `ImageName::parse`, which takes the part before the
 * first `/` as the host. So `refName` must be a full name with registry and tag, e.g.
 * `ghcr.io/acme/zstd:1.5.6`. It finds `index.json` and `blobs/sha256/<hex>` by exact entry path,
 * so paths carry no `./` prefix. skopeo reads the same archive as `oci-archive:PATH`.
 */

export interface ArchiveBlob {
  descriptor: Descriptor;
  /** Bytes in memory (manifest, config) ... */
  data?: Uint8Array;
  /** ... or a file to stream from (a layer); verified against the descriptor on the way. */
  file?: string;
}

const BLOCK = 512;
const EPOCH = new Date(0);

function entryHeader(path: string, size: number, directory = false): Buffer {
  const h = new Header({ path, mode: directory ? 0o755 : 0o644, uid: 0, gid: 0, size, mtime: EPOCH, type: directory ? 'Directory' : 'File' });
  h.encode();
  return h.block!;
}

function padding(size: number): Buffer {
  return Buffer.alloc(size % BLOCK ? BLOCK - (size % BLOCK) : 0);
}

/**
 * Writes the archive to a temporary file next to `output` and renames it into place, so `output`
 * is either absent, the previous file, or complete.
 */
export async function writeOciArchive(output: string, manifest: { descriptor: Descriptor; data: Uint8Array }, blobs: ArchiveBlob[], refName: string): Promise<void> {
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [{ ...manifest.descriptor, annotations: { ...manifest.descriptor.annotations, [ANNOTATION_REF_NAME]: refName } }],
  };
  const unique = new Map<string, ArchiveBlob>();
  for (const blob of [...blobs, manifest]) unique.set(blob.descriptor.digest, blob);
  const sorted = [...unique.values()].sort((a, b) => (a.descriptor.digest < b.descriptor.digest ? -1 : 1));

  async function* content(): AsyncGenerator<Buffer> {
    const small = (path: string, data: Uint8Array) => [entryHeader(path, data.byteLength), Buffer.from(data), padding(data.byteLength)];
    yield* small('oci-layout', Buffer.from(JSON.stringify(OCI_LAYOUT_FILE)));
    yield* small('index.json', Buffer.from(JSON.stringify(index)));
    yield entryHeader('blobs/', 0, true);
    yield entryHeader('blobs/sha256/', 0, true);
    for (const blob of sorted) {
      const { descriptor } = blob;
      yield entryHeader(`blobs/sha256/${digestHex(descriptor.digest)}`, descriptor.size);
      if (blob.data) {
        verifyBytes(descriptor, blob.data);
        yield Buffer.from(blob.data);
      } else if (blob.file) {
        const verified = createReadStream(blob.file).pipe(new VerifyingStream(descriptor, blob.file));
        for await (const chunk of verified) yield chunk as Buffer;
      } else {
        throw new OcipkgError('EINPUT', `blob ${descriptor.digest} has neither data nor file`);
      }
      yield padding(descriptor.size);
    }
    yield Buffer.alloc(2 * BLOCK);
  }

  const temp = join(dirname(output), `.${basename(output)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await pipeline(Readable.from(content()), createWriteStream(temp, { flags: 'wx' }));
    await rename(temp, output);
  } catch (err) {
    await rm(temp, { force: true });
    if (err instanceof OcipkgError) throw err;
    throw new OcipkgError('EINPUT', `cannot write ${output}: ${(err as Error).message}`, { cause: err });
  }
}

import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OcipkgError } from '../errors.js';
import { siblingTempName } from '../fs/names.js';
import { tarStream, type TarEntry } from '../fs/tar-write.js';
import { digestHex } from '../oci/digest.js';
import { verifyBytes, VerifyingStream } from '../oci/verify.js';
import { ANNOTATION_REF_NAME, OCI_INDEX } from '../oci/mediatypes.js';
import { OCI_LAYOUT_FILE, type Descriptor, type ImageIndex } from '../oci/types.js';

/**
 * Writes an oci-archive: a tar of an OCI image layout holding one image. Entries are `oci-layout`,
 * `index.json`, `blobs/`, `blobs/sha256/` and the blobs sorted by digest, written by
 * fs/tar-write.ts with mtime 0 (whatever SOURCE_DATE_EPOCH says: the archive's bytes depend only on
 * its blobs), so the same content gives the same archive bytes.
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

const EPOCH = new Date(0);

function inMemory(path: string, data: Uint8Array): TarEntry {
  return { type: 'file', path, size: data.byteLength, content: async function* () { yield Buffer.from(data); } };
}

/** A blob's bytes, verified against its descriptor as they go into the archive. */
async function* blobContent({ descriptor, data, file }: ArchiveBlob): AsyncGenerator<Buffer> {
  if (data) {
    verifyBytes(descriptor, data);
    yield Buffer.from(data);
  } else if (file) {
    const read = createReadStream(file);
    const verified = read.pipe(new VerifyingStream(descriptor, file));
    // pipe() does not pass a read error on: without this, a file that fails midway would leave the
    // archive waiting for bytes that never come.
    read.on('error', (err) => verified.destroy(err));
    yield* verified;
  } else {
    throw new OcipkgError('EINPUT', `blob ${descriptor.digest} has neither data nor file`);
  }
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

  function* entries(): Generator<TarEntry> {
    yield inMemory('oci-layout', Buffer.from(JSON.stringify(OCI_LAYOUT_FILE)));
    yield inMemory('index.json', Buffer.from(JSON.stringify(index)));
    yield { type: 'directory', path: 'blobs' };
    yield { type: 'directory', path: 'blobs/sha256' };
    for (const blob of sorted) {
      const path = `blobs/sha256/${digestHex(blob.descriptor.digest)}`;
      yield { type: 'file', path, size: blob.descriptor.size, content: () => blobContent(blob) };
    }
  }

  const temp = join(dirname(output), siblingTempName(basename(output)));
  try {
    await pipeline(Readable.from(tarStream(entries(), EPOCH)), createWriteStream(temp, { flags: 'wx' }));
    await rename(temp, output);
  } catch (err) {
    await rm(temp, { force: true });
    if (err instanceof OcipkgError) throw err;
    throw new OcipkgError('EINPUT', `cannot write ${output}: ${(err as Error).message}`, { cause: err });
  }
}

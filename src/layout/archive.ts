import { createReadStream } from 'node:fs';
import { mkdtemp, open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { errno, OcipkgError } from '../errors.js';
import { pathExists } from '../fs/atomic.js';
import { removeTree } from '../fs/tree.js';
import { digestHex } from '../oci/digest.js';
import type { Descriptor } from '../oci/types.js';
import { LayoutDirectory, LayoutReader } from './directory.js';
import { listTarFiles, type TarFile } from './tar-entries.js';

export interface OpenedArchive {
  layout: LayoutReader;
  /** Releases the archive (and removes the extracted copy of a compressed one). */
  close(): Promise<void>;
}

/** gzip's magic bytes: some tools compress oci-archives; the layout inside is the same. */
async function isGzip(handle: FileHandle): Promise<boolean> {
  const head = Buffer.alloc(2);
  const { bytesRead } = await handle.read(head, 0, 2, 0);
  return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
}

const REQUIRED = ['oci-layout', 'index.json'];

const notLayout = (path: string, missing: string) => new OcipkgError('EINPUT', `archive ${path} is not an OCI image layout (no ${missing})`);

/**
 * An uncompressed oci-archive read in place: index.json and each blob are byte ranges of the tar,
 * streamed from the archive file itself. Nothing is copied, so a push reads every blob once.
 */
class ArchiveLayout extends LayoutReader {
  readonly location: string;

  constructor(
    private readonly path: string,
    private readonly files: Map<string, TarFile>,
  ) {
    super();
    this.location = `oci-archive:${path}`;
  }

  private range(file: TarFile): Readable {
    // createReadStream's `end` is inclusive, and cannot express an empty range.
    if (file.size === 0) return Readable.from([]);
    return createReadStream(this.path, { start: file.offset, end: file.offset + file.size - 1 });
  }

  protected async readIndexBytes(): Promise<Buffer | undefined> {
    const file = this.files.get('index.json');
    if (file === undefined) return undefined;
    const chunks: Buffer[] = [];
    for await (const chunk of this.range(file)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  private blob(desc: Descriptor): TarFile | undefined {
    return this.files.get(`blobs/sha256/${digestHex(desc.digest)}`);
  }

  async fetch(desc: Descriptor): Promise<Readable> {
    const file = this.blob(desc);
    if (file === undefined) throw new OcipkgError('ENOTFOUND', `${desc.digest} is not in ${this.location}`);
    return this.range(file);
  }

  async exists(desc: Descriptor): Promise<boolean> {
    return this.blob(desc) !== undefined;
  }
}

/**
 * Opens an oci-archive (a tar of an OCI image layout, what `ocipkg pack` and `skopeo copy
 * oci-archive:` write). An uncompressed one is read in place from its tar headers; a compressed
 * one, which cannot be read at an offset, is extracted, with the same checks as a layer, to a temp
 * directory that `close` removes. Blobs are verified by whoever reads them.
 */
export async function openArchive(path: string): Promise<OpenedArchive> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') throw new OcipkgError('EINPUT', `archive ${path} does not exist`, { cause: err });
    throw err;
  }
  let files: Map<string, TarFile>;
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new OcipkgError('EINPUT', `archive ${path} is not a file`);
    if (await isGzip(handle)) return await extractArchive(path);
    files = await listTarFiles(handle, info.size, `archive ${path}`);
  } finally {
    await handle.close();
  }
  for (const required of REQUIRED) if (!files.has(required)) throw notLayout(path, required);
  return { layout: new ArchiveLayout(path, files), close: async () => {} };
}

async function extractArchive(path: string): Promise<OpenedArchive> {
  const dir = await mkdtemp(join(tmpdir(), 'ocipkg-archive-'));
  const close = () => removeTree(dir);
  try {
    // Loaded here: an uncompressed archive, read in place, needs none of tar's extraction.
    const { extractStream } = await import('../fs/extract.js');
    await extractStream(createReadStream(path), dir, { gzip: true, label: `archive ${path}`, invalidCode: 'EINPUT' });
    for (const required of REQUIRED) if (!(await pathExists(join(dir, required)))) throw notLayout(path, required);
  } catch (err) {
    await close();
    throw err;
  }
  // Messages name the archive the user gave, not the temp directory.
  return { layout: new LayoutDirectory(dir, { location: `oci-archive:${path}` }), close };
}

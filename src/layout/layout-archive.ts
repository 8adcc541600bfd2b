import { createWriteStream } from 'node:fs';
import { readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OcipkgError } from '../errors.js';
import { siblingTempName } from '../fs/names.js';
import { tarStream, type TarEntry } from '../fs/tar-write.js';

/**
 * A whole OCI image layout directory (index.json as it is, every tag in it) as an oci-archive, for
 * `ocipkg copy` to `oci-archive:PATH`: what skopeo and `ocipkg push` read back. Entries in the
 * order archive-write.ts uses (oci-layout, index.json, then the blobs by digest) with mtime 0, so
 * the same layout gives the same bytes; written beside `output` and renamed into place.
 */
export async function writeLayoutArchive(layoutDir: string, output: string): Promise<void> {
  const blobDir = join(layoutDir, 'blobs', 'sha256');
  const blobs: TarEntry[] = [];
  for (const hex of (await readdir(blobDir)).sort()) {
    const source = join(blobDir, hex);
    blobs.push({ type: 'file', path: `blobs/sha256/${hex}`, size: (await stat(source)).size, source });
  }
  const file = async (name: string): Promise<TarEntry> => ({ type: 'file', path: name, size: (await stat(join(layoutDir, name))).size, source: join(layoutDir, name) });
  const entries: TarEntry[] = [await file('oci-layout'), await file('index.json'), { type: 'directory', path: 'blobs' }, { type: 'directory', path: 'blobs/sha256' }, ...blobs];
  const temp = join(dirname(output), siblingTempName(basename(output)));
  try {
    await pipeline(Readable.from(tarStream(entries, new Date(0))), createWriteStream(temp, { flags: 'wx' }));
    await rename(temp, output);
  } catch (err) {
    await rm(temp, { force: true });
    if (err instanceof OcipkgError) throw err;
    throw new OcipkgError('EIO', `cannot write ${output}: ${(err as Error).message}`, { cause: err });
  }
}

import type { FileHandle } from 'node:fs/promises';
import { posix } from 'node:path';
import { Header } from 'tar/header';
import { Pax } from 'tar/pax';
import { OcipkgError } from '../errors.js';

/**
 * Where each regular file of an uncompressed tar lies, read from its headers alone: an oci-archive
 * is then served in place, each blob a byte range of the archive, instead of extracted to a temp
 * directory and read a second time. node-tar decodes the headers (ustar, pax, GNU long names);
 * this walks from one header to the next, reading no file's content.
 */

export interface TarFile {
  /** Offset of the file's first byte in the tar. */
  offset: number;
  size: number;
}

/** What pax and GNU extension headers say about the next entry (node-tar's HeaderData). */
type HeaderData = NonNullable<ConstructorParameters<typeof Header>[2]>;

const BLOCK = 512;
/** A pax or GNU long-name record is a few hundred bytes; one this large is not a real one. */
const MAX_EXTENSION = 1 << 20;

const REGULAR = new Set(['File', 'OldFile', 'ContiguousFile']);

/** `./a/b` -> `a/b`; names like tar's own, so `blobs/sha256/HEX` finds the entry whatever the writer. */
function entryName(path: string): string {
  return posix.normalize(path).replace(/^(?:\.\/)+/, '').replace(/\/$/, '');
}

/**
 * The regular files of the tar open in `handle` (`length` bytes), by path; a later entry for a
 * path replaces an earlier one, as extraction would. Input that is not a tar, or ends inside an
 * entry, is EINPUT; an entry whose path is absolute or climbs with `..` is EUNSAFE, as extraction
 * refuses it, although nothing is written here.
 */
export async function listTarFiles(handle: FileHandle, length: number, label: string): Promise<Map<string, TarFile>> {
  const files = new Map<string, TarFile>();
  const block = Buffer.alloc(BLOCK);
  let extended: HeaderData | undefined;
  let global: HeaderData | undefined;
  const body = async (offset: number, size: number): Promise<string> => {
    if (size > MAX_EXTENSION) throw new OcipkgError('EINPUT', `${label}: a tar extension header of ${size} bytes`);
    const bytes = Buffer.alloc(size);
    const { bytesRead } = await handle.read(bytes, 0, size, offset);
    if (bytesRead !== size) throw new OcipkgError('EINPUT', `${label} is truncated (it ends inside a tar entry)`);
    return bytes.toString('utf8');
  };
  for (let offset = 0; offset + BLOCK <= length; ) {
    const { bytesRead } = await handle.read(block, 0, BLOCK, offset);
    if (bytesRead !== BLOCK) break;
    const header = new Header(block, 0, extended, global);
    // A zero block ends the archive (two of them, strictly; one is as final for a reader).
    if (header.nullBlock) return files;
    if (!header.cksumValid) throw new OcipkgError('EINPUT', `${label} is not a tar archive (bad header checksum at byte ${offset})`);
    const size = header.size ?? 0;
    const data = offset + BLOCK;
    if (data + size > length) throw new OcipkgError('EINPUT', `${label} is truncated (it ends inside a tar entry)`);
    offset = data + Math.ceil(size / BLOCK) * BLOCK;
    switch (header.type) {
      case 'ExtendedHeader':
        extended = Pax.parse(await body(data, size), extended, false);
        continue;
      case 'GlobalExtendedHeader':
        global = Pax.parse(await body(data, size), global, true);
        continue;
      case 'NextFileHasLongPath':
        extended = { ...extended, path: (await body(data, size)).replace(/\0.*/s, '') };
        continue;
      case 'NextFileHasLongLinkpath':
        continue;
    }
    extended = undefined;
    const path = header.path ?? '';
    if (posix.isAbsolute(path) || path.split('/').includes('..')) {
      throw new OcipkgError('EUNSAFE', `${label}: entry "${path}" leaves the archive's root`);
    }
    if (REGULAR.has(header.type)) files.set(entryName(path), { offset: data, size });
  }
  return files;
}

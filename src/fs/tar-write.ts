import { createReadStream } from 'node:fs';
import { Header } from 'tar/header';
import { Pax } from 'tar/pax';
import { OcipkgError } from '../errors.js';

/**
 * The one writer of tar framing (layers and oci-archives), reproducible: the same entries always
 * give the same bytes, whatever the host or the files' times and owners. Every header has the
 * mtime the caller gives, uid/gid 0, no user or group names, no atime/ctime; modes are 0755 for
 * directories and executables, 0644 for other files, 0777 for symlinks; a PAX header appears only
 * for a path or link target too long for ustar, and holds nothing else. Entries go out in the order
 * given: which order is stable is the caller's to know.
 */

export type TarEntry =
  /** Written as `path/`. */
  | { type: 'directory'; path: string }
  | { type: 'symlink'; path: string; target: string }
  /** Read from the file `source` when its turn comes... */
  | { type: 'file'; path: string; size: number; executable?: boolean; source: string }
  /** ... or from `content`, called when its turn comes. */
  | { type: 'file'; path: string; size: number; executable?: boolean; content: () => AsyncIterable<Buffer> };

const BLOCK = 512;

function header(entry: TarEntry, mtime: Date): Buffer {
  const path = entry.type === 'directory' ? `${entry.path}/` : entry.path;
  const linkpath = entry.type === 'symlink' ? { linkpath: entry.target } : {};
  const h = new Header({
    path,
    mode: entry.type === 'directory' || (entry.type === 'file' && entry.executable) ? 0o755 : entry.type === 'symlink' ? 0o777 : 0o644,
    uid: 0,
    gid: 0,
    size: entry.type === 'file' ? entry.size : 0,
    mtime,
    type: entry.type === 'directory' ? 'Directory' : entry.type === 'symlink' ? 'SymbolicLink' : 'File',
    ...linkpath,
  });
  const needPax = h.encode();
  if (!needPax) return h.block!;
  // Only what ustar cannot hold goes into the PAX record, so the record is as stable as the entry.
  const pax = new Pax({ path, mtime, ...linkpath });
  return Buffer.concat([pax.encode(), h.block!]);
}

/**
 * The tar of `entries`, chunk by chunk: no file is ever whole in memory. A file's content must be
 * exactly its `size` bytes; one that grows or shrinks while it is read fails (EINPUT) rather than
 * shift every entry after it.
 */
export async function* tarStream(entries: Iterable<TarEntry>, mtime: Date): AsyncGenerator<Buffer> {
  for (const entry of entries) {
    yield header(entry, mtime);
    if (entry.type !== 'file') continue;
    let seen = 0;
    for await (const chunk of 'source' in entry ? createReadStream(entry.source) : entry.content()) {
      seen += (chunk as Buffer).length;
      if (seen > entry.size) break;
      yield chunk as Buffer;
    }
    if (seen !== entry.size) throw new OcipkgError('EINPUT', `${'source' in entry ? entry.source : entry.path} changed size while being packed`);
    if (entry.size % BLOCK) yield Buffer.alloc(BLOCK - (entry.size % BLOCK));
  }
  yield Buffer.alloc(2 * BLOCK);
}

import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { lstat, readdir, readlink, realpath, stat } from 'node:fs/promises';
import { basename, isAbsolute, join, posix, relative, resolve, sep } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zlibConstants, createGzip } from 'node:zlib';
import { OcipkgError } from '../errors.js';
import { tarStream } from '../fs/tar-write.js';
import { OCIPKG_LAYER } from '../oci/mediatypes.js';
import type { Descriptor } from '../oci/types.js';
import type { LibraryInfo } from '../artifact/config.js';
import { sourceDate } from './source-date.js';

/**
 * Reproducible layers: the same tree always gives the same bytes, hence the same digest.
 * Entries are sorted by path and written by fs/tar-write.ts (fixed owners and modes) with mtime
 * SOURCE_DATE_EPOCH, else 0. The gzip header has mtime 0 and OS byte 255 ("unknown", as Go's gzip
 * writes) so that the host does not leak into the digest.
 */

export type LayerEntry =
  | { path: string; type: 'directory' }
  | { path: string; type: 'file'; source: string; size: number; executable: boolean }
  /** A file pack rewrote (a relocated `.pc`): its new bytes. */
  | { path: string; type: 'file'; content: () => AsyncIterable<Buffer>; size: number; executable: boolean }
  | { path: string; type: 'symlink'; target: string };

export interface Layer {
  descriptor: Descriptor;
  /** The compressed layer, written where the caller asked; the caller owns (and removes) it. */
  file: string;
  /** Paths of the files and symlinks in the layer, sorted: the config's `layers` member. */
  paths: string[];
}

function byPath(a: { path: string }, b: { path: string }): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

function toPosix(path: string): string {
  return sep === '/' ? path : path.split(sep).join('/');
}

/** True when a path relative to the package root stays inside it. */
function insideRoot(rel: string): boolean {
  return rel !== '..' && !rel.startsWith('../') && !posix.isAbsolute(rel);
}

/**
 * The entries of a directory tree. Symlinks are kept as relative symlinks: an absolute target
 * inside the tree is rewritten relative, one that leads outside it (or nowhere) is refused, since
 * whoever extracts the package would get a link into their own machine or a dangling one.
 * Anything but files, directories and symlinks (sockets, devices, FIFOs) is refused.
 */
export async function directoryEntries(root: string): Promise<LayerEntry[]> {
  const rootReal = await realpath(root).catch((err: unknown) => {
    throw new OcipkgError('EINPUT', `cannot read package directory ${root}: ${(err as Error).message}`, { cause: err });
  });
  if (!(await stat(rootReal)).isDirectory()) throw new OcipkgError('EINPUT', `${root} is not a directory`);
  const entries: LayerEntry[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const name of await readdir(join(rootReal, rel))) {
      const path = rel ? `${rel}/${name}` : name;
      const abs = join(rootReal, path);
      const st = await lstat(abs);
      if (st.isDirectory()) {
        entries.push({ path, type: 'directory' });
        await walk(path);
      } else if (st.isFile()) {
        entries.push({ path, type: 'file', source: abs, size: st.size, executable: (st.mode & 0o111) !== 0 });
      } else if (st.isSymbolicLink()) {
        entries.push({ path, type: 'symlink', target: await symlinkTarget(rootReal, path) });
      } else {
        throw new OcipkgError('EINPUT', `${abs}: not a regular file, directory or symlink`);
      }
    }
  };
  await walk('');
  return entries.sort(byPath);
}

/** The target of the symlink at `path` (relative to `root`), relative and checked to stay inside. */
async function symlinkTarget(root: string, path: string): Promise<string> {
  const abs = join(root, path);
  const raw = await readlink(abs);
  const dir = posix.dirname(path);
  let target = toPosix(raw);
  if (isAbsolute(raw)) {
    const rel = toPosix(relative(root, raw));
    if (!insideRoot(rel)) throw new OcipkgError('EUNSAFE', `${abs}: symlink to ${raw} leads outside ${root}`);
    target = posix.relative(dir, rel) || '.';
  }
  if (!insideRoot(posix.normalize(posix.join(dir, target)))) {
    throw new OcipkgError('EUNSAFE', `${abs}: symlink to ${raw} leads outside ${root}`);
  }
  // Lexically inside is not enough: a symlinked directory on the way could still lead out.
  let real: string;
  try {
    real = await realpath(abs);
  } catch {
    throw new OcipkgError('EINPUT', `${abs}: dangling symlink to ${raw}`);
  }
  if (!insideRoot(toPosix(relative(root, real)))) throw new OcipkgError('EUNSAFE', `${abs}: symlink to ${raw} leads outside ${root}`);
  return target;
}

/**
 * Entries for `compose`: each file at the layer root under its base name, its content read through
 * any symlink. Two files with one base name are refused.
 */
export async function fileEntries(files: string[]): Promise<LayerEntry[]> {
  const entries = new Map<string, LayerEntry>();
  for (const file of files) {
    const path = basename(file);
    let st;
    try {
      st = await stat(file);
    } catch (err) {
      throw new OcipkgError('EINPUT', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
    if (!st.isFile()) throw new OcipkgError('EINPUT', `${file} is not a file`);
    if (entries.has(path)) throw new OcipkgError('EINPUT', `two files named ${path} given to compose`);
    entries.set(path, { path, type: 'file', source: resolve(file), size: st.size, executable: (st.mode & 0o111) !== 0 });
  }
  return [...entries.values()].sort(byPath);
}

/** Follows symlink entries to the entry they finally name (lexically, inside the layer). */
function resolveEntry(index: Map<string, LayerEntry>, path: string): LayerEntry | undefined {
  let current = index.get(path);
  for (let hops = 0; current?.type === 'symlink'; hops++) {
    if (hops > 40) throw new OcipkgError('EINPUT', `symlink loop at ${path}`);
    current = index.get(posix.normalize(posix.join(posix.dirname(current.path), current.target)));
  }
  return current;
}

/**
 * Shared libraries are stored under their SONAME. The dynamic loader looks a library up by the
 * SONAME recorded in whatever links against it, so that is the one name that must be a real file:
 * a consumer that bundles the library next to its `.node` copies that one file and it works, and
 * the name that matters never sits at the end of a chain that a partial copy could break. Every
 * other name of the library (the link-time
 * `libz.so`, the fully versioned `libz.so.1.2.13`) becomes a relative symlink straight to the
 * SONAME file, in one hop. Symlinks rather than copies keep the package the size of the library.
 *
 * Returns the new entries and the libraries with `file` pointing at the SONAME file.
 */
export function placeBySoname(entries: LayerEntry[], libraries: LibraryInfo[]): { entries: LayerEntry[]; libraries: LibraryInfo[] } {
  const index = new Map(entries.map((e) => [e.path, e]));
  const placed = libraries.map((lib) => {
    // A dylib's `@rpath/libz.1.dylib` is found as `libz.1.dylib` in an rpath directory: that is its SONAME.
    const soname = lib.soname?.startsWith('@rpath/') ? lib.soname.slice('@rpath/'.length) : lib.soname;
    if (lib.kind !== 'shared' || soname === undefined || soname.includes('/') || /\.tbd$/.test(lib.file)) return lib;
    const real = resolveEntry(index, lib.file);
    if (real?.type !== 'file') return lib;
    const sonamePath = posix.join(posix.dirname(real.path), soname);
    if (sonamePath === real.path) return { ...lib, file: sonamePath };
    const existing = index.get(sonamePath);
    if (existing && resolveEntry(index, sonamePath) !== real) {
      throw new OcipkgError('EINPUT', `${sonamePath} exists but is not ${real.path}, whose SONAME it is`);
    }
    const aliases = [...index.values()].filter((e) => e.type === 'symlink' && resolveEntry(index, e.path) === real);
    index.set(sonamePath, { ...real, path: sonamePath });
    for (const alias of [real, ...aliases]) {
      if (alias.path === sonamePath) continue;
      index.set(alias.path, { path: alias.path, type: 'symlink', target: posix.relative(posix.dirname(alias.path), sonamePath) });
    }
    return { ...lib, file: sonamePath };
  });
  return { entries: [...index.values()].sort(byPath), libraries: placed };
}

/** Overwrites the gzip header's OS byte (offset 9), which zlib sets from the build platform. */
class FixedGzipOs extends Transform {
  private offset = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.offset <= 9 && this.offset + chunk.length > 9) {
      chunk = Buffer.from(chunk);
      chunk[9 - this.offset] = 255;
    }
    this.offset += chunk.length;
    done(null, chunk);
  }
}

/**
 * Writes entries as a gzip-compressed tar to `file`, hashing on the way: the layer is never whole
 * in memory. Returns its descriptor (media type application/vnd.ocipkg.v1.layer.tar+gzip).
 */
export async function writeLayer(entries: LayerEntry[], file: string): Promise<Layer> {
  const hash = createHash('sha256');
  let size = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  try {
    await pipeline(
      Readable.from(tarStream(entries, sourceDate())),
      createGzip({ level: zlibConstants.Z_DEFAULT_COMPRESSION }),
      new FixedGzipOs(),
      count,
      createWriteStream(file, { flags: 'wx' }),
    );
  } catch (err) {
    if (err instanceof OcipkgError) throw err;
    throw new OcipkgError('EINPUT', `cannot write layer ${file}: ${(err as Error).message}`, { cause: err });
  }
  return {
    descriptor: { mediaType: OCIPKG_LAYER, digest: `sha256:${hash.digest('hex')}`, size },
    file,
    paths: entries.filter((e) => e.type !== 'directory').map((e) => e.path),
  };
}


import { readFile, realpath } from 'node:fs/promises';
import { basename, posix, resolve } from 'node:path';
import { isOcipkgError } from '../errors.js';
import { PackageDataChecker } from '../artifact/package-data.js';
import type { LibraryInfo } from '../artifact/config.js';
import { parsePcFile, SHIPPED_PC_FILE, type PcFile } from '../pkgconfig.js';
import { parseReference } from '../reference.js';
import { storeRoot } from '../store/paths.js';
import type { LayerEntry } from './layer.js';

/**
 * What a packed directory's own files tell pack: the flags its `.pc` files give consumers, and
 * the paths of the packing machine its `.pc`, `*-config` and `*.cmake` files hold. A library's
 * install step writes its install prefix into those files; a consumer's machine has nothing there
 * (or, worse, the distribution's copy of the same library), so a `.pc`'s prefix is made relative
 * to the file, and whatever else still points at this machine is named in a warning.
 */

export interface ShippedData {
  /** The entries, with relocated `.pc` files as rewritten content. */
  entries: LayerEntry[];
  defines: string[];
  linkFlags: string[];
  staticLinkFlags: string[];
}

type FileEntry = Extract<LayerEntry, { type: 'file' }>;

/** Files whose text a build reads paths from. */
const PATH_CARRIER = /(\.pc|-config|\.cmake)$/;
/** A package directory of any ocipkg store, wherever that store is. */
const STORE_PACKAGE = /(?:\/[^\s"'`;()/]+)*?\/packages\/sha256\/[0-9a-f]{64}(?=[/\s"'`;()]|$)/;
/** Characters that end a path written in a .pc, a shell script or CMake. */
const PATH_END = /[\s"'`;()]/;

/**
 * `zlib` -> `z`, `libpng` / `png16` -> `png`: how a pkg-config module, an image's repository and
 * a `-l` name are compared, since the three are spelled differently for one library.
 */
function stem(name: string): string {
  const bare = name.toLowerCase().replace(/^lib(?=.)/, '').replace(/(?<=.)lib$/, '');
  return bare.replace(/(?<=[a-z])[\d.+-]+$/, '');
}

function lastComponent(image: string): string {
  const ref = parseReference(image);
  return ref.kind === 'registry' ? ref.repository.slice(ref.repository.lastIndexOf('/') + 1) : image;
}

async function contentOf(entry: FileEntry): Promise<Buffer> {
  if ('source' in entry) return readFile(entry.source);
  const chunks: Buffer[] = [];
  for await (const chunk of entry.content()) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Where `root` occurs in `text` as a whole path component, or -1. */
function findPath(text: string, root: string): number {
  for (let i = text.indexOf(root); i >= 0; i = text.indexOf(root, i + 1)) {
    const after = text[i + root.length];
    if (after === undefined || after === '/' || PATH_END.test(after)) return i;
  }
  return -1;
}

function pathAt(text: string, index: number): string {
  let end = index;
  while (end < text.length && !PATH_END.test(text[end]!)) end++;
  return text.slice(index, end);
}

/**
 * The `.pc` text with an absolute `prefix=` of this machine made relative to the file
 * (`${pcfiledir}/../..` for lib/pkgconfig), and later literal uses of that prefix made `${prefix}`.
 * Undefined when there is nothing to relocate.
 */
function relocatePc(text: string, pc: PcFile, path: string, packed: string[]): { text: string; prefix: string } | undefined {
  const line = /^([ \t]*prefix[ \t]*=[ \t]*)([^$\n]*?)[ \t]*$/m.exec(text);
  const prefix = pc.variables.prefix;
  if (!line || prefix === undefined || line[2] !== prefix || !posix.isAbsolute(prefix) || prefix === '/') return undefined;
  const under = (value: string, root: string) => value === root || value.startsWith(`${root}/`);
  const others = Object.entries(pc.variables).filter(([key]) => key !== 'prefix' && key !== 'pcfiledir');
  if (!packed.some((root) => under(prefix, root)) && !others.some(([, value]) => under(value, prefix))) return undefined;
  const up = posix.dirname(path).split('/').map(() => '..').join('/');
  const head = text.slice(0, line.index);
  const tail = text.slice(line.index + line[0].length);
  const literal = new RegExp(`${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=[/\\s"']|$)`, 'gm');
  return { text: `${head}${line[1]}\${pcfiledir}/${up}${tail.replace(literal, '${prefix}')}`, prefix };
}

/**
 * Reads the `.pc` files among `entries` (see SHIPPED_PC_FILE), relocates them, records their
 * flags, and warns about paths of this machine left in `.pc`, `*-config` and `*.cmake` files.
 *
 * Flags: `-D` of `Cflags` become definitions; `Libs` entries that are not the package's own
 * libraries (`-lm`, `-pthread`) link flags; `Libs.private` static link flags. A module named in
 * `Requires(.private)` that no shipped `.pc` provides must be another package: one of `requires`
 * covers it when the image's name is the module's, and then the `-l` flags of that library are
 * left to that package, which links its own build of it (a `-lz` here would link the consumer's
 * system copy instead). A module nothing covers gets a warning. A value the package-data rules
 * refuse is left out, with a warning: the author's explicit options are where such needs go.
 */
export async function readShippedFiles(
  dir: string,
  entries: LayerEntry[],
  libraries: LibraryInfo[],
  requires: string[],
  warn: (message: string) => void,
): Promise<ShippedData> {
  const real = await realpath(dir);
  const packed = [...new Set([resolve(dir), real])];
  const check = new PackageDataChecker(dir, 'not recorded');
  const ownLibraries = new Set(libraries.map((lib) => lib.name));
  const ownFiles = new Set(libraries.map((lib) => lib.file));
  const covered = new Set(requires.map((image) => stem(lastComponent(image))));
  const provided = new Set(entries.filter((e) => SHIPPED_PC_FILE.test(e.path)).map((e) => basename(e.path, '.pc')));
  const out: ShippedData = { entries: [], defines: [], linkFlags: [], staticLinkFlags: [] };
  const relocatedPrefixes: string[] = [];

  /** The flags of one field worth recording: not -L, not the package's own libraries. */
  const record = (path: string, field: string, flags: string[], into: string[]) => {
    for (let i = 0; i < flags.length; i++) {
      const group = flags[i] === '-framework' && i + 1 < flags.length ? [flags[i]!, flags[++i]!] : [flags[i]!];
      const flag = group[0]!;
      if (flag.startsWith('-L')) continue;
      if (flag.startsWith('-l') && (ownLibraries.has(flag.slice(2)) || covered.has(stem(flag.slice(2))))) continue;
      if (posix.isAbsolute(flag) && packed.some((root) => ownFiles.has(posix.relative(root, flag)))) continue;
      try {
        check.linkFlags(`${path}: ${field}`, group);
      } catch (err) {
        if (!isOcipkgError(err, 'EUNSAFE')) throw err;
        warn(`${err.message} (pass what consumers need with --link-flag)`);
        continue;
      }
      if (group.length > 1 || !into.includes(flag)) into.push(...group);
    }
  };

  for (const entry of entries) {
    if (entry.type !== 'file' || !SHIPPED_PC_FILE.test(entry.path)) {
      out.entries.push(entry);
      continue;
    }
    const text = (await contentOf(entry)).toString('utf8');
    const pcfiledir = posix.join(real, posix.dirname(entry.path));
    let pc: PcFile;
    try {
      pc = parsePcFile(text, entry.path, { pcfiledir });
    } catch (err) {
      if (!isOcipkgError(err, 'EINPUT')) throw err;
      warn(`${err.message}; its flags are not recorded`);
      out.entries.push(entry);
      continue;
    }
    const relocated = relocatePc(text, pc, entry.path, packed);
    if (relocated) {
      relocatedPrefixes.push(relocated.prefix);
      const bytes = Buffer.from(relocated.text);
      out.entries.push({ path: entry.path, type: 'file', size: bytes.length, executable: entry.executable, content: async function* () { yield bytes; } });
      pc = parsePcFile(relocated.text, entry.path, { pcfiledir });
    } else {
      out.entries.push(entry);
    }

    for (const flag of pc.cflags) {
      if (!flag.startsWith('-D') || out.defines.includes(flag.slice(2))) continue;
      try {
        out.defines.push(check.define(`${entry.path}: Cflags`, flag.slice(2)));
      } catch (err) {
        if (!isOcipkgError(err, 'EUNSAFE')) throw err;
        warn(`${err.message} (pass what consumers need with --define)`);
      }
    }
    record(entry.path, 'Libs', pc.libs, out.linkFlags);
    record(entry.path, 'Libs.private', pc.libsPrivate, out.staticLinkFlags);
    for (const { name } of [...pc.requires, ...pc.requiresPrivate]) {
      if (provided.has(name) || covered.has(stem(name))) continue;
      warn(`${entry.path} requires the pkg-config module ${name}, which the package does not provide; declare the package that does with --requires IMAGE, or consumers link whatever ${name} their machine has`);
    }
  }

  // Paths that lead into this machine: the packed directory, the install prefix the files were
  // written for, and any ocipkg store (a library built against packages from the author's store).
  const roots = [...new Set([...packed, ...relocatedPrefixes, storeRoot()])];
  for (const entry of out.entries) {
    if (entry.type !== 'file' || !PATH_CARRIER.test(entry.path)) continue;
    const text = (await contentOf(entry)).toString('latin1');
    if (text.includes('\0')) continue;
    const found = roots.map((root) => findPath(text, root)).filter((i) => i >= 0);
    const store = STORE_PACKAGE.exec(text);
    if (store) found.push(store.index);
    if (found.length === 0) continue;
    const path = pathAt(text, Math.min(...found));
    warn(`${entry.path} holds ${path}, a path on this machine: consumers of the package do not have it; make the file refer to its own location (CMake: \${_IMPORT_PREFIX}) or leave it out`);
  }
  return out;
}

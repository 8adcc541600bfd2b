import { existsSync, type Dirent } from 'node:fs';
import { readdir, realpath } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { errno, isOcipkgError, OcipkgError } from '../errors.js';
import { inspectFile, type ObjectInfo } from './binary/index.js';
import { classifyLibraryName, frameworkOf } from './library-name.js';
import type { LibraryInfo } from '../artifact/config.js';

/**
 * Finds the libraries of an install prefix by file name, the way a linker's `-l` would see them:
 * `lib*.a`, `lib*.so[.N...]`, `*.dylib`, `lib*.tbd`, `*.lib`, `*.dll`, in `lib/`, `lib64/` and the
 * root (and `bin/` for DLLs, where Windows installs put them), then reads each to tell what it is.
 */

/** Directories searched, relative to the package root. */
const LIBRARY_DIRS = ['', 'lib', 'lib64'];
const DLL_DIRS = ['bin'];
/** Where macOS installs put frameworks (`Greet.framework/`), besides the library directories. */
const FRAMEWORK_DIRS = ['', 'lib', 'Frameworks', 'Library/Frameworks'];
const HEADER = /\.(h|hh|hpp|hxx|h\+\+|ipp|inl)$/i;

/** True for a C or C++ header file name. */
export function isHeaderName(fileName: string): boolean {
  return HEADER.test(fileName);
}

async function readDirEntries(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return [];
    throw new OcipkgError('EINPUT', `cannot read ${dir}: ${(err as Error).message}`, { cause: err });
  }
}

/** A library candidate: its path relative to the root and the file it is on disk. */
export interface LibraryFile {
  /** Relative path in the package, forward slashes. */
  path: string;
  /** Absolute path to read it from. */
  source: string;
}

/** What a library file's content says, beyond its name. */
interface FileFacts {
  objects: ObjectInfo[];
  /** A Windows import library (its members are import objects): the DLL it names, or '' if none. */
  importsFrom?: string;
}

async function factsOf(path: string): Promise<FileFacts> {
  // Not every library-named file is a binary (glibc's libc.so is a linker script): nothing known then.
  const objects = await inspectFile(path).catch((err: unknown) => {
    if (isOcipkgError(err, 'EINPUT')) return [];
    throw err;
  });
  const imports = objects.filter((o) => o.type === 'import');
  if (imports.length === 0) return { objects };
  return { objects, importsFrom: imports.find((o) => o.importsFrom !== undefined)?.importsFrom ?? '' };
}

/** The DLL a Windows import library imports from, read from its members; undefined for anything else. */
export async function importedDll(path: string): Promise<string | undefined> {
  return (await factsOf(path)).importsFrom || undefined;
}

const isDll = (path: string) => /\.dll$/i.test(path);
const isTbdStub = (path: string) => /\.tbd$/.test(path);

/**
 * Describes library files: link name, kind, and SONAME for ELF shared objects (the Mach-O install
 * name for dylibs and `.tbd` stubs). Kinds come from content where names mislead: a `.lib` or `.a`
 * made of import objects is a Windows import library, shared, and is paired with the DLL it names
 * (`file` the import library, `runtime` the DLL) so the DLL is not a library of its own; a DLL
 * without one stays a library whose file is the DLL (MinGW's ld links a DLL, MSVC's linker cannot).
 * A `.tbd` stub of a dylib the package ships is left out for the dylib. Files that alias another
 * file of the list (symlinks such as libz.so -> libz.so.1) are dropped, keeping the real file.
 * Sorted by path.
 */
export async function describeLibraries(files: LibraryFile[]): Promise<LibraryInfo[]> {
  const byRealPath = new Map<string, LibraryFile[]>();
  for (const file of files) {
    let real: string;
    try {
      real = await realpath(file.source);
    } catch (err) {
      throw new OcipkgError('EINPUT', `${file.source}: dangling symlink or unreadable file`, { cause: err });
    }
    byRealPath.set(real, [...(byRealPath.get(real) ?? []), file]);
  }
  const described: { info: LibraryInfo; facts: FileFacts }[] = [];
  for (const [real, aliases] of byRealPath) {
    // Prefer the name that is the real file itself, else the longest (most versioned) alias.
    const chosen =
      aliases.find((a) => a.source === real) ?? [...aliases].sort((a, b) => b.path.length - a.path.length || (a.path < b.path ? -1 : 1))[0]!;
    const fileName = chosen.path.slice(chosen.path.lastIndexOf('/') + 1);
    const framework = frameworkOf(chosen.path);
    const { name, kind } = framework ? { name: framework.name, kind: 'shared' as const } : classifyLibraryName(fileName)!;
    const facts = await factsOf(real);
    const info: LibraryInfo = { name, kind: facts.importsFrom !== undefined ? 'shared' : /\.(a|lib)$/i.test(fileName) ? 'static' : kind, file: chosen.path };
    const soname = info.kind === 'shared' ? facts.objects.find((o) => o.soname !== undefined)?.soname : undefined;
    if (soname !== undefined) info.soname = soname;
    described.push({ info, facts });
  }

  const dlls = new Map(described.filter(({ info }) => isDll(info.file)).map(({ info }) => [posix.basename(info.file).toLowerCase(), info]));
  const paired = new Set<LibraryInfo>();
  for (const { info, facts } of described) {
    const dll = facts.importsFrom ? dlls.get(facts.importsFrom.toLowerCase()) : undefined;
    if (dll === undefined) continue;
    info.runtime = dll.file;
    paired.add(dll);
  }
  const dylibNames = new Set(described.filter(({ info }) => !isTbdStub(info.file) && info.soname !== undefined).map(({ info }) => info.soname));
  const libraries = described
    .map(({ info }) => info)
    .filter((info) => !paired.has(info) && !(isTbdStub(info.file) && info.soname !== undefined && dylibNames.has(info.soname)));
  // zlib's, libpng's and zstd's CMake builds install on Windows an import library under the
  // library's name and the static archive under another (zlib.lib and zlibstatic.lib, zstd.lib and
  // zstd_static.lib, libzlib.dll.a and libzlibstatic.a): two builds of one library, which a
  // consumer links one of (`--static` would otherwise hand out both, import library first, and get
  // the DLL). The static one takes the library's name.
  const sharedNames = new Set(libraries.filter((info) => info.kind === 'shared').map((info) => info.name));
  for (const info of libraries) {
    const base = info.kind === 'static' ? /^(.+?)[-_]?static$/i.exec(info.name)?.[1] : undefined;
    if (base !== undefined && sharedNames.has(base)) info.name = base;
  }
  return libraries.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

/** Every library under `root` (see the module comment), one entry per real file, sorted by path. */
export async function discoverLibraries(root: string): Promise<LibraryInfo[]> {
  const files: LibraryFile[] = [];
  const scan = async (dir: string, accept: (name: string) => boolean) => {
    for (const entry of await readDirEntries(join(root, dir))) {
      if (!(entry.isFile() || entry.isSymbolicLink()) || !accept(entry.name) || !classifyLibraryName(entry.name)) continue;
      files.push({ path: dir ? `${dir}/${entry.name}` : entry.name, source: join(root, dir, entry.name) });
    }
  };
  for (const dir of LIBRARY_DIRS) await scan(dir, () => true);
  for (const dir of DLL_DIRS) await scan(dir, (name) => /\.dll$/i.test(name));
  for (const dir of FRAMEWORK_DIRS) {
    for (const entry of await readDirEntries(join(root, dir))) {
      const name = /^(.+)\.framework$/.exec(entry.name)?.[1];
      if (name === undefined || !entry.isDirectory()) continue;
      const bundle = dir ? `${dir}/${entry.name}` : entry.name;
      // The binary at the top (a symlink into Versions/Current on macOS), else its stub.
      const binary = [name, `${name}.tbd`].find((file) => existsSync(join(root, bundle, file)));
      if (binary !== undefined) files.push({ path: `${bundle}/${binary}`, source: join(root, bundle, binary) });
    }
  }
  return describeLibraries(files);
}

/** `include` when the package has that directory, else `.` when headers sit at the root, else none. */
export async function discoverIncludeDirs(root: string): Promise<string[]> {
  const top = await readDirEntries(root);
  if (top.some((e) => e.name === 'include' && e.isDirectory())) return ['include'];
  return top.some((e) => e.isFile() && isHeaderName(e.name)) ? ['.'] : [];
}

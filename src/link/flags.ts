import { posix } from 'node:path';
import type { LibraryKind } from '../artifact/config.js';
import { frameworkOf, linkerFileNames } from '../package/library-name.js';
import { parseReference, repositoryOf } from '../reference.js';
import { tripleToPlatform } from '../triple.js';
import { expandDir, type LinkDescription, type LinkLibrary } from './description.js';

/**
 * Compile and link flags from link descriptions, in pkg-config's shape.
 *
 * How libraries are named on the link line:
 * - static (the default when a library was built both ways): the archive's absolute path. `-lfoo`
 *   would pick `libfoo.so` over `libfoo.a` from the same directory, and `-l:libfoo.a` is GNU ld
 *   only (not Apple's ld64); a path means the same thing to every linker, and is what CMake
 *   itself puts on the link line for an imported static library.
 * - shared: `-L<dir> -l<name>` as pkg-config would (a path when the file is not `lib<name>.so`
 *   or `.dylib`, e.g. only `libfoo.so.1` was shipped), plus one rpath entry, `$ORIGIN` on ELF
 *   systems and `@loader_path` on macOS: the addon then finds the libraries that `--runtime-files`
 *   lists once they are copied next to the `.node` file, on machines that never ran ocipkg.
 *   Make needs `$` doubled and hidden from its shell, so `forMake` spells it `'$$ORIGIN'`.
 *   On ELF the rpath is written as DT_RPATH (`--disable-new-dtags`), not DT_RUNPATH: the loader
 *   searches a DT_RPATH for the dependencies of the libraries the addon loads too, so a bundled
 *   libpng16.so finds the libz.so.1 beside it even when the addon itself does not need libz
 *   (`--as-needed`), where a DT_RUNPATH would let the system's copy load.
 *
 * - Windows: every library by path, a shared one by its import library (MSVC's `.lib`, MinGW's
 *   `.dll.a`), whose DLL is the runtime file. MSVC's linker cannot link a DLL, so for an MSVC
 *   triple a DLL without an import library is shipped but not linked. There is no rpath: Node
 *   loads addons with LOAD_WITH_ALTERED_SEARCH_PATH, so the addon's directory is searched first.
 * - macOS frameworks: `-F<dir> -framework <Name>` (the `-F` in the cflags too, for their headers),
 *   shipped as the whole `.framework` directory.
 *
 * Linkage follows requirements: a package linked shared has its requirements linked shared too
 * (where they ship a shared build), so a shared libpng16.so never sits beside a static libz.a whose
 * code it cannot reach.
 *
 * Code from static packages stays inside the addon: on ELF each archive is linked with
 * `--exclude-libs`, so none of its symbols is exported from the `.node`. Node exports its own zlib,
 * OpenSSL, libuv... and an exported symbol of the addon would be bound to Node's copy at load time.
 * Mach-O needs nothing: its two-level namespace binds the addon's references to its own copy at
 * link time. Neither does PE: a DLL exports only what it declares, and imports name their DLL.
 */

export interface LinkOptions {
  /** Link shared builds of libraries that have both; default static. */
  shared?: boolean;
  /** Triple the flags are for (decides the rpath spelling); default the host. */
  target?: string;
  /** Spell `$ORIGIN` for a Makefile (node-gyp's make generator) instead of a command line. */
  forMake?: boolean;
}

/** One package's part of the flags; `dir` is the package directory, with forward slashes. */
export interface PackageLinkInput {
  dir: string;
  description: LinkDescription;
  /** The image it was resolved from, so that the packages requiring it can be told. */
  image?: string;
}

/**
 * One library as it is linked: `ocipkg-link --json`'s `libraries[]`, from which the CMake module
 * and the generated CMake configs make their IMPORTED targets. Paths are under the package's `dir`.
 */
export interface LinkedLibrary {
  /** The name of the package that provides it. */
  package: string;
  /** Link name: `zstd` for `libzstd.a`, `libzstd.so.1`, `zstd.lib`. */
  name: string;
  kind: LibraryKind;
  /** The file linked: the archive, the shared library or its MSVC import library. */
  file: string;
  /** Shared libraries: the file to ship beside the addon, named as the loader looks for it. */
  runtime: string | null;
  /** A shared library linked through an MSVC import library: that `.lib`. */
  importLibrary: string | null;
}

export interface LinkFlags {
  includeDirs: string[];
  defines: string[];
  /** `-I...`, `-D...`, then other compile flags. */
  cflags: string[];
  /** Directories of the shared libraries linked with `-l`. */
  libDirs: string[];
  /** Every library file linked, static or shared. */
  libFiles: string[];
  /** `-L...`, then libraries and link flags package by package, then the rpath. */
  libs: string[];
  /** Shared libraries to copy next to the addon. */
  runtimeFiles: string[];
  /** The libraries linked, in link order, the same selection as `libs`. */
  libraries: LinkedLibrary[];
}

/**
 * The description's path under `dir`: relative ones are joined, absolute ones kept. Unlike
 * `packagePath`, nothing is normalised: `dir` may be an expression such as `${pcfiledir}/../..`.
 */
export function under(dir: string, path: string): string {
  return posix.isAbsolute(path) || /^[A-Za-z]:\//.test(path) ? path : `${dir}/${path}`;
}

function targetOs(target: string | undefined): string {
  if (target) return tripleToPlatform(target).os;
  return process.platform === 'win32' ? 'windows' : process.platform;
}

/** For each library name, in first-seen order, the build to link: the preferred kind if shipped. */
function selectLibraries(libraries: LinkLibrary[], shared: boolean): LinkLibrary[] {
  const preferred = shared ? 'shared' : 'static';
  const names = [...new Set(libraries.map((lib) => lib.name))];
  return names.map((name) => {
    const builds = libraries.filter((lib) => lib.name === name);
    return builds.find((lib) => lib.kind === preferred) ?? builds[0]!;
  });
}

/**
 * The libraries of the package in `dir` to link, in link order: of a library built both ways, the
 * static build, or with `shared` the shared one.
 */
export function linkedLibraries(dir: string, desc: LinkDescription, shared: boolean): LinkedLibrary[] {
  return selectLibraries(desc.libraries, shared).map((lib) => ({
    package: desc.name,
    name: lib.name,
    kind: lib.kind,
    file: under(dir, lib.file),
    runtime: lib.kind === 'shared' && lib.runtime !== null ? under(dir, lib.runtime ?? lib.file) : null,
    importLibrary: lib.importLibrary !== undefined ? under(dir, lib.importLibrary) : null,
  }));
}

function pushUnique(list: string[], value: string): void {
  if (!list.includes(value)) list.push(value);
}

/** Like pkgconf, a library named twice is linked at its last mention (dependents come first). */
function keepLastLibraries(libs: string[], isLibrary: (flag: string) => boolean): string[] {
  return libs.filter((flag, i) => !isLibrary(flag) || libs.lastIndexOf(flag) === i);
}

/**
 * The flags for packages in link order (a package before the ones it needs). `dir` may be a
 * literal directory or an expression such as `${pcfiledir}/../..` for a generated `.pc` file.
 */
export function computeLinkFlags(packages: PackageLinkInput[], options: LinkOptions = {}): LinkFlags {
  const os = targetOs(options.target);
  const out: LinkFlags = { includeDirs: [], defines: [], cflags: [], libDirs: [], libFiles: [], libs: [], runtimeFiles: [], libraries: [] };
  const otherCflags: string[] = [];
  const body: string[] = [];
  let linksShared = false;
  const elf = os !== 'darwin' && os !== 'windows';
  const msvc = os === 'windows' && !(options.target ?? '').endsWith('-windows-gnu');
  const archives: string[] = [];
  /** `-F<dir>` of the frameworks linked, for the compiler (headers) and the linker alike. */
  const frameworkDirs: string[] = [];
  /** Repositories a package linked shared requires: linked shared in turn (packages come in link order). */
  const sharedRequired = new Set<string>();

  for (const { dir, description: desc, image } of packages) {
    for (const include of desc.includeDirs) pushUnique(out.includeDirs, under(dir, include));
    for (const define of desc.defines) pushUnique(out.defines, define);
    for (const flag of desc.cflags) pushUnique(otherCflags, expandDir(dir, flag));

    const shared = (options.shared ?? false) || (image !== undefined && sharedRequired.has(repositoryOf(parseReference(image))));
    const selected = linkedLibraries(dir, desc, shared);
    if (selected.some((lib) => lib.kind === 'shared')) for (const required of desc.requires) sharedRequired.add(repositoryOf(parseReference(required)));
    for (const lib of selected) {
      const { name, kind, file, runtime } = lib;
      if (runtime !== null) pushUnique(out.runtimeFiles, runtime);
      // MSVC's linker links a DLL only through its import library: one without is shipped, not linked.
      if (msvc && /\.dll$/i.test(file)) continue;
      out.libraries.push(lib);
      out.libFiles.push(file);
      if (kind === 'static' && elf) pushUnique(archives, posix.basename(file));
      const framework = os === 'darwin' ? frameworkOf(file) : undefined;
      if (framework !== undefined) {
        linksShared = true;
        pushUnique(frameworkDirs, `-F${posix.dirname(framework.bundle)}`);
        body.push('-framework', framework.name);
      } else if (kind === 'static' || os === 'windows') {
        body.push(file);
      } else {
        linksShared = true;
        if (linkerFileNames(name).shared.includes(posix.basename(file))) {
          pushUnique(out.libDirs, posix.dirname(file));
          body.push(`-l${name}`);
        } else {
          body.push(file);
        }
      }
    }
    body.push(...desc.linkFlags.map((flag) => expandDir(dir, flag)));
    if (selected.some((lib) => lib.kind === 'static')) body.push(...desc.staticLinkFlags.map((flag) => expandDir(dir, flag)));
  }

  out.cflags = [...out.includeDirs.map((d) => `-I${d}`), ...frameworkDirs, ...out.defines.map((d) => `-D${d}`), ...otherCflags];
  const libFiles = new Set(out.libFiles);
  out.libs = [...out.libDirs.map((d) => `-L${d}`), ...frameworkDirs, ...keepLastLibraries(body, (flag) => flag.startsWith('-l') || libFiles.has(flag))];
  out.libs.push(...archives.map((archive) => `-Wl,--exclude-libs,${archive}`));
  if (linksShared) {
    if (os === 'darwin') out.libs.push('-Wl,-rpath,@loader_path');
    else if (elf) out.libs.push('-Wl,--disable-new-dtags', options.forMake ? "-Wl,-rpath,'$$ORIGIN'" : '-Wl,-rpath,$ORIGIN');
  }
  return out;
}

/** pkg-config's split of compile flags: `-I` versus everything else (including `-D`). */
export function isIncludeFlag(flag: string): boolean {
  return flag.startsWith('-I');
}

export type LibFlagKind = 'L' | 'l' | 'other';

/** pkg-config's split of link flags; a library given by path counts with the `-l` ones. */
export function libFlagKind(flag: string, flags: LinkFlags): LibFlagKind {
  if (flag.startsWith('-L')) return 'L';
  if (flag.startsWith('-l') || flags.libFiles.includes(flag)) return 'l';
  return 'other';
}

/**
 * Joins flags into one line in pkgconf's convention: a backslash before spaces and the other
 * characters a shell or Make would split or interpret (but not `$`: `$ORIGIN` must reach the
 * linker as is, and pkgconf leaves it alone too).
 */
export function formatFlagLine(flags: string[]): string {
  return flags.map((flag) => flag.replace(/[\s"'\\!#&*;<>?[\]^`{|}~()]/g, '\\$&')).join(' ');
}

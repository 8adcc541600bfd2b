import type { LibraryKind } from '../artifact/config.js';

/**
 * How library files are named, in both directions: pack and discovery name a file's library,
 * reading a `.pc` file looks for the files a `-l` flag names, and the link flags decide whether
 * `-l` can stand for a file. The two functions are inverses of each other for the unversioned names.
 */

/** The link name and kind a file name stands for, or undefined if it is not a library name. */
export function classifyLibraryName(fileName: string): { name: string; kind: LibraryKind } | undefined {
  // Import libraries named for their DLL: MinGW's libgreet.dll.a (-lgreet), CMake's greet.dll.lib.
  // The name only suggests it: discovery decides by the archive's content.
  let m = /^(?:lib(.+)\.dll\.a|(.+)\.dll\.lib)$/i.exec(fileName);
  if (m) return { name: (m[1] ?? m[2])!, kind: 'shared' };
  m = /^lib(.+)\.a$/.exec(fileName);
  if (m) return { name: m[1]!, kind: 'static' };
  m = /^lib(.+?)\.so(\.\d+)*$/.exec(fileName);
  if (m) return { name: m[1]!, kind: 'shared' };
  // libzstd.1.5.6.dylib and libzstd.dylib both link as -lzstd.
  m = /^(?:lib)?(.+?)(\.\d+)*\.dylib$/.exec(fileName);
  if (m) return { name: m[1]!, kind: 'shared' };
  // A text-based stub of a dylib, which ld64 links as it would the dylib.
  m = /^lib(.+)\.tbd$/.exec(fileName);
  if (m) return { name: m[1]!, kind: 'shared' };
  // MSVC links by file name: zstd.lib is zstd, libzstd_static.lib stays libzstd_static.
  m = /^(.+)\.(lib|dll)$/i.exec(fileName);
  if (m) return { name: m[1]!, kind: m[2]!.toLowerCase() === 'dll' ? 'shared' : 'static' };
  return undefined;
}

/**
 * The file names a linker's `-l<name>` finds in a directory, each kind in the order ocipkg prefers
 * them: ld's `lib<name>.so` and `lib<name>.a`, ld64's `lib<name>.tbd` and `lib<name>.dylib`,
 * MinGW ld's `lib<name>.dll.a`, MSVC's `<name>.lib`. Versioned names (`lib<name>.so.1`) are not
 * among them: `-l` never finds those.
 */
export function linkerFileNames(name: string): Record<LibraryKind, string[]> {
  return { static: [`lib${name}.a`, `${name}.lib`], shared: [`lib${name}.so`, `lib${name}.tbd`, `lib${name}.dylib`, `lib${name}.dll.a`] };
}

/**
 * The framework a path is the binary (or `.tbd` stub) of: `Greet` for `lib/Greet.framework/Greet`,
 * `…/Greet.framework/Greet.tbd` or `…/Greet.framework/Versions/A/Greet`; undefined otherwise.
 * A framework links as `-F<its directory> -framework Greet`.
 */
export function frameworkOf(path: string): { name: string; bundle: string } | undefined {
  const m = /^(.*?)([^/]+)\.framework\/(?:Versions\/[^/]+\/)?([^/]+?)(\.tbd)?$/.exec(path);
  if (!m || m[3] !== m[2]) return undefined;
  return { name: m[2]!, bundle: `${m[1]}${m[2]}.framework` };
}

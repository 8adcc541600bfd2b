import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { errno } from '../errors.js';
import { DIR_PLACEHOLDER } from '../artifact/package-data.js';
import type { LibraryKind } from '../artifact/config.js';

/**
 * A package's link description: what a consumer compiles and links against, worked out once when
 * the package is installed (src/link/generate.ts) and stored as `<package dir>/link.json`, so that
 * every later `ocipkg-link` call is one small read.
 *
 * Paths are relative to the package directory (`root/include`, `root/lib/libz.a`) so the staging
 * directory can be renamed into place; absolute paths (a shipped `.pc` naming `/usr/include`) stay
 * absolute. In `variables`, `@dir@` stands for the package directory.
 */
export interface LinkDescription {
  schema: 1;
  /** Where the description came from, in order of preference. */
  source: 'metadata' | 'pkgconfig' | 'discovery';
  name: string;
  version?: string;
  includeDirs: string[];
  defines: string[];
  /** Compile flags that are neither `-I` nor `-D`. */
  cflags: string[];
  /** In link order; a library built both ways appears once per kind. */
  libraries: LinkLibrary[];
  /** Linked after the libraries, always (`-lm`, `-pthread`). */
  linkFlags: string[];
  /** Linked after the libraries when a static one is linked (a shipped `.pc`'s `Libs.private`). */
  staticLinkFlags: string[];
  /** Images to link after this one (from the metadata written by pack). */
  requires: string[];
  /** pkg-config modules a shipped `.pc` requires that the package itself does not provide. */
  pkgconfigRequires: string[];
  /** pkg-config variables from a shipped `.pc` (besides prefix, includedir, libdir). */
  variables: Record<string, string>;
}

export interface LinkLibrary {
  name: string;
  kind: LibraryKind;
  /** Relative to the package directory. */
  file: string;
  /**
   * Shared libraries: the file to ship beside the addon, relative to the package directory and
   * named as the dynamic loader looks for it (`root/lib/libzstd.so.1`, the ELF SONAME; the DLL of
   * an import library). null: nothing to ship (a `.tbd` stub of a system library, an import
   * library whose DLL the package lacks). Absent in descriptions written before either: `file`.
   */
  runtime?: string | null;
  /**
   * A shared library linked through a Windows import library (MSVC's `.lib`, MinGW's `.dll.a`):
   * that file, relative to the package directory, which is then also `file`.
   */
  importLibrary?: string;
}

export const LINK_FILE = 'link.json';

/** Where the generated `.pc` files of the package in `dir` are: the directory PKG_CONFIG_PATH names. */
export function generatedPcDir(dir: string): string {
  return join(dir, 'lib', 'pkgconfig');
}

/** The description stored with an installed package, or undefined if it has none. */
export function readLinkDescription(dir: string): LinkDescription | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, LINK_FILE), 'utf8')) as LinkDescription;
  } catch (err) {
    if (errno(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** A description path made absolute for a package in `dir`. */
export function packagePath(dir: string, path: string): string {
  return isAbsolute(path) ? path : join(dir, path);
}

/**
 * A value from the description (a variable, a flag) for the package in `dir`: `@dir@` replaced by
 * `dir`, which may itself be an expression (`${pcfiledir}/../..`, a CMake variable reference).
 */
export function expandDir(dir: string, value: string): string {
  return value.split(DIR_PLACEHOLDER).join(dir);
}

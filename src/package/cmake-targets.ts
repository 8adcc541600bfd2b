import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { errno, OcipkgError } from '../errors.js';
import type { LibraryInfo } from '../artifact/config.js';
import { isStringArray } from '../json-shape.js';
import { isStoreFile, reachedByRequires } from './store-requires.js';

/**
 * What a CMake build knows about its libraries beyond their files, as CMake's `ocipkg_package`
 * (cmake/ocipkgPackage.cmake) writes it for `ocipkg pack --cmake-targets FILE`: per library target
 * its type, the file names it builds, its INTERFACE_COMPILE_DEFINITIONS and its interface link
 * items, already reduced to what an installed package's consumer sees:
 *
 * - another target of the project, by name;
 * - `-l<name>` or another flag for a system library (`m`, `pthread`, a file in the toolchain's own
 *   library directories);
 * - `imported:<name>` for an imported target of another project (ZLIB::ZLIB), which the package
 *   does not carry;
 * - an absolute path to a library outside the toolchain's directories;
 * - any of these after `static-only:`: a static library's private dependency (CMake's
 *   `$<LINK_ONLY:...>`), needed only when that static library is linked.
 */

type TargetType = 'STATIC_LIBRARY' | 'SHARED_LIBRARY' | 'INTERFACE_LIBRARY';

export interface CmakeTarget {
  name: string;
  type: TargetType;
  /** File names the target builds (file, linker file, SONAME file), for the configuration packed. */
  files: string[];
  defines: string[];
  links: string[];
}

export interface CmakeDescription {
  defines: string[];
  linkFlags: string[];
  staticLinkFlags: string[];
}

const TYPES: readonly string[] = ['STATIC_LIBRARY', 'SHARED_LIBRARY', 'INTERFACE_LIBRARY'];
const STATIC_ONLY = 'static-only:';
const IMPORTED = 'imported:';

export async function readCmakeTargets(file: string): Promise<CmakeTarget[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (errno(err) === 'ENOENT') throw new OcipkgError('EINPUT', `--cmake-targets ${file}: no such file (CMake's ocipkg_package writes it at generate time)`, { cause: err });
    throw new OcipkgError('EINPUT', `--cmake-targets ${file}: ${(err as Error).message}`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new OcipkgError('EINPUT', `--cmake-targets ${file}: not valid JSON`);
  }
  const targets = (doc as { targets?: unknown } | null)?.targets;
  if (!Array.isArray(targets)) throw new OcipkgError('EINPUT', `--cmake-targets ${file}: no "targets" list`);
  return targets.map((t: unknown, i) => {
    const target = t as Partial<Record<keyof CmakeTarget, unknown>> | null;
    if (
      typeof target?.name !== 'string' || typeof target.type !== 'string' || !TYPES.includes(target.type) ||
      !isStringArray(target.files) || !isStringArray(target.defines) || !isStringArray(target.links)
    ) {
      throw new OcipkgError('EINPUT', `--cmake-targets ${file}: targets[${i}] is not a library target record`);
    }
    return { name: target.name, type: target.type as TargetType, files: target.files, defines: target.defines, links: target.links };
  });
}

/**
 * The definitions and link flags the installed library targets give their consumers. A target is
 * installed when a library pack found in the prefix is one of its files; the others (tests, tools,
 * internal helpers) say nothing. What a consumer could not satisfy is warned about, not recorded.
 */
export function describeFromCmake(targets: CmakeTarget[], libraries: LibraryInfo[], requires: string[], warn: (message: string) => void): CmakeDescription {
  // What a consumer links beyond the package comes only from the packages it requires: say which.
  const fromRequired = requires.length > 0 ? `consumers get it only from a package REQUIRES names (here: ${requires.join(', ')})` : 'declare the package that provides it with REQUIRES';
  const byName = new Map(targets.map((t) => [t.name, t]));
  const found = new Map(libraries.map((lib) => [basename(lib.file), lib]));
  const installed = new Set<string>();
  for (const target of targets) {
    const libs = target.files.map((f) => found.get(f)).filter((lib) => lib !== undefined);
    if (libs.length === 0) continue;
    installed.add(target.name);
    const kind = target.type === 'STATIC_LIBRARY' ? 'static' : 'shared';
    for (const lib of libs) {
      if (lib.kind !== kind) warn(`${lib.file} is the ${target.type === 'STATIC_LIBRARY' ? 'static' : 'shared'} library target ${target.name} in CMake, but was recorded as ${lib.kind}`);
    }
  }

  const description: CmakeDescription = { defines: [], linkFlags: [], staticLinkFlags: [] };
  const visited = new Set<string>();
  const visit = (target: CmakeTarget, staticOnly: boolean) => {
    const key = `${target.name}\0${staticOnly}`;
    if (visited.has(key)) return;
    visited.add(key);
    if (!staticOnly) description.defines.push(...target.defines);
    for (const raw of target.links) {
      const itemStaticOnly = staticOnly || raw.startsWith(STATIC_ONLY);
      const item = raw.startsWith(STATIC_ONLY) ? raw.slice(STATIC_ONLY.length) : raw;
      const linked = byName.get(item);
      if (linked?.type === 'INTERFACE_LIBRARY') visit(linked, itemStaticOnly);
      else if (linked) {
        if (!installed.has(linked.name)) warn(`${target.name} links ${linked.name}, which the install rules do not install: consumers cannot link it`);
      } else if (item.startsWith(IMPORTED)) {
        warn(`${target.name} links ${item.slice(IMPORTED.length)}, a target of another project the package does not carry; ${fromRequired}`);
      } else if (isStoreFile(item)) {
        // Linked from the store by path (libpng's build finds the store's zlib): consumers get it
        // through the package REQUIRES names, when one does.
        if (!reachedByRequires(item, requires)) warn(`${target.name} links ${item}, a file of a package in the ocipkg store that no package REQUIRES names reaches there: not recorded; ${fromRequired}`);
      } else if (item.startsWith('/') || /^[A-Za-z]:[\\/]/.test(item)) {
        warn(`${target.name} links ${item} by its path on this machine, which consumers do not have; not recorded`);
      } else {
        (itemStaticOnly ? description.staticLinkFlags : description.linkFlags).push(item);
      }
    }
  };
  for (const name of installed) visit(byName.get(name)!, false);
  return {
    defines: [...new Set(description.defines)],
    linkFlags: [...new Set(description.linkFlags)],
    staticLinkFlags: [...new Set(description.staticLinkFlags)].filter((f) => !description.linkFlags.includes(f)),
  };
}

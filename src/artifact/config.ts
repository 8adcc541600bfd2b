import { OcipkgError } from '../errors.js';
import type { ContentSource } from '../oci/content.js';
import { isDigest } from '../oci/digest.js';
import { fetchSmallBlob, parseManifest } from '../oci/manifest.js';
import { OCIPKG_CONFIG } from '../oci/mediatypes.js';
import type { Descriptor } from '../oci/types.js';
import { parseReference } from '../reference.js';
import { PackageDataChecker } from './package-data.js';
import { isStringArray } from '../json-shape.js';

/**
 * The config blob of an ocipkg artifact (`application/vnd.ocipkg.v1.config+json`).
 *
 * `layers` is exactly what the Rust ocipkg writes and reads: layer digest -> relative paths of the
 * files in that layer. ocipkg for Node adds `package` beside it; readers that do not know it (the
 * Rust ocipkg) ignore it, and artifacts without it (written by the Rust ocipkg) are still read.
 *
 * This module is the one reader of the format: every config that reaches ocipkg is parsed and
 * checked by `parsePackageConfig` (or `fetchPackageConfig`, which reads it first), nowhere else.
 */
export interface PackageConfig {
  layers: Record<string, string[]>;
  package?: PackageMetadata;
}

export type LibraryKind = 'static' | 'shared';

export interface LibraryInfo {
  /** Link name: `zstd` for `libzstd.a` / `libzstd.so.1` / `zstd.lib`. */
  name: string;
  kind: LibraryKind;
  /** Path relative to the package root, forward slashes. */
  file: string;
  /** ELF SONAME / Mach-O install name of a shared library, when it has one. */
  soname?: string;
  /**
   * A shared library whose `file` is what links but not what loads: the DLL a Windows import
   * library (`lib/greet.lib`, `lib/libgreet.dll.a`) stands for (`bin/greet.dll`), relative to the
   * package root. Absent in older metadata, which named the import library alone.
   */
  runtime?: string;
}

export interface PackageMetadata {
  /** Version of this metadata format. */
  schema: 1;
  /** Package name, by default the last component of the repository. */
  name: string;
  version?: string;
  /** Target triple the libraries were built for. */
  target?: string;
  libraries: LibraryInfo[];
  /** Include directories relative to the package root. */
  includeDirs: string[];
  /** Preprocessor definitions consumers need (`NAME` or `NAME=VALUE`). */
  defines: string[];
  /** Extra linker flags consumers need after the libraries (e.g. `-lpthread`). */
  linkFlags: string[];
  /**
   * Linker flags needed only when a static library of the package is linked (a `.pc`'s
   * `Libs.private`: what a shared build carries in its own dependencies). Absent in older metadata.
   */
  staticLinkFlags: string[];
  /** Images this package needs linked after it. */
  requires: string[];
}

function isRegistryReference(value: string): boolean {
  try {
    return parseReference(value).kind === 'registry';
  } catch {
    return false;
  }
}

function badConfig(what: string, why: string): OcipkgError {
  return new OcipkgError('EMANIFEST', `${what}: invalid ocipkg config: ${why}`);
}

/** The metadata's shape, then every value in it through the package-data checks. */
function parseMetadata(value: unknown, what: string, outcome: string | undefined): PackageMetadata {
  if (typeof value !== 'object' || value === null) throw badConfig(what, '"package" is not an object');
  const m = value as Record<string, unknown>;
  if (typeof m.name !== 'string') throw badConfig(what, '"package.name" is missing');
  const libraries = m.libraries ?? [];
  if (!Array.isArray(libraries)) throw badConfig(what, '"package.libraries" is not an array');
  for (const lib of libraries as Record<string, unknown>[]) {
    if (typeof lib?.name !== 'string' || typeof lib.file !== 'string' || (lib.kind !== 'static' && lib.kind !== 'shared') || (lib.soname !== undefined && typeof lib.soname !== 'string') || (lib.runtime !== undefined && typeof lib.runtime !== 'string')) {
      throw badConfig(what, 'each of "package.libraries" needs name, file and kind (static or shared), and a string soname and runtime if any');
    }
  }
  for (const key of ['includeDirs', 'defines', 'linkFlags', 'staticLinkFlags', 'requires'] as const) {
    if (m[key] !== undefined && !isStringArray(m[key])) throw badConfig(what, `"package.${key}" is not a list of strings`);
  }
  for (const key of ['version', 'target'] as const) {
    if (m[key] !== undefined && typeof m[key] !== 'string') throw badConfig(what, `"package.${key}" is not a string`);
  }

  const check = new PackageDataChecker(what, outcome);
  const metadata: PackageMetadata = {
    schema: 1,
    name: check.name('package.name', m.name),
    ...(m.version !== undefined && { version: check.version('package.version', m.version as string) }),
    ...(m.target !== undefined && { target: check.name('package.target', m.target as string) }),
    libraries: (libraries as LibraryInfo[]).map((lib) => ({
      name: check.name('package.libraries[].name', lib.name),
      kind: lib.kind,
      file: check.relativePath('package.libraries[].file', lib.file),
      ...(lib.soname !== undefined && { soname: check.installName('package.libraries[].soname', lib.soname) }),
      ...(lib.runtime !== undefined && { runtime: check.relativePath('package.libraries[].runtime', lib.runtime) }),
    })),
    includeDirs: ((m.includeDirs as string[] | undefined) ?? []).map((dir) => check.relativePath('package.includeDirs', dir)),
    defines: ((m.defines as string[] | undefined) ?? []).map((define) => check.define('package.defines', define)),
    linkFlags: check.linkFlags('package.linkFlags', (m.linkFlags as string[] | undefined) ?? []),
    staticLinkFlags: check.linkFlags('package.staticLinkFlags', (m.staticLinkFlags as string[] | undefined) ?? []),
    requires: (m.requires as string[] | undefined) ?? [],
  };
  for (const required of metadata.requires) {
    // A package names registries only: an `oci:` path would read whatever the consumer's machine has there.
    if (!isRegistryReference(required)) throw badConfig(what, `"package.requires" holds ${JSON.stringify(required)}, which is not a registry image reference`);
  }
  return metadata;
}

/**
 * Parses and checks the config blob `desc` describes. A config of another media type (a plain OCI
 * image's) carries no ocipkg data: undefined. One without `package` (the Rust ocipkg's) is fine.
 * `outcome` ends a refusal's message (by default: the package is not installed).
 */
export function parsePackageConfig(desc: Descriptor, bytes: Uint8Array, what: string, outcome?: string): PackageConfig | undefined {
  return desc.mediaType === OCIPKG_CONFIG ? parseConfigJson(bytes, what, outcome) : undefined;
}

/**
 * Reads (size- and digest-checked) and parses a manifest's config; only ocipkg configs are fetched
 * at all. `what` names the package in messages.
 */
export async function fetchPackageConfig(source: ContentSource, desc: Descriptor, what: string): Promise<PackageConfig | undefined> {
  return (await fetchConfigBlob(source, desc, what))?.config;
}

/** The same, with the bytes read: for a caller that stores the blob as well (a fetch installing it). */
export async function fetchConfigBlob(source: ContentSource, desc: Descriptor, what: string): Promise<ConfigBlob | undefined> {
  if (desc.mediaType !== OCIPKG_CONFIG) return undefined;
  const bytes = await fetchSmallBlob(source, desc);
  return { desc, bytes, config: parseConfigJson(bytes, what) };
}

/** A config blob as read, digest-checked, and what it says. */
export interface ConfigBlob {
  desc: Descriptor;
  bytes: Buffer;
  config: PackageConfig;
}

function parseConfigJson(bytes: Uint8Array, what: string, outcome?: string): PackageConfig {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw badConfig(what, 'not JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw badConfig(what, 'not a JSON object');
  const obj = json as Record<string, unknown>;
  const layers = obj.layers ?? {};
  if (typeof layers !== 'object' || layers === null || Array.isArray(layers)) throw badConfig(what, '"layers" is not an object');
  for (const [digest, paths] of Object.entries(layers)) {
    if (!isDigest(digest) || !isStringArray(paths)) throw badConfig(what, '"layers" must map sha256 digests to lists of paths');
  }
  return {
    layers: layers as Record<string, string[]>,
    ...(obj.package !== undefined && { package: parseMetadata(obj.package, what, outcome) }),
  };
}

/**
 * The target triple the image `reference` names in `source` records for itself: a single manifest's
 * `package.target`, else undefined (an index, which has a build per triple, or a config without it).
 * `ocipkg load` installs an archive for the triple it was packed for, with no `--target`.
 */
export async function recordedTarget(source: ContentSource, reference: string, what: string): Promise<string | undefined> {
  const desc = await source.resolve(reference);
  const parsed = parseManifest(await fetchSmallBlob(source, desc), desc.mediaType, what);
  if (parsed.kind !== 'manifest') return undefined;
  return (await fetchPackageConfig(source, parsed.manifest.config, what))?.package?.target;
}

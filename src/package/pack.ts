import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { errno, OcipkgError, isOcipkgError } from '../errors.js';
import { writeOciArchive } from '../layout/archive-write.js';
import { descriptorFor } from '../oci/verify.js';
import {
  ANNOTATION_DESCRIPTION,
  ANNOTATION_LICENSES,
  ANNOTATION_SOURCE,
  ANNOTATION_VERSION,
  OCI_MANIFEST,
  OCIPKG_ARTIFACT,
  OCIPKG_CONFIG,
} from '../oci/mediatypes.js';
import type { Descriptor, ImageManifest } from '../oci/types.js';
import { canonicalReference, parseReference, type RegistryReference } from '../reference.js';
import { assertTriple, tripleToPlatform } from '../triple.js';
import { gnuCxxForMsvc, inspectFile, nonPicObjects, tripleOf, type ObjectInfo, type WindowsAbi } from './binary/index.js';
import { discoverIncludeDirs, discoverLibraries } from './discover.js';
import { directoryEntries, placeBySoname, writeLayer, type LayerEntry } from './layer.js';
import { readShippedFiles } from './shipped-pc.js';
import { describeFromCmake, readCmakeTargets } from './cmake-targets.js';
import { createdAnnotation } from './source-date.js';
import { parsePackageConfig, type LibraryInfo, type PackageConfig, type PackageMetadata } from '../artifact/config.js';

/** A packed directory's own declarations (`{"requires": [IMAGE...]}`), beside include/ and lib/. */
export const PACKAGE_FILE = 'ocipkg.json';

export interface PackOptions {
  /** Image name recorded in the archive, e.g. `ghcr.io/acme/zstd:1.5.6` (tag defaults to latest). */
  image: string;
  /** Target triple; detected from the libraries' headers when absent. */
  target?: string;
  /**
   * With `target`: still read the libraries' headers and refuse a directory built for another OS
   * or architecture (`publish`, where TRIPLE=PATH is a claim to check, not an override). The libc
   * is not compared: static objects do not show it.
   */
  checkTarget?: boolean;
  /** Package name; defaults to the last component of the repository. */
  name?: string;
  version?: string;
  source?: string;
  licenses?: string;
  description?: string;
  /** Images this package needs linked after it. */
  requires?: string[];
  /** Preprocessor definitions consumers need (`NAME` or `NAME=VALUE`), besides what the package's `.pc` says. */
  defines?: string[];
  /** Flags consumers link after the libraries (`-lm`), besides what the package's `.pc` says. */
  linkFlags?: string[];
  /** Flags consumers link only with a static library of the package (its private dependencies). */
  staticLinkFlags?: string[];
  /** What a CMake build says about its library targets (CMake's ocipkg_package writes it); see cmake-targets.ts. */
  cmakeTargets?: string;
  /** Called with one line per problem worth telling the user that does not stop packing. */
  warn?: (message: string) => void;
}

export interface PackResult {
  manifestDigest: string;
  manifestDescriptor: Descriptor;
  manifest: ImageManifest;
  config: PackageConfig;
  layer: Descriptor;
  /** The full image name written as the archive's `org.opencontainers.image.ref.name`. */
  refName: string;
}

/** The contents of one artifact, however they were gathered (a directory for pack, files for compose). */
export interface ArtifactInput {
  entries: LayerEntry[];
  libraries: LibraryInfo[];
  includeDirs: string[];
  /** The file on disk a library entry (`LibraryInfo.file`) is read from. */
  sourceOf: (library: LibraryInfo) => string;
  /** For messages: the directory or files being packed. */
  origin: string;
  /** What the package's own files (its `.pc`) say consumers need; the options add to these. */
  defines?: string[];
  linkFlags?: string[];
  staticLinkFlags?: string[];
}

/** The image name to record: a registry reference with a tag (the Rust ocipkg needs both). */
function imageName(image: string): { ref: RegistryReference; refName: string } {
  const ref = parseReference(image);
  if (ref.kind !== 'registry') throw new OcipkgError('EUSAGE', `"${image}": an archive needs an image name like ghcr.io/acme/zstd:1.0, not a layout path`);
  if (ref.digest !== undefined) throw new OcipkgError('EUSAGE', `"${image}": name the archive by tag, not by digest (the digest is what packing produces)`);
  return { ref, refName: canonicalReference(ref) };
}

/**
 * The objects of the libraries, read from their headers. `architecture` picks one slice of a
 * universal binary, as the linker does for the target. Files that are not binaries (a linker
 * script named libc.so) say nothing.
 */
async function libraryObjects(input: ArtifactInput, architecture?: string): Promise<ObjectInfo[]> {
  const objects: ObjectInfo[] = [];
  // A DLL shows its toolchain (the runtime DLLs it imports) better than its import library does.
  const files = input.libraries.flatMap((lib) => [input.sourceOf(lib), ...(lib.runtime !== undefined ? [input.sourceOf({ ...lib, file: lib.runtime })] : [])]);
  for (const file of files) {
    try {
      objects.push(...(await inspectFile(file, architecture !== undefined ? { architecture } : {})));
    } catch (err) {
      if (!isOcipkgError(err, 'EINPUT')) throw err;
    }
  }
  return objects;
}

/**
 * The one triple the objects were built for. Objects that do not show their libc (static
 * objects) or their Windows toolchain agree with any; a platform, libc or toolchain mix is
 * refused, as is a directory whose binaries name no known triple.
 */
function detectTarget(objects: ObjectInfo[], origin: string): string | undefined {
  if (objects.length === 0) return undefined;
  const platforms = new Map<string, ObjectInfo>();
  const libcs = new Set<string>();
  const abis = new Set<WindowsAbi>();
  for (const o of objects) {
    platforms.set(`${o.os}/${o.architecture}${o.architecture === 'arm' ? (o.hardFloat ? '/hard-float' : '/soft-float') : ''}`, o);
    if (o.libc) libcs.add(o.libc);
    if (o.abi) abis.add(o.abi);
  }
  if (platforms.size > 1 || libcs.size > 1) {
    const seen = [...platforms.keys(), ...libcs].join(', ');
    const universal = objects.some((o) => o.universal) ? ' (a universal binary: pass --target for the slice to pack)' : '';
    throw new OcipkgError('EINPUT', `libraries in ${origin} are built for different targets (${seen})${universal}; pack one target per archive or pass --target`);
  }
  if (abis.size > 1) {
    const [gnu, msvc] = [objects.find((o) => o.abi === 'gnu')!, objects.find((o) => o.abi === 'msvc')!];
    throw new OcipkgError('EINPUT', `libraries in ${origin} mix MinGW (${gnu.where}) and MSVC (${msvc.where}) builds; pack one toolchain per archive or pass --target`);
  }
  const sample = [...platforms.values()][0]!;
  const triple = tripleOf({ ...sample, ...(libcs.size === 1 && { libc: [...libcs][0] as 'gnu' | 'musl' }), ...(abis.size === 1 && { abi: [...abis][0]! }) });
  if (!triple) throw new OcipkgError('EINPUT', `no known target triple for ${sample.where} (${sample.os}/${sample.architecture}); pass --target`);
  return triple;
}

function checkTarget(objects: ObjectInfo[], origin: string, target: string): void {
  const detected = detectTarget(objects, origin);
  if (detected === undefined) return;
  const [want, have] = [tripleToPlatform(target), tripleToPlatform(detected)];
  if (want.os !== have.os || want.architecture !== have.architecture) {
    throw new OcipkgError('EINPUT', `libraries in ${origin} are built for ${have.os}/${have.architecture}, not ${target}`);
  }
}

/**
 * Warnings about libraries that pack but will not work as consumers expect: a dylib whose install
 * name is a path of this machine (an addon linked against it would look there, on every machine),
 * and a DLL without its import library (an MSVC build cannot link it).
 */
function warnLoading(libraries: LibraryInfo[], warn: (message: string) => void): void {
  for (const lib of libraries) {
    const soname = lib.soname;
    if (soname?.startsWith('/') && !/^\/(usr\/lib|System)\//.test(soname)) {
      const rpath = `@rpath/${soname.slice(soname.lastIndexOf('/') + 1)}`;
      warn(`${lib.file}: install name ${soname} is a path on this machine, where an addon linked against it would look on every machine; ` +
        `build it with the install name ${rpath} (CMake: -DCMAKE_INSTALL_NAME_DIR=@rpath, or -Wl,-install_name,${rpath})`);
    }
    if (/\.dll$/i.test(lib.file)) {
      warn(`${lib.file}: no import library for this DLL in the package, so an MSVC build cannot link it (it is shipped beside the addon only); install its .lib too`);
    }
  }
}

async function warnNonPic(input: ArtifactInput, warn: (message: string) => void): Promise<void> {
  for (const lib of input.libraries) {
    if (lib.kind !== 'static') continue;
    const bad = await nonPicObjects(input.sourceOf(lib)).catch((err: unknown) => {
      if (isOcipkgError(err, 'EINPUT')) return [];
      throw err;
    });
    if (bad.length === 0) continue;
    const more = bad.length > 1 ? ` and ${bad.length - 1} more object${bad.length > 2 ? 's' : ''}` : '';
    warn(
      `${lib.file}: ${bad[0]}${more} cannot be linked into a shared object such as a Node addon (.node); ` +
        'rebuild the library with -fPIC (CMake: -DCMAKE_POSITION_INDEPENDENT_CODE=ON)',
    );
  }
}

function annotations(options: PackOptions): Record<string, string> | undefined {
  const out: Record<string, string> = { ...createdAnnotation() };
  if (options.version !== undefined) out[ANNOTATION_VERSION] = options.version;
  if (options.source !== undefined) out[ANNOTATION_SOURCE] = options.source;
  if (options.licenses !== undefined) out[ANNOTATION_LICENSES] = options.licenses;
  if (options.description !== undefined) out[ANNOTATION_DESCRIPTION] = options.description;
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Builds the layer, config and manifest of one artifact and writes them as an oci-archive. */
export async function writeArtifact(input: ArtifactInput, output: string, options: PackOptions): Promise<PackResult> {
  const { ref, refName } = imageName(options.image);
  const warn = options.warn ?? (() => {});
  const requires = (options.requires ?? []).map((r) => canonicalReference(parseReference(r)));
  const asked = options.target !== undefined ? assertTriple(options.target) : undefined;
  // Headers are read unless a --target overrides them, and for Windows whatever the target, for the C++ ABI.
  const read = asked === undefined || options.checkTarget || tripleToPlatform(asked).os === 'windows';
  const objects = read ? await libraryObjects(input, asked && tripleToPlatform(asked).architecture) : [];
  const target = asked ?? detectTarget(objects, input.origin);
  if (asked !== undefined && options.checkTarget) checkTarget(objects, input.origin, asked);
  const cxx = target !== undefined ? gnuCxxForMsvc(objects, target) : undefined;
  if (cxx !== undefined) throw new OcipkgError('EINPUT', `${cxx}; nothing is packed`);
  if (input.libraries.length === 0) warn(`no libraries found in ${input.origin} (looked for lib*.a, lib*.so*, *.dylib, lib*.tbd, *.lib, *.dll in lib/, lib64/ and the root)`);
  await warnNonPic(input, warn);
  warnLoading(input.libraries, warn);

  const { entries, libraries } = placeBySoname(input.entries, input.libraries);
  const work = await mkdtemp(join(dirname(output), '.ocipkg-pack-')).catch((err: unknown) => {
    throw new OcipkgError('EINPUT', `cannot write next to ${output}: ${(err as Error).message}`, { cause: err });
  });
  try {
    const layer = await writeLayer(entries, join(work, 'layer.tar.gz'));
    const metadata: PackageMetadata = {
      schema: 1,
      name: options.name ?? ref.repository.slice(ref.repository.lastIndexOf('/') + 1),
      ...(options.version !== undefined && { version: options.version }),
      ...(target !== undefined && { target }),
      libraries,
      includeDirs: input.includeDirs,
      defines: [...new Set([...(input.defines ?? []), ...(options.defines ?? [])])],
      linkFlags: [...new Set([...(input.linkFlags ?? []), ...(options.linkFlags ?? [])])],
      staticLinkFlags: [...new Set([...(input.staticLinkFlags ?? []), ...(options.staticLinkFlags ?? [])])],
      requires,
    };
    const config: PackageConfig = { layers: { [layer.descriptor.digest]: layer.paths }, package: metadata };
    const configBytes = Buffer.from(JSON.stringify(config));
    const configDescriptor = descriptorFor(OCIPKG_CONFIG, configBytes);
    // What consumers would refuse at install is refused here, before anything is written.
    parsePackageConfig(configDescriptor, configBytes, `${refName} (packing ${input.origin})`, 'nothing is packed');
    const manifestAnnotations = annotations(options);
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: OCIPKG_ARTIFACT,
      config: configDescriptor,
      layers: [layer.descriptor],
      ...(manifestAnnotations && { annotations: manifestAnnotations }),
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    const manifestDescriptor = descriptorFor(OCI_MANIFEST, manifestBytes);
    await writeOciArchive(
      output,
      { descriptor: manifestDescriptor, data: manifestBytes },
      [
        { descriptor: configDescriptor, data: configBytes },
        { descriptor: layer.descriptor, file: layer.file },
      ],
      refName,
    );
    return { manifestDigest: manifestDescriptor.digest, manifestDescriptor, manifest, config, layer: layer.descriptor, refName };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Packs an install prefix (`include/`, `lib/`, ...) into an oci-archive at `output`: one
 * reproducible layer, a config with the Rust ocipkg's `layers` map and ocipkg's `package`
 * metadata, and a manifest of artifactType application/vnd.ocipkg.v1.artifact.
 */
export async function pack(dir: string, output: string, options: PackOptions): Promise<PackResult> {
  const [libraries, includeDirs, declared] = await Promise.all([discoverLibraries(dir), discoverIncludeDirs(dir), declaredRequires(dir)]);
  const requires = [...new Set([...(options.requires ?? []), ...declared].map((r) => canonicalReference(parseReference(r))))];
  const warn = options.warn ?? (() => {});
  const shipped = await readShippedFiles(dir, await directoryEntries(dir), libraries, requires, warn);
  const fromCmake = options.cmakeTargets !== undefined ? describeFromCmake(await readCmakeTargets(options.cmakeTargets), libraries, requires, warn) : undefined;
  return writeArtifact({ ...shipped, libraries, includeDirs, sourceOf: (lib) => join(dir, lib.file), origin: dir }, output, {
    ...options,
    requires,
    ...(fromCmake && {
      defines: [...fromCmake.defines, ...(options.defines ?? [])],
      linkFlags: [...fromCmake.linkFlags, ...(options.linkFlags ?? [])],
      staticLinkFlags: [...fromCmake.staticLinkFlags, ...(options.staticLinkFlags ?? [])],
    }),
  });
}

/** `requires` from an `ocipkg.json` in the packed directory: what a library's own build says it needs. */
async function declaredRequires(dir: string): Promise<string[]> {
  const file = join(dir, PACKAGE_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (errno(err) === 'ENOENT') return [];
    throw new OcipkgError('EINPUT', `${file}: ${(err as Error).message}`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new OcipkgError('EINPUT', `${file}: not valid JSON`);
  }
  const requires = (doc as { requires?: unknown } | null)?.requires ?? [];
  if (!Array.isArray(requires) || !requires.every((r) => typeof r === 'string')) {
    throw new OcipkgError('EINPUT', `${file}: "requires" must be a list of image references`);
  }
  return requires;
}

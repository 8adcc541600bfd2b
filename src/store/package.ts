import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errno } from '../errors.js';
import { isDigest } from '../oci/digest.js';
import type { ImageManifest } from '../oci/types.js';
import type { PackageConfig } from '../artifact/config.js';
import { PACKAGE_INFO_FILE, PACKAGE_ROOT_DIR, storePaths } from './paths.js';

/** What `packages/sha256/<hex>/package.json` holds: everything the warm path needs in one read. */
export interface PackageInfo {
  manifestDigest: string;
  manifest: ImageManifest;
  config: PackageConfig;
  /** The triple this build is for, when known (from the index annotation or the metadata). */
  target?: string;
  /** ISO time of the install (absent in packages installed before it was recorded). */
  fetched?: string;
  /** `false` when the store did not keep the layer blobs (OCIPKG_KEEP_LAYERS=0, see keepLayers). */
  layersKept?: false;
}

/** A complete package in the store. */
export interface InstalledPackage extends PackageInfo {
  /** `packages/sha256/<hex>`: ocipkg's own files about the package (info, generated .pc / CMake files). */
  dir: string;
  /** `packages/sha256/<hex>/root`: the extracted layers; what `image-directory` prints. */
  root: string;
}

/**
 * Reads an installed package, or undefined when it is not (completely) there. A package directory
 * only appears by an atomic rename once complete, so its presence is the completeness check.
 * Synchronous and import-light on purpose: this is the warm path of every `ocipkg-link` call.
 */
export function readInstalledPackage(storeRoot: string, manifestDigest: string): InstalledPackage | undefined {
  const dir = storePaths.package(storeRoot, manifestDigest);
  let info: PackageInfo;
  try {
    info = JSON.parse(readFileSync(join(dir, PACKAGE_INFO_FILE), 'utf8')) as PackageInfo;
  } catch (err) {
    if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return undefined;
    throw err;
  }
  return { ...info, dir, root: join(dir, PACKAGE_ROOT_DIR) };
}

/** Every complete package in the store. */
export function listPackages(root: string): InstalledPackage[] {
  let names: string[];
  try {
    names = readdirSync(storePaths.packages(root));
  } catch (err) {
    if (errno(err) === 'ENOENT') return [];
    throw err;
  }
  return names.flatMap((hex) => {
    const digest = `sha256:${hex}`;
    return isDigest(digest) ? (readInstalledPackage(root, digest) ?? []) : [];
  });
}

import { dataDir } from '../dirs.js';
import { join } from 'node:path';
import { digestHex } from '../oci/digest.js';

/**
 * Where the shared store lives: `$OCIPKG_DATA_DIR`, else the platform's data directory for
 * `ocipkg` (`$XDG_DATA_HOME/ocipkg`, by default `~/.local/share/ocipkg`, on Linux).
 *
 * Layout under the root:
 *   oci-layout, index.json, blobs/sha256/<hex>   an OCI image layout (skopeo and oras can read it)
 *   packages/sha256/<hex>/                       one extracted package per manifest digest
 *     package.json                               manifest, config and target (see InstalledPackage)
 *     root/                                      the extracted layers
 *   refs/<registry>/<repository>/<tag>.json      tag -> digests, for lookups without network (both encoded, see refs.ts)
 *   verified/sha256/<hex>.json                   which trusted keys verified a package (verified.ts)
 *   used/sha256/<hex>                            when a lookup last returned a package, as an mtime (usage.ts)
 *   projects/<hash>.json                         projects whose lockfile prune keeps (projects.ts)
 *   tmp/                                         staging; anything here is incomplete by definition
 *   tmp/partial-<hex>                            an interrupted download, continued by the next get (partial.ts)
 */
export function storeRoot(): string {
  return dataDir();
}

export const storePaths = {
  blob: (root: string, digest: string) => join(root, 'blobs', 'sha256', digestHex(digest)),
  package: (root: string, manifestDigest: string) => join(root, 'packages', 'sha256', digestHex(manifestDigest)),
  packages: (root: string) => join(root, 'packages', 'sha256'),
  refs: (root: string) => join(root, 'refs'),
  tmp: (root: string) => join(root, 'tmp'),
};

/** The name (uniqueName prefix) of an install's staging directory in `tmp/`. */
export const STAGING_PREFIX = 'install-';

/** Inside a package directory. */
export const PACKAGE_INFO_FILE = 'package.json';
export const PACKAGE_ROOT_DIR = 'root';

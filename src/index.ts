/**
 * ocipkg's programmatic API (ESM). The CommonJS entry for binding.gyp's `node -p` lives beside it
 * (src/cjs/) and runs `ocipkg-link`'s bundled warm path in-process.
 */
export { OcipkgError, type ErrorCode } from './errors.js';
export { parseReference, formatReference, canonicalReference, type ImageReference } from './reference.js';
export { TRIPLES, selectTriple, nodeToTriple, tripleToPlatform, platformToTriples } from './triple.js';
export { resolvePackage, type ResolveOptions } from './resolve.js';
export type { InstalledPackage, PackageInfo } from './store/package.js';
export { storeRoot } from './store/paths.js';
export type { PackageConfig, PackageMetadata, LibraryInfo } from './artifact/config.js';
export type { Descriptor, ImageManifest, ImageIndex, Platform } from './oci/types.js';

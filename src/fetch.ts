import { AsyncLocalStorage } from 'node:async_hooks';
import { OcipkgError } from './errors.js';
import { linkDescriptionOf } from './link/description.js';
import { preparePackage } from './link/generate.js';
import { fetchSmallBlob, parseManifest } from './oci/manifest.js';
import { OCIPKG_CONFIG } from './oci/mediatypes.js';
import type { ContentSource } from './oci/content.js';
import type { Descriptor, ImageManifest } from './oci/types.js';
import { parseConfig, type PackageMetadata } from './artifact/config.js';
import { canonicalReference, parseReference, tagOrDigest, type ImageReference } from './reference.js';
import { resolvePackage } from './resolve.js';
import { indexTriples, selectFromIndex } from './artifact/triples.js';
import { openContent } from './open.js';
import { installPackage } from './store/install.js';
import type { InstalledPackage } from './store/package.js';
import { writeRef } from './store/refs.js';
import { writeStoreIndex } from './store/index-json.js';

/**
 * The cold path of `resolvePackage`: resolve the reference at its source, pick the manifest for the
 * target, install it into the store, and record the tag in the refs index.
 */
export async function fetchPackage(
  ref: ImageReference,
  target: string,
  storeRoot: string,
  progress?: (message: string) => void,
): Promise<InstalledPackage> {
  return installImage(openContent(ref), tagOrDigest(ref), ref, target, storeRoot, progress);
}

/** The package metadata a manifest's ocipkg config records, if any. Configs are small: reading one first saves downloading layers built for another machine. */
async function packageMetadata(source: ContentSource, manifest: ImageManifest): Promise<PackageMetadata | undefined> {
  const config = manifest.config;
  return config.mediaType === OCIPKG_CONFIG ? parseConfig(await fetchSmallBlob(source, config)).package : undefined;
}

/** The images whose requirements are being installed in this async call chain: a cycle would never end. */
const requiring = new AsyncLocalStorage<string[]>();

/**
 * Installs (or finds in the store) each image `image` requires and returns the package names they
 * install under, in order: the generated `.pc` (`Requires:`) and CMake config (`find_dependency`)
 * of `image` name them, so their names must be known before its files are written.
 */
async function installRequirements(image: string, requires: string[], target: string, storeRoot: string, progress?: (message: string) => void): Promise<string[]> {
  const chain = [...(requiring.getStore() ?? []), image];
  const names: string[] = [];
  for (const required of requires) {
    const canonical = canonicalReference(parseReference(required));
    if (chain.includes(canonical)) throw new OcipkgError('EMANIFEST', `${canonical} requires itself (through its requires: ${[...chain, canonical].join(' -> ')})`);
    const pkg = await requiring.run([...chain, canonical], () => resolvePackage(required, { target, storeRoot, progress }));
    names.push((await linkDescriptionOf(pkg)).name);
  }
  return names;
}

/**
 * What a tag points at and the manifest of every target it offers (for a lockfile), without
 * installing anything: an index lists them all; a single manifest serves the one its config records.
 */
export async function imageTriples(ref: ImageReference): Promise<{ root: Descriptor; manifests: Record<string, string> }> {
  const source = openContent(ref);
  const image = canonicalReference(ref);
  const root = await source.resolve(tagOrDigest(ref));
  const parsed = parseManifest(await fetchSmallBlob(source, root), root.mediaType, image);
  if (parsed.kind === 'index') return { root, manifests: indexTriples(parsed.index) };
  return { root, manifests: { [(await packageMetadata(source, parsed.manifest))?.target ?? '']: root.digest } };
}

/**
 * Installs what `reference` (a tag or digest) names in `source` and records it in the refs index
 * as `recordAs`: the registry or layout it came from for `get`, the archive's own name for `load`.
 */
export async function installImage(
  source: ContentSource,
  reference: string,
  recordAs: ImageReference,
  target: string,
  storeRoot: string,
  progress?: (message: string) => void,
): Promise<InstalledPackage> {
  const image = canonicalReference(recordAs);
  progress?.(`resolving ${image}`);
  const rootDesc = await source.resolve(reference);
  const rootBytes = await fetchSmallBlob(source, rootDesc);
  const parsed = parseManifest(rootBytes, rootDesc.mediaType, image);

  let manifestDesc: Descriptor = rootDesc;
  let manifestBytes = rootBytes;
  let manifests: Record<string, string>;
  let metadata: PackageMetadata | undefined;
  if (parsed.kind === 'index') {
    manifestDesc = selectFromIndex(parsed.index, target, image);
    manifestBytes = await fetchSmallBlob(source, manifestDesc);
    const inner = parseManifest(manifestBytes, manifestDesc.mediaType, `${image}@${manifestDesc.digest}`);
    if (inner.kind !== 'manifest') {
      throw new OcipkgError('EMANIFEST', `${image}: the entry for ${target} is itself an index; nested indexes are not supported`);
    }
    metadata = await packageMetadata(source, inner.manifest);
    // Only the target installed: the refs index (and `ocipkg list`) says what the store holds;
    // another target of the same tag is recorded beside it when it is fetched.
    manifests = { [target]: manifestDesc.digest };
  } else {
    // A single manifest: usable when it records no target or the one asked for.
    metadata = await packageMetadata(source, parsed.manifest);
    const recorded = metadata?.target;
    if (recorded !== undefined && recorded !== target) {
      throw new OcipkgError('ENOTARGET', `${image} has no build for ${target} (available: ${recorded})`);
    }
    manifests = { [recorded ?? '']: rootDesc.digest };
  }

  const requiredNames = await installRequirements(image, metadata?.requires ?? [], target, storeRoot, progress);
  progress?.(`fetching ${image} (${target})`);
  const prepare = (dir: string, pkg: InstalledPackage) => preparePackage(dir, pkg, requiredNames);
  const pkg = await installPackage(storeRoot, source, manifestDesc, manifestBytes, { target, prepare });
  writeRef(storeRoot, { reference: image, digest: rootDesc.digest, mediaType: rootDesc.mediaType, manifests, updated: new Date().toISOString() });
  await writeStoreIndex(storeRoot);
  return pkg;
}

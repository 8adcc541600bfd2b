import { OcipkgError } from './errors.js';
import { preparePackage } from './link/generate.js';
import { fetchSmallBlob, parseManifest } from './oci/manifest.js';
import { OCIPKG_CONFIG } from './oci/mediatypes.js';
import type { ReadTarget } from './oci/content.js';
import type { Descriptor, ImageManifest } from './oci/types.js';
import { parseConfig } from './package/metadata.js';
import { canonicalReference, referenceTarget, type ImageReference } from './reference.js';
import { indexTargets, selectFromIndex } from './select.js';
import { openTarget } from './source.js';
import { installPackage } from './store/install.js';
import type { InstalledPackage } from './store/package.js';
import { writeRef } from './store/refs.js';
import { writeStoreIndex } from './store/store.js';

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
  return installImage(openTarget(ref), referenceTarget(ref), ref, target, storeRoot, progress);
}

/** The target a single (non-index) manifest's ocipkg config records, if any. Configs are small: reading one first saves downloading layers built for another machine. */
async function recordedTarget(source: ReadTarget, manifest: ImageManifest): Promise<string | undefined> {
  const config = manifest.config;
  return config.mediaType === OCIPKG_CONFIG ? parseConfig(await fetchSmallBlob(source, config)).package?.target : undefined;
}

/**
 * What a tag points at and the manifest of every target it offers (for a lockfile), without
 * installing anything: an index lists them all; a single manifest serves the one its config records.
 */
export async function imageTargets(ref: ImageReference): Promise<{ root: Descriptor; manifests: Record<string, string> }> {
  const source = openTarget(ref);
  const image = canonicalReference(ref);
  const root = await source.resolve(referenceTarget(ref));
  const parsed = parseManifest(await fetchSmallBlob(source, root), root.mediaType, image);
  if (parsed.kind === 'index') return { root, manifests: indexTargets(parsed.index) };
  return { root, manifests: { [(await recordedTarget(source, parsed.manifest)) ?? '']: root.digest } };
}

/**
 * Installs what `reference` (a tag or digest) names in `source` and records it in the refs index
 * as `recordAs`: the registry or layout it came from for `get`, the archive's own name for `load`.
 */
export async function installImage(
  source: ReadTarget,
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
  if (parsed.kind === 'index') {
    manifestDesc = selectFromIndex(parsed.index, target, image);
    manifestBytes = await fetchSmallBlob(source, manifestDesc);
    const inner = parseManifest(manifestBytes, manifestDesc.mediaType, `${image}@${manifestDesc.digest}`);
    if (inner.kind !== 'manifest') {
      throw new OcipkgError('EMANIFEST', `${image}: the entry for ${target} is itself an index; nested indexes are not supported`);
    }
    // Only the target installed: the refs index (and `ocipkg list`) says what the store holds;
    // another target of the same tag is recorded beside it when it is fetched.
    manifests = { [target]: manifestDesc.digest };
  } else {
    // A single manifest: usable when it records no target or the one asked for.
    const recorded = await recordedTarget(source, parsed.manifest);
    if (recorded !== undefined && recorded !== target) {
      throw new OcipkgError('ENOTARGET', `${image} has no build for ${target} (available: ${recorded})`);
    }
    manifests = { [recorded ?? '']: rootDesc.digest };
  }

  progress?.(`fetching ${image} (${target})`);
  const pkg = await installPackage(storeRoot, source, manifestDesc, manifestBytes, { target, prepare: preparePackage });
  writeRef(storeRoot, { reference: image, digest: rootDesc.digest, mediaType: rootDesc.mediaType, manifests, updated: new Date().toISOString() });
  await writeStoreIndex(storeRoot);
  return pkg;
}

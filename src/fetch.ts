import { fetchConfigBlob, fetchPackageConfig, type ConfigBlob } from './artifact/config.js';
import { indexTriples, noBuildError, selectFromIndex } from './artifact/triples.js';
import { OcipkgError } from './errors.js';
import { preparePackage } from './link/generate.js';
import type { ContentSource } from './oci/content.js';
import { fetchSmallBlob, parseManifest } from './oci/manifest.js';
import type { Descriptor } from './oci/types.js';
import { openSource } from './open.js';
import { canonicalReference, isLoopbackRegistry, parseReference, tagOrDigest, type ImageReference } from './reference.js';
import { installPackage } from './store/install.js';
import { writeStoreIndex } from './store/index-json.js';
import { readInstalledPackage, type InstalledPackage } from './store/package.js';
import { readRef, writeRef, type TagMove } from './store/refs.js';
import { recordVerified, verifiedWith } from './store/verified.js';
import type { TrustRule } from './project/trust.js';
import { isoTimestamp } from './timestamp.js';
import { verifyTrusted } from './trust.js';

/**
 * The cold path of `resolvePackage`: resolve the reference at its source, pick the manifest for the
 * triple, install it into the store, and record the tag in the refs index.
 */

export interface FetchOptions {
  progress?: (message: string) => void;
  /**
   * Installs (or finds) the images a package requires and returns their package names, in order:
   * the package's generated `.pc` (`Requires:`) and CMake config (`find_dependency`) name them, so
   * they must be known before its files are written. resolve.ts gives the requirement walk here;
   * without it, a package that requires others is refused.
   */
  requirementNames?: (requires: string[]) => Promise<string[]>;
  /** The trust policy's rule for this image: installed only when a trusted key signed it. */
  trust?: TrustRule;
  /** Told when the tag now points elsewhere than the store recorded (as `docker pull` says it got a newer image). */
  moved?: (move: TagMove) => void;
  /** Go through everything (requirements included) even when the tag has not moved from a package the store holds. */
  force?: boolean;
}

export async function fetchPackage(ref: ImageReference, triple: string, storeRoot: string, options: FetchOptions = {}): Promise<InstalledPackage> {
  return installImage({ source: openSource(ref), tagOrDigest: tagOrDigest(ref), recordAs: ref, triple, storeRoot, ...options });
}

/**
 * What a tag points at and the manifest of every triple it offers (for a lockfile), without
 * installing anything: an index lists them all; a single manifest serves the one its config records.
 */
export async function imageTriples(ref: ImageReference): Promise<{ root: Descriptor; manifests: Record<string, string> }> {
  const source = openSource(ref);
  const root = await source.resolve(tagOrDigest(ref));
  const parsed = parseManifest(await fetchSmallBlob(source, root), root.mediaType, canonicalReference(ref));
  if (parsed.kind === 'index') return { root, manifests: indexTriples(parsed.index, canonicalReference(ref)) };
  return { root, manifests: { [(await fetchPackageConfig(source, parsed.manifest.config, canonicalReference(ref)))?.package?.target ?? '']: root.digest } };
}

/**
 * A package from a registry on the network may not send its consumers to this machine's own
 * services: a loopback registry may be required only by a package that itself came from loopback
 * (or from a local layout or archive, which is this machine already).
 */
function checkRequirementOrigins(from: ImageReference, requires: string[]): void {
  if (from.kind !== 'registry' || isLoopbackRegistry(from.registry)) return;
  const local = requires.find((required) => {
    const ref = parseReference(required);
    return ref.kind === 'registry' && isLoopbackRegistry(ref.registry);
  });
  if (local !== undefined) {
    throw new OcipkgError('EMANIFEST', `${canonicalReference(from)}: "package.requires" names ${local}, a loopback registry, but the package comes from ${from.registry}`);
  }
}

export interface ImageInstall extends FetchOptions {
  source: ContentSource;
  /** What to install from `source`. */
  tagOrDigest: string;
  /** The name recorded in the refs index: the registry or layout it came from for `get`, the archive's own name for `load`. */
  recordAs: ImageReference;
  triple: string;
  storeRoot: string;
}

/** Installs the build for `triple` of what `tagOrDigest` names in `source`, and records it as `recordAs`. */
export async function installImage(install: ImageInstall): Promise<InstalledPackage> {
  const { source, triple, storeRoot, progress } = install;
  const image = canonicalReference(install.recordAs);
  progress?.(`resolving ${image}`);
  const rootDesc = await source.resolve(install.tagOrDigest);
  // A name that pins a digest is recorded only for those bytes: an archive may claim any name, but a
  // digest it claims must be its own (a tag it claims is trusted, as `docker load` trusts it).
  if (install.recordAs.digest !== undefined && install.recordAs.digest !== rootDesc.digest) {
    throw new OcipkgError('EINTEGRITY', `${image} names digest ${install.recordAs.digest}, but ${source.location} holds ${rootDesc.digest} under ${install.tagOrDigest}`);
  }
  const previous = readRef(storeRoot, install.recordAs);
  if (previous && previous.digest !== rootDesc.digest) install.moved?.({ image, from: previous.digest, to: rootDesc.digest });
  // The tag still points where the store says, at a package it holds (verified, under a policy):
  // re-resolving it cost one request, and nothing more is needed.
  const current = previous?.digest === rootDesc.digest && !install.force ? (previous.manifests[triple] ?? previous.manifests['']) : undefined;
  const unchanged = current === undefined ? undefined : readInstalledPackage(storeRoot, current);
  if (unchanged && (!install.trust || verifiedWith(storeRoot, unchanged.manifestDigest, install.trust.keys.map((k) => k.pem)) !== undefined)) {
    writeRef(storeRoot, { ...previous!, updated: isoTimestamp() });
    return unchanged;
  }
  const rootBytes = await fetchSmallBlob(source, rootDesc);
  const parsed = parseManifest(rootBytes, rootDesc.mediaType, image);

  let manifestDesc: Descriptor = rootDesc;
  let manifestBytes = rootBytes;
  let manifests: Record<string, string>;
  let config: ConfigBlob | undefined;
  if (parsed.kind === 'index') {
    // An entry is taken for what the build records of itself: the index says a triple (or only a
    // platform), the build's config says the one it was built for, and a mismatch is not installed.
    const mismatched: string[] = [];
    for (const candidate of selectFromIndex(parsed.index, triple, image)) {
      const bytes = await fetchSmallBlob(source, candidate);
      const inner = parseManifest(bytes, candidate.mediaType, `${image}@${candidate.digest}`);
      if (inner.kind !== 'manifest') {
        throw new OcipkgError('EMANIFEST', `${image}: the entry for ${triple} is itself an index; nested indexes are not supported`);
      }
      // Configs are small: reading one first saves downloading layers built for another machine.
      const candidateConfig = await fetchConfigBlob(source, inner.manifest.config, image);
      const recorded = candidateConfig?.config.package?.target;
      if (recorded !== undefined && recorded !== triple) {
        mismatched.push(`${candidate.digest} is a build for ${recorded}`);
        continue;
      }
      [manifestDesc, manifestBytes, config] = [candidate, bytes, candidateConfig];
      break;
    }
    if (manifestDesc === rootDesc) throw new OcipkgError('EMANIFEST', `${image}: the index's entry for ${triple} is no build for it (${mismatched.join('; ')})`);
    // Only the triples installed: the refs index (and `ocipkg list`) says what the store holds;
    // another triple of the same tag is recorded beside it when it is fetched. A tag that moved
    // keeps the builds the store holds that its new index still lists for their triples (a move
    // of the x86_64 build leaves an offline arm64 build, and prune, the arm64 package).
    const listed = indexTriples(parsed.index, image);
    const kept = Object.entries(previous?.manifests ?? {}).filter(([other, digest]) => other !== triple && listed[other] === digest && readInstalledPackage(storeRoot, digest));
    manifests = { ...Object.fromEntries(kept), [triple]: manifestDesc.digest };
  } else {
    // A single manifest: usable when it records no triple or the one asked for.
    config = await fetchConfigBlob(source, parsed.manifest.config, image);
    const recorded = config?.config.package?.target;
    if (recorded !== undefined && recorded !== triple) throw noBuildError(image, triple, [recorded]);
    manifests = { [recorded ?? '']: rootDesc.digest };
  }

  // Checked before anything is fetched beyond manifests and config, and recorded once installed.
  const trustedBy = install.trust && (await verifyTrusted(source, image, [rootDesc.digest, manifestDesc.digest], install.trust));
  const requires = config?.config.package?.requires ?? [];
  checkRequirementOrigins(install.recordAs, requires);
  if (requires.length > 0 && !install.requirementNames) {
    throw new OcipkgError('EMANIFEST', `${image} requires ${requires.join(', ')}; install it with resolvePackage, which installs requirements`);
  }
  const requiredNames = requires.length > 0 ? await install.requirementNames!(requires) : [];
  progress?.(`fetching ${image} (${triple})`);
  const prepare = (dir: string, pkg: InstalledPackage) => preparePackage(dir, pkg, requiredNames, image);
  const pkg = await installPackage(storeRoot, source, manifestDesc, manifestBytes, { triple, prepare, ...(config !== undefined && { config }) });
  if (trustedBy !== undefined) recordVerified(storeRoot, manifestDesc.digest, trustedBy);
  writeRef(storeRoot, { reference: image, digest: rootDesc.digest, mediaType: rootDesc.mediaType, manifests, updated: isoTimestamp() });
  await writeStoreIndex(storeRoot);
  return pkg;
}

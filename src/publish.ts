import { mkdtemp, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { copy } from './copy.js';
import { errno, isOcipkgError, OcipkgError } from './errors.js';
import { openArchive, type OpenedArchive } from './layout/archive.js';
import type { LayoutReader } from './layout/directory.js';
import type { ContentStore, ContentSink } from './oci/content.js';
import { descriptorFor } from './oci/verify.js';
import { fetchSmallBlob, parseManifest } from './oci/manifest.js';
import { ANNOTATION_TARGET, ANNOTATION_VERSION, OCI_INDEX } from './oci/mediatypes.js';
import type { Descriptor, ImageIndex } from './oci/types.js';
import { fetchPackageConfig } from './artifact/config.js';
import { pack, type PackOptions } from './package/pack.js';
import { createdAnnotation } from './package/source-date.js';
import { canonicalReference, formatReference, parseReference, type ImageReference } from './reference.js';
import { entryTriple, indexTriples } from './artifact/triples.js';
import { openContent } from './open.js';
import { removeTree } from './fs/tree.js';
import { assertTriple, compareTriples, tripleToPlatform } from './triple.js';

/**
 * `publish`: several builds of one library under one tag. Each target's manifest is pushed (and
 * tagged `TAG-TRIPLE`, for clients that do not read indexes, like the Rust ocipkg), then one OCI
 * image index is pushed under TAG with, per target, a descriptor carrying:
 *
 * - `platform`: os / architecture / variant as Go and containerd name them (tripleToPlatform), so
 *   generic tools (skopeo, crane, containerd) see a normal multi-platform index;
 * - the annotation `io.github.ocipkg.target` (ANNOTATION_TARGET): the full target triple, because
 *   the platform object cannot tell glibc from musl builds. Readers select on it (src/select.ts).
 *
 * Entries are ordered glibc before musl, then by the triple table, whatever the order of the
 * inputs, and nothing time-dependent goes in unless SOURCE_DATE_EPOCH asks: the same inputs give
 * the same index digest.
 */

export interface PublishInput {
  /** The build's target; absent for an archive, which then says which it is (`pack` records it). */
  triple?: string;
  /** An install prefix directory (packed here) or an oci-archive written by `pack`. */
  path: string;
}

export interface PublishOptions {
  /** Keep the targets the tag already has, adding or replacing only the given ones. */
  append?: boolean;
  /** What packing a directory records (name, version, ...); the version also annotates the index. */
  pack?: Omit<PackOptions, 'image' | 'target' | 'checkTarget'>;
  progress?: (message: string) => void;
  /** Called once per blob or manifest copied to the destination (`skipped` when it was there). */
  onCopied?: (desc: Descriptor, skipped: boolean) => void;
}

export interface PublishResult {
  /** The pushed index. */
  index: Descriptor;
  /** IMAGE pinned to the index's digest, e.g. `ghcr.io/acme/zstd@sha256:...`. */
  pinned: string;
  /** Every target in the index now, triple -> manifest digest, in index order. */
  targets: Record<string, string>;
}

/** The longest tag the distribution spec allows. */
const MAX_TAG = 128;

/**
 * Refuses a target given twice (two archives of a CI matrix both built for linux-x64, say) or one
 * whose per-target tag would be too long; runs again once archives have said what they hold, before
 * anything is pushed.
 */
function checkTriples(triples: string[], tag: string, origins: string[]): void {
  const seen = new Map<string, string>();
  triples.forEach((triple, i) => {
    const first = seen.get(triple);
    if (first !== undefined) throw new OcipkgError('EUSAGE', `publish: target ${triple} is given twice (${first} and ${origins[i]})`);
    seen.set(triple, origins[i]!);
    if (tag.length + 1 + triple.length > MAX_TAG) {
      throw new OcipkgError('EUSAGE', `publish: the per-target tag ${tag}-${triple} is longer than ${MAX_TAG} characters; use a shorter tag`);
    }
  });
}

interface OpenedInput {
  archive: OpenedArchive;
  triple: string;
  path: string;
  /** The one manifest in it, built for the input's triple. */
  manifest: Descriptor;
  artifactType?: string;
}

/** What PATH holds, opened as an OCI layout with exactly one manifest, built for the input's triple. */
async function openInput(input: PublishInput, image: ImageReference, tag: string, options: PublishOptions, scratch: string): Promise<OpenedInput> {
  let isDirectory: boolean;
  const what = input.triple === undefined ? input.path : `${input.path} (for ${input.triple})`;
  try {
    isDirectory = (await stat(input.path)).isDirectory();
  } catch (err) {
    if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') throw new OcipkgError('EINPUT', `${what} does not exist`, { cause: err });
    throw err;
  }
  let path = input.path;
  if (isDirectory) {
    if (input.triple === undefined) throw new OcipkgError('EUSAGE', `publish: ${input.path} is a directory; give its target as --target TRIPLE=${input.path}`);
    options.progress?.(`packing ${input.path} for ${input.triple}`);
    path = join(scratch, `${input.triple}.tar`);
    // The archive is only a carrier into `copy`; its recorded ref.name is read by nobody. A layout
    // destination has no repository name, so its package is named after the directory.
    const packImage = image.kind === 'registry' ? formatReference({ ...image, tag }) : `localhost/ocipkg-publish:${tag}`;
    const name = options.pack?.name ?? (image.kind === 'oci' ? basename(image.path) : undefined);
    await pack(input.path, path, { ...options.pack, ...(name !== undefined && { name }), image: packImage, target: input.triple, checkTarget: true });
  }
  const archive = await openArchive(path);
  try {
    return { archive, path: input.path, ...(await builtFor(archive.layout, input)) };
  } catch (err) {
    await archive.close();
    throw err;
  }
}

/**
 * The archive's one manifest and its target: the one it records, which must be TRIPLE when one is
 * given. One that records none (the Rust ocipkg writes no metadata) is taken at its word: the
 * index annotation then records it; without a TRIPLE it cannot be placed in the index.
 */
async function builtFor(source: LayoutReader, input: PublishInput): Promise<{ triple: string; manifest: Descriptor; artifactType?: string }> {
  const manifest = await source.resolve().catch((err: unknown) => {
    if (isOcipkgError(err, 'ENOTFOUND')) throw new OcipkgError('EINPUT', `${input.path}: ${(err as Error).message}; publish takes one image per archive`, { cause: err });
    throw err;
  });
  const parsed = parseManifest(await fetchSmallBlob(source, manifest), manifest.mediaType, `${input.path}@${manifest.digest}`);
  if (parsed.kind === 'index') throw new OcipkgError('EINPUT', `${input.path} holds an index; publish takes one target per archive`);
  const { config, artifactType } = parsed.manifest;
  const recorded = (await fetchPackageConfig(source, config, input.path))?.package?.target;
  if (recorded !== undefined && input.triple !== undefined && recorded !== input.triple) {
    throw new OcipkgError('EINPUT', `${input.path} is packed for ${recorded}, not ${input.triple}`);
  }
  const triple = input.triple ?? recorded;
  if (triple === undefined) throw new OcipkgError('EINPUT', `${input.path} records no target triple; give it as --target TRIPLE=${input.path}`);
  return { triple: assertTriple(triple), manifest, ...(artifactType !== undefined && { artifactType }) };
}

/**
 * The entries (and annotations) the tag has now, for --append. A single manifest counts as one
 * target when it records one; nothing at the tag (or no layout yet) is an empty start.
 */
async function existingEntries(dst: ContentStore, tag: string, where: string): Promise<{ entries: Descriptor[]; annotations?: Record<string, string> }> {
  let root: Descriptor;
  try {
    root = await dst.resolve(tag);
  } catch (err) {
    // A registry says ENOTFOUND; a layout directory that does not exist yet says EINPUT.
    if (isOcipkgError(err, 'ENOTFOUND') || isOcipkgError(err, 'EINPUT')) return { entries: [] };
    throw err;
  }
  const parsed = parseManifest(await fetchSmallBlob(dst, root), root.mediaType, where);
  if (parsed.kind === 'index') return { entries: parsed.index.manifests, ...(parsed.index.annotations && { annotations: parsed.index.annotations }) };
  const config = parsed.manifest.config;
  const recorded = (await fetchPackageConfig(dst, config, where))?.package?.target;
  if (recorded === undefined) {
    throw new OcipkgError('EINPUT', `${where} is a single manifest that records no target; publish without --append to replace it`);
  }
  return { entries: [indexEntry(root, recorded, parsed.manifest.artifactType)] };
}

function indexEntry(manifest: Descriptor, triple: string, artifactType?: string): Descriptor {
  return {
    mediaType: manifest.mediaType,
    digest: manifest.digest,
    size: manifest.size,
    ...(artifactType !== undefined && { artifactType }),
    platform: tripleToPlatform(triple),
    annotations: { [ANNOTATION_TARGET]: triple },
  };
}

/** Known targets in the stable order; entries that are no target (attestations, say) after them, as they were. */
function orderEntries(entries: Descriptor[], where: string): Descriptor[] {
  return [...entries].sort((a, b) => {
    const [ta, tb] = [entryTriple(a, where), entryTriple(b, where)];
    if (ta === undefined || tb === undefined) return (ta === undefined ? 1 : 0) - (tb === undefined ? 1 : 0);
    return compareTriples(ta, tb);
  });
}

async function pushIndex(dst: ContentSink, index: ImageIndex, tag: string): Promise<Descriptor> {
  const bytes = Buffer.from(JSON.stringify(index));
  const desc = descriptorFor(OCI_INDEX, bytes);
  await dst.push(desc, bytes);
  await dst.tag(desc, tag);
  return desc;
}

/**
 * The archives `ocipkg-pack` wrote under `dir`, one per target, found at any depth: a CI job
 * downloading the artifacts of a matrix puts each in a directory of its own. Each says its triple.
 */
export async function packedArchivesIn(dir: string): Promise<PublishInput[]> {
  let names: string[];
  try {
    names = await readdir(dir, { recursive: true });
  } catch (err) {
    if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') throw new OcipkgError('EINPUT', `--from ${dir}: no such directory`, { cause: err });
    throw err;
  }
  const archives: PublishInput[] = [];
  for (const name of names.sort()) {
    if (!name.endsWith('.tar')) continue;
    const path = join(dir, name);
    if ((await stat(path)).isFile()) archives.push({ path });
  }
  if (archives.length === 0) throw new OcipkgError('EINPUT', `--from ${dir}: no .tar archives in it (ocipkg-pack writes <name>-<version>-<triple>.tar)`);
  return archives;
}

/** Publishes one build per target under `image`'s tag (default `latest`); see the module comment. */
export async function publish(image: string, inputs: PublishInput[], options: PublishOptions = {}): Promise<PublishResult> {
  const ref = parseReference(image);
  if (ref.digest !== undefined) throw new OcipkgError('EUSAGE', `publish: "${image}" names a digest; publish to a tag`);
  const tag = ref.tag ?? 'latest';
  const where = canonicalReference(ref);
  if (inputs.length === 0) throw new OcipkgError('EUSAGE', 'publish: give at least one --target TRIPLE=PATH or --from DIR');
  // The triples given are checked before packing anything; the archives' own ones once opened.
  const given = inputs.map((input) => ({ ...input, ...(input.triple !== undefined && { triple: assertTriple(input.triple) }) }));
  const explicit = given.filter((input) => input.triple !== undefined);
  checkTriples(explicit.map((input) => input.triple!), tag, explicit.map((input) => input.path));
  const dst = openContent(ref);

  const existing = options.append ? await existingEntries(dst, tag, where) : { entries: [] };
  const scratch = await mkdtemp(join(tmpdir(), 'ocipkg-publish-'));
  const opened: OpenedInput[] = [];
  const pushed: Descriptor[] = [];
  try {
    for (const input of given) opened.push(await openInput(input, ref, tag, options, scratch));
    checkTriples(opened.map((o) => o.triple), tag, opened.map((o) => o.path));
    for (const { archive, triple, manifest, artifactType } of opened) {
      options.progress?.(`pushing ${triple} to ${where}-${triple}`);
      await copy(archive.layout, manifest.digest, dst, `${tag}-${triple}`, { ...(options.onCopied && { onCopied: options.onCopied }) });
      pushed.push(indexEntry(manifest, triple, artifactType));
    }
  } finally {
    for (const { archive } of opened) await archive.close();
    await removeTree(scratch);
  }

  const replaced = new Set(opened.map((o) => o.triple));
  const kept = existing.entries.filter((entry) => {
    const triple = entryTriple(entry, where);
    return triple === undefined || !replaced.has(triple);
  });
  const annotations: Record<string, string> = { ...existing.annotations, ...createdAnnotation() };
  if (options.pack?.version !== undefined) annotations[ANNOTATION_VERSION] = options.pack.version;
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: orderEntries([...kept, ...pushed], where),
    ...(Object.keys(annotations).length > 0 && { annotations }),
  };
  options.progress?.(`pushing the index of ${index.manifests.length} targets to ${where}`);
  const desc = await pushIndex(dst, index, tag);

  const { tag: _tag, ...untagged } = ref;
  return { index: desc, pinned: formatReference({ ...untagged, digest: desc.digest }), targets: indexTriples(index, where) };
}

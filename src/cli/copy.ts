import { statSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { OcipkgError } from '../errors.js';
import type { ContentSink, ContentSource } from '../oci/content.js';
import { findProject } from '../project/manifest.js';
import { LOCKFILE, readLockfile } from '../project/lockfile.js';
import { ARCHIVE_TRANSPORT as ARCHIVE, parseReference, tagOrDigest, type ImageReference, type LayoutReference, type RegistryReference } from '../reference.js';
import { parseOptions, printLine, progress, usageError } from './common.js';

/** The transfer stack (HTTP, tar), loaded when a copy runs: ocipkg.ts imports this module for its help text. */
async function transfer() {
  const [{ copyImage }, { removeTree }, { openArchive }, { LayoutDirectory }, { writeLayoutArchive }, { openContent, openSource }] = await Promise.all([
    import('../copy-image.js'), import('../fs/tree.js'), import('../layout/archive.js'), import('../layout/directory.js'),
    import('../layout/layout-archive.js'), import('../open.js'),
  ]);
  return { copyImage, removeTree, openArchive, LayoutDirectory, writeLayoutArchive, openContent, openSource };
}

export const COPY_USAGE = 'ocipkg copy SRC DEST | ocipkg copy --lockfile [LOCKFILE] DEST-PREFIX';
export const COPY_SUMMARY = 'copy an image with every target and signature between registries, oci: layouts and oci-archive: files, or every package a lockfile pins';
export const COPY_OPTIONS = [
  '  SRC, DEST               HOST/REPOSITORY[:TAG|@DIGEST], oci:DIR[:TAG], oci-archive:FILE[:TAG]',
  "  --lockfile [LOCKFILE]   copy every package the lockfile (default: the project's ocipkg-lock.json)",
  '                          pins, all targets and signatures, so that HOST/PATH lands at DEST-PREFIX/PATH',
  '                          (DEST-PREFIX: HOST[/PATH] or oci:DIR)',
].join('\n');

/** Where content is copied from or to: a registry repository, a layout directory, or an oci-archive file. */
type Place = ImageReference | { kind: 'archive'; path: string; tag?: string; digest?: string };

/** cosign's `sha256-<hex>.sig` and the referrers fallback `sha256-<hex>`. */
const ATTACHED_TAG = /^sha256-[0-9a-f]{64}(?:\.sig)?$/;

/** `oci-archive:FILE[:TAG]` is spelled as skopeo spells it, and split the way `oci:` is. */
function parsePlace(text: string): Place {
  if (!text.startsWith(ARCHIVE)) return parseReference(text);
  const { path, tag, digest } = parseReference(`oci:${text.slice(ARCHIVE.length)}`) as LayoutReference;
  return { kind: 'archive', path, ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) };
}

function describePlace(place: Place, digest: string): string {
  if (place.kind === 'registry') return `${place.registry}/${place.repository}@${digest}`;
  return `${place.kind === 'oci' ? 'oci:' : ARCHIVE}${place.path}@${digest}`;
}

/** The tag in a layout's ref.name, which is a bare tag or (as `pack` writes it) a whole image name. */
function tagOfName(name: string): string | undefined {
  if (!name.includes('/') && !name.includes(':')) return name;
  try {
    const ref = parseReference(name);
    return ref.kind === 'registry' ? ref.tag : undefined;
  } catch {
    return undefined;
  }
}

interface Opened<T> {
  content: T;
  close(): Promise<void>;
}

/** The source and what to copy from it; a layout or archive named without tag holding one image gives that one. */
async function openFrom(place: Place): Promise<Opened<ContentSource> & { reference: string; tag?: string }> {
  const { openSource, openArchive, LayoutDirectory } = await transfer();
  if (place.kind === 'registry') {
    return { content: openSource(place), reference: tagOrDigest(place), ...(place.digest === undefined && { tag: place.tag ?? 'latest' }), close: async () => {} };
  }
  const opened = place.kind === 'archive' ? await openArchive(place.path) : { layout: new LayoutDirectory(place.path), close: async () => {} };
  try {
    const named = place.digest ?? place.tag;
    if (named !== undefined) return { content: opened.layout, reference: named, ...(place.tag !== undefined && { tag: place.tag }), close: opened.close };
    // Signature and referrers tags ride along with their image; they do not count as images here.
    const refs = (await opened.layout.listRefs()).filter((r) => !ATTACHED_TAG.test(tagOfName(r.name) ?? ''));
    if (refs.length === 1) {
      const tag = tagOfName(refs[0]!.name);
      return { content: opened.layout, reference: refs[0]!.name, ...(tag !== undefined && { tag }), close: opened.close };
    }
    // None or several named: resolve() takes a lone manifest, or says to name one.
    return { content: opened.layout, reference: (await opened.layout.resolve()).digest, close: opened.close };
  } catch (err) {
    await opened.close();
    throw err;
  }
}

/**
 * The destination. An archive is copied into a layout beside it first, then written whole: an
 * archive is rewritten, never added to.
 */
async function openTo(place: Place): Promise<Opened<ContentSink> & { finish(): Promise<void> }> {
  if (place.digest !== undefined) throw usageError(`copy: the destination cannot name a digest (copied bytes keep their digest): ${place.kind === 'registry' ? place.repository : place.path}@${place.digest}`);
  const { openContent, LayoutDirectory, writeLayoutArchive, removeTree } = await transfer();
  if (place.kind === 'registry') return { content: openContent(place), finish: async () => {}, close: async () => {} };
  if (place.kind === 'oci') return { content: new LayoutDirectory(place.path), finish: async () => {}, close: async () => {} };
  const output = resolve(place.path);
  const dir = await mkdtemp(join(dirname(output), `.${basename(output)}.copy-`));
  return {
    content: new LayoutDirectory(dir, { location: `${ARCHIVE}${place.path}` }),
    finish: () => writeLayoutArchive(dir, output),
    close: () => removeTree(dir),
  };
}

const onCopied = { onCopied: (desc: { digest: string; mediaType: string }, skipped: boolean) => progress(`  ${skipped ? 'exists' : 'copied'} ${desc.digest} ${desc.mediaType}`) };

/** One image from `from` to `to`; returns the destination pinned by digest. */
async function copyOne(from: Place, to: Place): Promise<string> {
  const { copyImage } = await transfer();
  const source = await openFrom(from);
  try {
    const dest = await openTo(to);
    try {
      const tag = to.tag ?? source.tag;
      progress(`copying ${source.content.location} (${source.reference}) to ${dest.content.location}${tag !== undefined ? `:${tag}` : ''}`);
      const { root, attached } = await copyImage(source.content, source.reference, dest.content, tag, onCopied);
      for (const written of attached) progress(`  attached ${written}`);
      await dest.finish();
      return describePlace(to, root.digest);
    } finally {
      await dest.close();
    }
  } finally {
    await source.close();
  }
}

/** The directory whose ocipkg-lock.json is meant: LOCKFILE names the file or its directory; else the project's. */
function lockfileDir(given: string | undefined): string {
  if (given === undefined) {
    const project = findProject();
    if (!project) throw new OcipkgError('EINPUT', `copy --lockfile: no project (a package.json with an "ocipkg" section) here or above; name the ${LOCKFILE}`);
    return project.dir;
  }
  if (statSync(given, { throwIfNoEntry: false })?.isDirectory()) return given;
  if (basename(given) !== LOCKFILE) throw new OcipkgError('EINPUT', `copy --lockfile: ${given} is neither an ${LOCKFILE} nor a directory holding one`);
  return dirname(given);
}

/**
 * Where a locked image lands under DEST-PREFIX: its repository path (without the registry) below
 * the prefix, with its tag, so that a registries.conf `[[registry]]` with `prefix = "HOST"` and
 * `location = "DEST-PREFIX"` maps the original name back onto the copy.
 */
function underPrefix(prefix: string, ref: RegistryReference): Place {
  const tag = ref.tag !== undefined ? `:${ref.tag}` : '';
  if (prefix.startsWith(ARCHIVE)) throw usageError('copy --lockfile: DEST-PREFIX is a registry (HOST[/PATH]) or oci:DIR, not an archive');
  if (prefix.startsWith('oci:')) return parseReference(`oci:${join(prefix.slice('oci:'.length), ref.repository)}${tag}`);
  const probe = parseReference(`${prefix.replace(/\/+$/, '')}/${ref.repository}${tag}`);
  if (probe.kind !== 'registry' || probe.digest !== undefined || probe.tag !== ref.tag) throw usageError(`copy --lockfile: "${prefix}" is not a registry prefix (HOST[/PATH])`);
  return probe;
}

async function copyLockfile(lockfile: string | undefined, prefix: string): Promise<void> {
  const dir = lockfileDir(lockfile);
  const lock = readLockfile(dir);
  if (!lock) throw new OcipkgError('ELOCKFILE', `copy --lockfile: no ${LOCKFILE} in ${dir}; run \`ocipkg install\` first`);
  for (const image of Object.keys(lock.packages).sort()) {
    const entry = lock.packages[image]!;
    const ref = parseReference(image);
    if (ref.kind !== 'registry') {
      process.stderr.write(`ocipkg: skipping ${image}: vendored in the project, not in a registry\n`);
      continue;
    }
    // By the locked digest (so digest-only mirrors serve it, and a moved tag does not matter).
    const pinned: RegistryReference = { ...ref, digest: entry.digest };
    const to = underPrefix(prefix, ref);
    const copied = await copyOne(pinned, to);
    printLine(copied);
  }
}

export async function runCopy(args: string[]): Promise<void> {
  const { values, positionals } = parseOptions(args, { lockfile: { type: 'boolean' } }, 'copy');
  if (values.lockfile) {
    if (positionals.length < 1 || positionals.length > 2) throw usageError(`copy --lockfile: expected [LOCKFILE] DEST-PREFIX (usage: ${COPY_USAGE})`);
    const [first, second] = positionals;
    await copyLockfile(second === undefined ? undefined : first, second ?? first!);
    return;
  }
  if (positionals.length !== 2) throw usageError(`copy: expected SRC and DEST (usage: ${COPY_USAGE})`);
  printLine(await copyOne(parsePlace(positionals[0]!), parsePlace(positionals[1]!)));
}

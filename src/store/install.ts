import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { chmod, mkdir, readdir, rename, rmdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errno, isOcipkgError, OcipkgError } from '../errors.js';
import type { LayoutDirectory } from '../layout/directory.js';
import type { ContentSource } from '../oci/content.js';
import { digestHex } from '../oci/digest.js';
import { verifyBytes, VerifyingStream } from '../oci/verify.js';
import { fetchSmallBlob, parseManifest } from '../oci/manifest.js';
import { LAYER_TYPES } from '../oci/mediatypes.js';
import type { Descriptor, ImageManifest } from '../oci/types.js';
import { parsePackageConfig, type ConfigBlob, type PackageConfig } from '../artifact/config.js';
import { badLink, createExtractor, ExtractBudget } from '../fs/extract.js';
import { makeReadOnlyTree, removeTree, removeTreeSync } from '../fs/tree.js';
import { publishFile } from '../fs/atomic.js';
import { uniqueName } from '../fs/names.js';
import { PACKAGE_INFO_FILE, PACKAGE_ROOT_DIR, STAGING_PREFIX, storePaths } from './paths.js';
import { claimPartial, keepPartials, recoverStaging } from './partial.js';
import { onInterrupt } from './interrupt.js';
import { readInstalledPackage, type InstalledPackage, type PackageInfo } from './package.js';
import { packageLimits, type PackageLimits } from './limits.js';
import { storeLayout } from './layout.js';
import { isoTimestamp } from '../timestamp.js';

export interface InstallPackageOptions {
  /** The target triple this manifest was selected for; recorded in package.json (as `target`). */
  triple?: string;
  /**
   * Adds files to the package before it becomes visible (generated .pc and CMake files). Gets the
   * staging directory to write into and the package as it will be once in place (final paths).
   */
  prepare?: (stagingDir: string, pkg: InstalledPackage) => Promise<void>;
  /** The manifest's config blob, when the caller has read it already (a fetch reads it first). */
  config?: ConfigBlob;
}

/**
 * Passes bytes through unchanged while writing them to a file, so that one read of a layer both
 * feeds the extraction and keeps the blob for the store. Honours the file's backpressure.
 */
class FileTee extends Transform {
  private readonly file: WriteStream;

  /** `skip`: the file already holds the first bytes that will pass (a partial download); they are appended after. */
  constructor(
    path: string,
    private skip = 0,
  ) {
    super();
    this.file = createWriteStream(path, { flags: skip > 0 ? 'a' : 'wx' });
    this.file.on('error', (err) => this.destroy(err));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const fresh = this.skip > 0 ? chunk.subarray(Math.min(this.skip, chunk.length)) : chunk;
    this.skip -= chunk.length - fresh.length;
    if (fresh.length === 0 || this.file.write(fresh)) done(null, chunk);
    else this.file.once('drain', () => done(null, chunk));
  }

  override _flush(done: TransformCallback): void {
    this.file.end();
    this.file.once('close', () => done());
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.file.destroy();
    done(err);
  }
}

/**
 * Whether the store keeps each package's compressed layers beside its extracted files (default
 * yes; `OCIPKG_KEEP_LAYERS=0` turns it off). Keeping them costs their size on disk and writing
 * them once during the get; they let `store verify` re-extract and compare a package's files, let
 * skopeo and oras copy packages out of the store (`oci:STORE:REF`), and let a package that shares a
 * layer with one already installed extract it without the network.
 */
export function keepLayers(): boolean {
  return process.env.OCIPKG_KEEP_LAYERS !== '0';
}

function badManifest(where: string, why: string): OcipkgError {
  return new OcipkgError('EMANIFEST', `${where}: ${why}`);
}

/** Parses and checks what install needs of a manifest; an index must be resolved to one first. */
function checkManifest(desc: Descriptor, bytes: Uint8Array, where: string, limits: PackageLimits): ImageManifest {
  const parsed = parseManifest(bytes, desc.mediaType, where);
  if (parsed.kind === 'index') throw badManifest(where, 'is an index; select the manifest for one target first');
  const { manifest } = parsed;
  if (manifest.layers.length === 0) throw badManifest(where, 'manifest has no layers');
  if (manifest.layers.length > limits.layers.max) {
    throw new OcipkgError('ETOOLARGE', `${where}: the manifest has ${manifest.layers.length} layers, more than ${limits.layers.max} (set ${limits.layers.env} to raise the limit)`);
  }
  for (const layer of manifest.layers) {
    if (!LAYER_TYPES[layer.mediaType]) throw badManifest(where, `layer ${layer.digest} has unsupported media type "${layer.mediaType}"`);
  }
  return manifest;
}

/** One install attempt's working state, all under `<store>/tmp/install-<pid>-<random>/`. */
class Staging {
  readonly dir: string;
  readonly rootDir: string;
  readonly blobDir: string;
  /** Whether a layer continued a partial download an earlier run kept. */
  resumed = false;
  /** Blobs verified during this install (digest -> staging copy), published to the store at the end. */
  private readonly fetched = new Map<string, string>();

  constructor(
    private readonly storeRoot: string,
    private readonly store: LayoutDirectory,
    private readonly source: ContentSource,
    /** Shared by every layer: the limits apply to the package as a whole. */
    private readonly budget: ExtractBudget,
    /** Whether layer blobs stay in the store once extracted (see keepLayers). */
    private readonly keepLayers: boolean,
  ) {
    this.dir = join(storePaths.tmp(storeRoot), uniqueName(STAGING_PREFIX));
    this.rootDir = join(this.dir, PACKAGE_ROOT_DIR);
    this.blobDir = join(this.dir, 'blobs');
  }

  /** Keeps what was downloaded as partials for the next run (partial.ts), synchronously. */
  keepDownloads(): void {
    keepPartials(this.storeRoot, this.blobDir);
  }

  async create(): Promise<void> {
    await mkdir(this.rootDir, { recursive: true });
    await mkdir(this.blobDir);
  }

  /**
   * The config blob: as the caller read it, else the store's copy, else the source's. A config type
   * other than ocipkg's has no metadata.
   */
  async readConfig(desc: Descriptor, where: string, known?: ConfigBlob): Promise<{ bytes: Buffer; config: PackageConfig }> {
    if (known !== undefined && known.desc.digest === desc.digest) return known;
    const bytes = await fetchSmallBlob(this.store, desc).catch((err: unknown) => {
      if (isOcipkgError(err, 'ENOTFOUND')) return fetchSmallBlob(this.source, desc);
      throw err;
    });
    return { bytes, config: parsePackageConfig(desc, bytes, where) ?? { layers: {} } };
  }

  /**
   * One streaming pass over a layer: its bytes (from the store if there, else from the source)
   * -> digest and size check -> a copy in staging (unless layers are not kept) -> gunzip -> safe
   * extraction. Layers read from the
   * store are copied too: a concurrent `ocipkg prune` may delete an unreferenced blob at any moment,
   * and publishing the verified copy at the end puts back whatever this package needs.
   */
  async extractLayer(layer: Descriptor): Promise<void> {
    const teePath = join(this.blobDir, digestHex(layer.digest));
    let input: Readable;
    let from: string;
    let tee: FileTee | undefined;
    /** A partial download that already held the whole blob: nothing to write, only to verify. */
    let complete = false;
    if (this.fetched.has(layer.digest)) {
      input = createReadStream(teePath);
      from = this.dir;
    } else {
      const stored = await this.fromStore(layer);
      if (stored) {
        input = stored;
        from = this.store.location;
        if (this.keepLayers) tee = new FileTee(teePath);
      } else {
        from = this.source.location;
        ({ input, tee, complete } = await this.fromSource(layer, teePath));
      }
    }
    const extractor = createExtractor(this.rootDir, {
      gzip: LAYER_TYPES[layer.mediaType]!.gzip,
      label: `layer ${layer.digest} from ${from}`,
      invalidCode: 'EMANIFEST',
      budget: this.budget,
    });
    try {
      await pipeline([input, new VerifyingStream(layer, from), ...(tee ? [tee] : []), extractor]);
    } catch (err) {
      // The extractor settles only once node-tar has finished the files it started; wait for that
      // so that removing the staging directory does not race with its writes.
      if (!extractor.closed) await new Promise((resolve) => extractor.once('close', resolve));
      throw err;
    }
    if (tee || complete) this.fetched.set(layer.digest, teePath);
  }

  /**
   * A layer from the source, continuing the partial download an earlier run kept, if any: its bytes
   * are read back (and hashed again, with the rest, as one blob), and only the rest is asked for.
   * A partial that holds the whole blob is only verified: asking for a range that starts at the
   * end would get a 416. Without kept layers there is no copy to continue, or to keep.
   */
  private async fromSource(layer: Descriptor, teePath: string): Promise<{ input: Readable; tee?: FileTee; complete: boolean }> {
    if (!this.keepLayers) return { input: await this.source.fetch(layer), complete: false };
    let have = await claimPartial(this.storeRoot, layer.digest, teePath);
    if (have > layer.size || (have > 0 && have < layer.size && !this.source.fetchFrom)) {
      await unlink(teePath);
      have = 0;
    }
    if (have === 0) return { input: await this.source.fetch(layer), tee: new FileTee(teePath), complete: false };
    this.resumed = true;
    const kept = createReadStream(teePath, { end: have - 1 });
    if (have === layer.size) return { input: kept, complete: true };
    const source = this.source;
    async function* continued(): AsyncGenerator<Buffer> {
      yield* kept as AsyncIterable<Buffer>;
      yield* (await source.fetchFrom!(layer, have)) as AsyncIterable<Buffer>;
    }
    return { input: Readable.from(continued(), { objectMode: false }), tee: new FileTee(teePath, have), complete: false };
  }

  /** The store's copy of a blob, or undefined when it is not there (or was pruned a moment ago). */
  private async fromStore(desc: Descriptor): Promise<Readable | undefined> {
    try {
      return await this.store.fetch(desc);
    } catch (err) {
      if (isOcipkgError(err, 'ENOTFOUND')) return undefined;
      throw err;
    }
  }

  /** Moves every verified blob into the store; the manifest and config come from memory. */
  async publishBlobs(docs: { desc: Descriptor; bytes: Uint8Array }[]): Promise<void> {
    for (const [digest, path] of this.fetched) await publishFile(path, this.store.blobPath(digest));
    for (const { desc, bytes } of docs) await this.store.push(desc, bytes);
    await rmdir(this.blobDir);
  }

  /** package.json, files 0444/0555, directories 0555; the staging directory itself stays writable for the rename. */
  async finish(info: PackageInfo): Promise<void> {
    await writeFile(join(this.dir, PACKAGE_INFO_FILE), `${JSON.stringify(info, null, 2)}\n`);
    for (const entry of await readdir(this.dir, { withFileTypes: true })) {
      const path = join(this.dir, entry.name);
      if (entry.isDirectory()) await makeReadOnlyTree(path);
      else if (entry.isFile()) await chmod(path, 0o444);
    }
  }
}

/**
 * Installs one image manifest into the store as `packages/sha256/<hex>` and returns it; an
 * installed package is returned as is, with nothing fetched.
 *
 * Every blob is verified (size and digest) as it streams, and nothing becomes visible before all of
 * it was: blobs move into `blobs/sha256/` only after every layer checked out, and the package
 * directory appears by one rename of a complete, read-only staging directory. A process killed at
 * any point leaves only `tmp/` litter. Concurrent installs of the same manifest race on that rename;
 * the losers discard their copy and return the winner's.
 */
export async function installPackage(
  storeRoot: string,
  source: ContentSource,
  manifestDesc: Descriptor,
  manifestBytes: Uint8Array,
  options: InstallPackageOptions = {},
): Promise<InstalledPackage> {
  const installed = readInstalledPackage(storeRoot, manifestDesc.digest);
  if (installed) return installed;
  // What a killed (SIGKILL) install left: its downloads become partials this one may continue.
  await recoverStaging(storeRoot);

  const where = `${source.location}@${manifestDesc.digest}`;
  verifyBytes(manifestDesc, manifestBytes, source.location);
  const limits = packageLimits();
  const manifest = checkManifest(manifestDesc, manifestBytes, where, limits);

  const store = storeLayout(storeRoot);
  await store.ensureLayout();
  const keep = keepLayers();
  const staging = new Staging(storeRoot, store, source, new ExtractBudget(limits), keep);
  // Ctrl-C or a kill: keep the downloads, remove the rest, then end as the signal would.
  const stopListening = onInterrupt(() => {
    staging.keepDownloads();
    removeTreeSync(staging.dir);
  });
  try {
    await staging.create();
    const { bytes: configBytes, config } = await staging.readConfig(manifest.config, where, options.config);
    for (const layer of manifest.layers) await staging.extractLayer(layer);
    const bad = await badLink(staging.rootDir);
    if (bad?.problem === 'leads outside') throw new OcipkgError('EUNSAFE', `${where}: "${bad.path}" is a symlink that, with the other layers, leads outside the package`);
    if (bad?.problem === 'loops') throw new OcipkgError('EUNSAFE', `${where}: "${bad.path}" is a symlink that loops, never reaching a file`);
    await staging.publishBlobs([
      { desc: manifestDesc, bytes: manifestBytes },
      { desc: manifest.config, bytes: configBytes },
    ]);

    const triple = options.triple ?? config.package?.target;
    const info: PackageInfo = {
      manifestDigest: manifestDesc.digest, manifest, config, ...(triple !== undefined && { target: triple }),
      fetched: isoTimestamp(), ...(!keep && { layersKept: false as const }),
    };
    const dir = storePaths.package(storeRoot, manifestDesc.digest);
    const pkg: InstalledPackage = { ...info, dir, root: join(dir, PACKAGE_ROOT_DIR) };
    await options.prepare?.(staging.dir, pkg);
    await staging.finish(info);

    await mkdir(storePaths.packages(storeRoot), { recursive: true });
    try {
      await rename(staging.dir, dir);
    } catch (err) {
      const winner = ['ENOTEMPTY', 'EEXIST', 'EPERM', 'EACCES'].includes(errno(err) ?? '') ? readInstalledPackage(storeRoot, manifestDesc.digest) : undefined;
      if (!winner) throw err;
      await removeTree(staging.dir);
      return winner;
    }
    await chmod(dir, 0o555);
    return pkg;
  } catch (err) {
    // A download cut short by the network can go on next time; bytes known to be wrong cannot.
    if (isOcipkgError(err) && RESUMABLE.includes(err.code)) staging.keepDownloads();
    await removeTree(staging.dir);
    // A partial that does not add up to the blob (a disk error, another writer) is gone now: once more from the start.
    if (staging.resumed && (isOcipkgError(err, 'EINTEGRITY') || isOcipkgError(err, 'EBADSIZE'))) return await installPackage(storeRoot, source, manifestDesc, manifestBytes, options);
    throw err;
  } finally {
    stopListening();
  }
}

/** Failures after which what was downloaded is still worth continuing: the transfer's, not the content's. */
const RESUMABLE: string[] = ['EUNREACHABLE', 'EREGISTRY', 'EAUTH', 'ETLS'];

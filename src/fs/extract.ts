import { statSync } from 'node:fs';
import { mkdir, opendir, readlink, realpath, rm, symlink } from 'node:fs/promises';
import { dirname, join, posix, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable, type Readable } from 'node:stream';
import { createGunzip, type Gunzip } from 'node:zlib';
import type { ReadEntry } from 'tar/read-entry';
import { Unpack } from 'tar/unpack';
import { errno, OcipkgError } from '../errors.js';
import { noteBufferChurn, transferHoldsBuffers } from '../tuning.js';

/**
 * Safe extraction of a tar stream (a layer, an oci-archive) into a directory.
 *
 * node-tar on its own warns about a hostile entry and skips it, then carries on. Here every entry is
 * checked before node-tar sees it, and the first refusal or warning fails the whole extraction: the
 * caller discards the directory, so a package is either all there or not at all.
 */
export interface ExtractOptions {
  /** Whether the stream is gzip-compressed. */
  gzip: boolean;
  /** Names the stream in messages, e.g. `layer sha256:... from oci:dir`. */
  label: string;
  /** The code for input that is not a valid tar: EMANIFEST for a layer, EINPUT for a local archive. */
  invalidCode: 'EMANIFEST' | 'EINPUT';
  /** What the extraction may produce, shared by every stream of one package; no limit when absent. */
  budget?: ExtractBudget;
}

/** A cap, and the environment variable that raises it (named in the error). */
export interface Limit {
  max: number;
  env: string;
}

export interface ExtractLimits {
  /** Bytes of file content, all streams together. */
  bytes: Limit;
  /** Entries, all streams together. */
  entries: Limit;
  /** Inflated bytes per compressed byte of one stream, once it has inflated past EXPANSION_FLOOR. */
  expansion: Limit;
}

/** Below this much output any ratio is harmless, and small layers of zeros or text do reach high ones. */
const EXPANSION_FLOOR = 64 << 20;

/** What the streams of one package have used of their limits so far. */
export class ExtractBudget {
  bytes = 0;
  entries = 0;

  constructor(readonly limits: ExtractLimits) {}
}

function overLimit(label: string, what: string, limit: Limit, unit = ''): OcipkgError {
  return new OcipkgError('ETOOLARGE', `${label}: ${what} more than ${limit.max}${unit} (set ${limit.env} to raise the limit)`);
}

/**
 * node-tar's own path reservations (which let it write several entries at once) never forget an
 * entry once it is written: ~3 KiB per entry stay reachable until the stream ends, 600 MiB for a
 * layer of 200k empty files (measured). One entry at a time forgets each as it finishes, and
 * costs no throughput measurably: the tar stream is sequential anyway (measured on Debian's static
 * libraries and /usr/include: within run-to-run noise). Entries keep their order, so a later
 * entry for a path still replaces an earlier one.
 */
class OneAtATime {
  private busy = false;
  private readonly waiting: ((done: () => void) => void)[] = [];

  reserve(_paths: string[], fn: (done: () => void) => void): boolean {
    if (this.busy) {
      this.waiting.push(fn);
      return false;
    }
    this.start(fn);
    return true;
  }

  private start(fn: (done: () => void) => void): void {
    this.busy = true;
    fn(() => {
      this.busy = false;
      const next = this.waiting.shift();
      if (next) this.start(next);
    });
  }
}

const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);

function isAbsolutePath(p: string): boolean {
  return p.startsWith('/') || p.startsWith('\\') || /^[a-zA-Z]:/.test(p);
}

/** Entry paths split on both separators, so a Windows-style `..\x` is caught on any host. */
function hasDotDot(p: string): boolean {
  return p.split(/[\\/]/).includes('..');
}

/** `./a//b/` -> `a/b`; the root itself is `.`. */
function normalizeEntryPath(p: string): string {
  return posix.normalize(p).replace(/\/+$/, '') || '.';
}

function escapes(resolved: string): boolean {
  return resolved === '..' || resolved.startsWith('../');
}

/**
 * Why an entry must not be extracted, or undefined when it is fine. `symlinks` holds the symlinks
 * this stream created so far: writing through one could land anywhere it points.
 */
function refusal(entry: ReadEntry, symlinks: Set<string>): string | undefined {
  const raw = entry.path;
  if (!ALLOWED_TYPES.has(entry.type)) return `is a ${entry.type} (only files, directories and links are allowed)`;
  if (isAbsolutePath(raw)) return 'has an absolute path';
  if (hasDotDot(raw)) return "has a '..' path component";
  const path = normalizeEntryPath(raw);
  const throughSymlink = (p: string) => {
    for (let dir = posix.dirname(p); dir !== '.'; dir = posix.dirname(dir)) if (symlinks.has(dir)) return dir;
    return undefined;
  };
  const via = throughSymlink(path);
  if (via !== undefined) return `would be written through the symlink "${via}"`;
  const target = entry.linkpath ?? '';
  if (entry.type === 'SymbolicLink') {
    if (isAbsolutePath(target)) return `is a symlink to the absolute path "${target}"`;
    if (escapes(posix.normalize(posix.join(posix.dirname(path), target.replace(/\\/g, '/'))))) {
      return `is a symlink to "${target}", outside the extraction root`;
    }
  }
  if (entry.type === 'Link') {
    // Hard link targets are relative to the archive root, not to the entry's directory.
    if (isAbsolutePath(target) || hasDotDot(target)) return `is a hard link to "${target}", outside the extraction root`;
    if (normalizeEntryPath(target) === path) return 'is a hard link to itself';
    const linkVia = throughSymlink(normalizeEntryPath(target) + '/x');
    if (linkVia !== undefined) return `is a hard link through the symlink "${linkVia}"`;
  }
  return undefined;
}

/**
 * A writable that gunzips (optionally) and extracts what is written to it into `dest`. It finishes
 * only after node-tar has finished every file it started, so that the caller may remove `dest`.
 *
 * After a failure it keeps accepting (and discarding) input instead of erroring at once: the caller
 * verifies the same bytes upstream, and bytes that do not match their digest must be reported as
 * such, not as the hostile or broken archive they happen to look like. The failure is reported when
 * the input ends.
 */
class Extractor extends Writable {
  private failure: Error | undefined;
  private readonly gunzip: Gunzip | undefined;
  private readonly unpack: Unpack;
  private readonly tarClosed: Promise<void>;
  private readonly symlinks = new Set<string>();
  /** Symlink entries (path -> target) still to create, in archive order; a later entry replaces an earlier one. */
  private readonly pendingLinks = new Map<string, string>();
  private drainWaiter: (() => void) | undefined;
  private tarEnded = false;
  /** Bytes written to this extractor and, for gzip, bytes they inflated to: for the expansion limit. */
  private compressed = 0;
  private inflated = 0;

  constructor(
    private readonly dest: string,
    private readonly options: ExtractOptions,
  ) {
    super();
    this.unpack = new Unpack({
      cwd: dest,
      // Not strict: strict mode turns warnings into errors after which node-tar never reports that
      // its pending writes are done. Every warning is collected as a failure instead (below).
      strict: false,
      preserveOwner: false,
      filter: (_path, entry) => this.admit(entry as ReadEntry),
      onwarn: (code, message, data) => this.fail(this.mapTarError(data instanceof Error ? data : Object.assign(new Error(`${code}: ${message}`), data))),
    });
    (this.unpack as unknown as { reservations: OneAtATime }).reservations = new OneAtATime();
    const released = transferHoldsBuffers('extraction');
    this.tarClosed = new Promise((resolve) => this.unpack.on('close', () => resolve()));
    void this.tarClosed.then(released);
    this.unpack.on('error', (err: Error) => this.fail(this.mapTarError(err)));
    if (!options.gzip) {
      this.unpack.on('drain', () => this.releaseWriter());
    } else {
      // Large output chunks: each one becomes a file write in node-tar, and 16 KiB (the default)
      // makes the main thread spend more time issuing writes than inflating.
      this.gunzip = createGunzip({ chunkSize: 1 << 20 });
      this.gunzip.on('error', (err) => {
        // A broken gzip stream ends nothing by itself: end the tar side so that it settles.
        this.fail(this.invalid(`gzip: ${err.message}`));
        this.endTar();
      });
      this.gunzip.on('data', (chunk: Buffer) => {
        noteBufferChurn(chunk.length);
        if (this.failure) return;
        this.inflated += chunk.length;
        const expansion = options.budget?.limits.expansion;
        if (expansion && this.inflated > EXPANSION_FLOOR && this.inflated > expansion.max * this.compressed) {
          this.fail(overLimit(options.label, `inflates ${this.compressed} bytes to ${this.inflated}, a ratio of`, expansion, ' to 1'));
          return;
        }
        if (!this.unpack.write(chunk)) this.gunzip!.pause();
      });
      this.unpack.on('drain', () => this.gunzip!.resume());
      this.gunzip.on('drain', () => this.releaseWriter());
      this.gunzip.on('end', () => this.endTar());
    }
  }

  /** The tar `filter`: checks an entry, strips special mode bits, records symlinks. */
  private admit(entry: ReadEntry): boolean {
    if (this.failure) return false;
    const budget = this.options.budget;
    if (budget) {
      budget.entries++;
      budget.bytes += entry.size ?? 0;
      const { limits } = budget;
      const over =
        budget.entries > limits.entries.max ? overLimit(this.options.label, 'the package has', limits.entries, ' entries')
        : budget.bytes > limits.bytes.max ? overLimit(this.options.label, 'the package unpacks to', limits.bytes, ' bytes')
        : undefined;
      if (over) {
        this.fail(over);
        return false;
      }
    }
    const linked = entry.type === 'Link' && !hasDotDot(entry.linkpath ?? '') ? this.pendingLinks.get(normalizeEntryPath(entry.linkpath ?? '')) : undefined;
    if (linked !== undefined) {
      // A hard link to a symlink is that symlink a second time (tar archives one whose link count
      // is above 1 this way): the same text, checked for where it now stands, and created last.
      entry.type = 'SymbolicLink';
      entry.linkpath = linked;
    }
    const why = refusal(entry, this.symlinks);
    if (why !== undefined) {
      this.fail(new OcipkgError('EUNSAFE', `${this.options.label}: entry "${entry.path}" ${why}`));
      return false;
    }
    const path = normalizeEntryPath(entry.path);
    if (entry.type === 'SymbolicLink') {
      this.symlinks.add(path);
      // Created after every file is in place (see createSymlinks): node-tar refuses a link to a
      // link (libz.so -> libz.so.1 -> libz.so.1.2.13, the usual shared-library chain).
      this.pendingLinks.set(path, entry.linkpath ?? '');
      return false;
    }
    this.symlinks.delete(path);
    this.pendingLinks.delete(path);
    if (typeof entry.mode === 'number') {
      // No set-uid, set-gid or sticky bits; the owner keeps read/write so later entries and cleanup work.
      const dir = entry.type === 'Directory';
      entry.mode = (entry.mode & 0o777) | (dir ? 0o700 : 0o600);
    }
    return true;
  }

  private invalid(why: string): OcipkgError {
    return new OcipkgError(this.options.invalidCode, `${this.options.label} is not a valid tar${this.options.gzip ? '+gzip' : ''} archive: ${why}`);
  }

  private mapTarError(err: Error & { code?: unknown; syscall?: unknown; entry?: ReadEntry }): Error {
    if (err.code === 'TAR_SYMLINK_ERROR') {
      return new OcipkgError('EUNSAFE', `${this.options.label}: an entry would be written through a symbolic link`, { cause: err });
    }
    const linkProblem = err.syscall === 'link' && err.entry ? this.hardLinkProblem(err.entry, err.code) : undefined;
    if (linkProblem !== undefined) return new OcipkgError('EUNSAFE', `${this.options.label}: entry "${err.entry!.path}" ${linkProblem}`, { cause: err });
    // A failing system call (disk full, permissions) is not the archive's fault: pass it on as is.
    if (err.syscall !== undefined && !String(err.code).startsWith('TAR_')) return err;
    return this.invalid(err.message);
  }

  /**
   * Why link(2) refused a hard link entry, when the archive is to blame: its target is no entry
   * extracted so far (a hard link names an earlier entry), or a directory. Other failures (a file
   * system without hard links, a full disk) are the machine's, and stay as they are.
   */
  private hardLinkProblem(entry: ReadEntry, code: unknown): string | undefined {
    const target = entry.linkpath ?? '';
    if (code === 'ENOENT') return `is a hard link to "${target}", which is no earlier entry of the package`;
    if (code === 'EPERM' && statSync(join(this.dest, target), { throwIfNoEntry: false })?.isDirectory()) return `is a hard link to the directory "${target}"`;
    return undefined;
  }

  private endTar(): void {
    if (this.tarEnded) return;
    this.tarEnded = true;
    this.unpack.end();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.releaseWriter();
  }

  private releaseWriter(): void {
    const waiter = this.drainWaiter;
    this.drainWaiter = undefined;
    waiter?.();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    noteBufferChurn(chunk.length);
    this.compressed += chunk.length;
    if (this.failure) {
      done();
      return;
    }
    const head = this.gunzip ?? this.unpack;
    if (head.write(chunk)) done();
    else this.drainWaiter = () => done();
  }

  override _final(done: (err?: Error | null) => void): void {
    if (this.failure) {
      this.gunzip?.destroy();
      this.endTar();
    } else if (this.gunzip) {
      this.gunzip.end();
    } else {
      this.endTar();
    }
    void this.tarClosed
      .then(() => (this.failure ? undefined : this.createSymlinks()))
      .then(
        () => done(this.failure ?? null),
        (err: Error) => done(this.failure ?? err),
      );
  }

  /**
   * Creates the deferred symlinks, then checks where each really leads. Every target was checked
   * lexically on admission, but a chain can still climb out (`a/d -> ../..` then `a/e -> d/../x`),
   * so the real location each link reaches (as far as it exists) must be inside the root.
   */
  private async createSymlinks(): Promise<void> {
    for (const [path, target] of this.pendingLinks) {
      const at = join(this.dest, path);
      await mkdir(dirname(at), { recursive: true });
      await rm(at, { force: true, recursive: true });
      await symlink(target, at);
    }
    const root = await realpath(this.dest);
    for (const [path, target] of this.pendingLinks) {
      const reached = await reachedBy(join(this.dest, path), target);
      if (reached !== root && !reached.startsWith(root + sep)) {
        throw new OcipkgError('EUNSAFE', `${this.options.label}: entry "${path}" is a symlink that leads outside the extraction root`);
      }
    }
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    // Upstream failed (a digest mismatch, a dropped connection): stop, but report only once node-tar
    // has finished the files it started, so the caller's cleanup does not race with its writes.
    this.failure ??= err ?? undefined;
    this.gunzip?.destroy();
    this.endTar();
    void this.tarClosed.then(() => done(err));
  }
}

/**
 * The real path a relative symlink at `link` leads to, component by component as the kernel walks
 * it (symlinks resolved before `..` applies), up to the first component that does not exist: a link
 * dangling past that point can never reach anything.
 */
async function reachedBy(link: string, target: string): Promise<string> {
  let walked = dirname(link);
  let reached = await realpath(walked);
  for (const part of target.split(/[\\/]/)) {
    if (part === '' || part === '.') continue;
    walked = `${walked}${sep}${part}`;
    try {
      reached = await realpath(walked);
    } catch (err) {
      if (['ENOENT', 'ENOTDIR', 'ELOOP'].includes(errno(err) ?? '')) break;
      throw err;
    }
  }
  return reached;
}

/** A symlink a package must not hold (see badLink): its path relative to the root, and what is wrong with it. */
export interface BadLink {
  path: string;
  problem: 'leads outside' | 'loops';
}

/**
 * The first symlink under `root` that leads outside it, or that loops (`a -> a`, `a -> b -> a`:
 * it reaches nothing, and every reader fails on it with ELOOP), or undefined. Each stream's links
 * are checked as it is extracted, but a link from one layer can complete one from another
 * (`a -> b/..` in the first, `b -> ../..` in the second), or a later layer replace a link that
 * looped: the tree a package's layers make together must be checked once more after the last.
 */
export async function badLink(root: string): Promise<BadLink | undefined> {
  const top = await realpath(root);
  const visit = async (dir: string): Promise<BadLink | undefined> => {
    for await (const entry of await opendir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        const found = await visit(path);
        if (found !== undefined) return found;
      } else if (entry.isSymbolicLink()) {
        const relative = path.slice(root.length + 1);
        if (await loops(path)) return { path: relative, problem: 'loops' };
        const reached = await reachedBy(path, await readlink(path));
        if (reached !== top && !reached.startsWith(top + sep)) return { path: relative, problem: 'leads outside' };
      }
    }
    return undefined;
  };
  return visit(root);
}

/** Whether following `link` all the way meets a loop; a link that merely dangles does not. */
async function loops(link: string): Promise<boolean> {
  try {
    await realpath(link);
    return false;
  } catch (err) {
    if (errno(err) === 'ELOOP') return true;
    if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return false;
    throw err;
  }
}

/** A writable end to pipe a layer into; see Extractor. `dest` must exist. */
export function createExtractor(dest: string, options: ExtractOptions): Writable {
  return new Extractor(dest, options);
}

/** Extracts a whole tar stream into `dest` (created if missing). */
export async function extractStream(input: Readable, dest: string, options: ExtractOptions): Promise<void> {
  await mkdir(dest, { recursive: true });
  await pipeline(input, createExtractor(dest, options));
}

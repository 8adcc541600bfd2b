import { writeSync } from 'node:fs';
import { sep } from 'node:path';
import { errno, exitStatusOf, machineFailure, OcipkgError } from '../errors.js';
import { storeRoot } from '../store/paths.js';
import { DOCKER_TRANSPORT, parseReference } from '../reference.js';
import { parseCommandLine, type Options, type Parsed } from './args.js';

/** Shared plumbing of the `ocipkg` and `ocipkg-link` entry points: usage errors, progress, exit. */

export function debugEnabled(argv: readonly string[]): boolean {
  return argv.includes('--verbose') || process.env.OCIPKG_DEBUG === '1';
}

/**
 * Prints one result line on stdout, synchronously through fd 1. Results are small, and touching
 * process.stdout would build a socket or TTY stream first: milliseconds that ocipkg-link's warm
 * path, run once per build step, does not have. A full pipe (EAGAIN) is waited out.
 */
export function printLine(text: string): void {
  const data = Buffer.from(`${text}\n`);
  let offset = 0;
  while (offset < data.length) {
    try {
      offset += writeSync(1, data, offset);
    } catch (err) {
      if (errno(err) !== 'EAGAIN') throw err;
    }
  }
}

/** The option of every command that prints a result, and its line in the command's help. */
export const JSON_OPTION = { json: { type: 'boolean' } } as const;
export const JSON_HELP = '  --json                  the result as one JSON value on stdout';

/** A `--json` result: one JSON value on stdout, the only thing printed there. */
export function printJson(value: unknown): void {
  // JSON.stringify escapes C0 controls but writes DEL, C1 (U+0080-U+009F, CSI among them) and the
  // bidirectional overrides as they are: escaped here too, still valid JSON, so what a registry
  // sent can neither drive a terminal nor show text in another order than it has.
  printLine(JSON.stringify(value, null, 2).replace(UNSAFE_IN_JSON, unicodeEscape));
}

/** DEL, the C1 controls and the bidirectional marks, embeddings, overrides and isolates. */
const DISPLAY_CONTROLS = '\\u007f-\\u009f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069';
const UNSAFE_IN_JSON = new RegExp(`[${DISPLAY_CONTROLS}]`, 'g');
const UNSAFE_IN_MESSAGES = new RegExp(`[\\u0000-\\u001f${DISPLAY_CONTROLS}]`, 'g');

/** `c` as a JSON and JavaScript string escape, `\u001b`. */
function unicodeEscape(c: string): string {
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** Set by --quiet (-q): no progress of any kind. */
let quiet = false;

export function isQuiet(): boolean {
  return quiet;
}

/** Where progress lines go: stderr, or through the transfer display while one draws there. */
let progressLog: (line: string) => void = (line) => void process.stderr.write(`${line}\n`);

export function setProgressLog(log: (line: string) => void): void {
  progressLog = log;
}

/** Progress goes to stderr, and only to a terminal (or when OCIPKG_PROGRESS=1 asks), never under --quiet. */
export function progress(message: string): void {
  if (!quiet && (process.stderr.isTTY || process.env.OCIPKG_PROGRESS === '1')) progressLog(message);
}

export function usageError(message: string): OcipkgError {
  return new OcipkgError('EUSAGE', message);
}

/**
 * Options every command takes, before or after its name: --verbose, -q/--quiet, -h/--help, and
 * --plain-http (or skopeo's spelling, --tls-verify=false), which speaks plain HTTP to the
 * registries this command names, as OCIPKG_INSECURE_REGISTRIES does for every command.
 */
export const GLOBAL_OPTIONS = {
  verbose: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  'plain-http': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const GLOBAL_HELP = [
  '  --verbose               stack traces on errors (also OCIPKG_DEBUG=1)',
  '  -q, --quiet             no progress on stderr',
  '  --plain-http            plain HTTP to the registries named on the command line',
  '  --tls-verify=false      the same, as skopeo spells it (certificates are always checked over TLS)',
  '  -h, --help              this help',
].join('\n');

type WithCommon<T extends Options> = T & typeof GLOBAL_OPTIONS;

/** skopeo's boolean `--tls-verify[=BOOL]` as the flag it stands for here (nothing, or --plain-http). */
function tlsVerify(args: string[]): string[] {
  return args.flatMap((arg) => {
    if (arg === '--tls-verify' || arg === '--tls-verify=true') return [];
    if (arg === '--tls-verify=false') return ['--plain-http'];
    if (arg.startsWith('--tls-verify=')) throw usageError(`--tls-verify takes true or false, got "${arg.slice('--tls-verify='.length)}"`);
    return [arg];
  });
}

/**
 * --plain-http: the registries the command line names join OCIPKG_INSECURE_REGISTRIES for this
 * process. Only an argument that spells a registry host counts (a path such as `dist/x.tar` names
 * none); a host marked that is never contacted costs nothing.
 */
function plainHttpFor(args: string[]): void {
  const hosts = args.flatMap((arg) => {
    const bare = arg.startsWith(DOCKER_TRANSPORT) ? arg.slice(DOCKER_TRANSPORT.length) : arg;
    const slash = bare.indexOf('/');
    const first = slash > 0 ? bare.slice(0, slash) : '';
    if (!(first.includes('.') || first.includes(':') || first === 'localhost')) return [];
    try {
      const ref = parseReference(arg);
      return ref.kind === 'registry' ? [ref.registry] : [];
    } catch {
      return [];
    }
  });
  const listed = process.env.OCIPKG_INSECURE_REGISTRIES;
  process.env.OCIPKG_INSECURE_REGISTRIES = [...(listed ? [listed] : []), ...hosts].join(',');
}

/**
 * A command's options plus the global ones, with parse errors as one-line usage errors naming
 * `command` (a subcommand; a program's own name is already what runMain prefixes).
 */
export function parseOptions<T extends Options>(args: string[], options: T, command?: string): Parsed<WithCommon<T>> {
  let parsed: Parsed<WithCommon<T>>;
  try {
    const all: WithCommon<T> = { ...options, ...GLOBAL_OPTIONS };
    parsed = parseCommandLine(tlsVerify(args), all);
  } catch (err) {
    const message = (err as Error).message;
    throw usageError(command === undefined ? message : `${command}: ${message}`);
  }
  const common = parsed.values as { quiet?: boolean; 'plain-http'?: boolean };
  if (common.quiet) quiet = true;
  if (common['plain-http']) plainHttpFor(parsed.positionals);
  return parsed;
}

/**
 * Sizes libuv's thread pool, where zlib inflates, for `transfersAtOnce` transfers side by side:
 * the cores the main thread leaves, but a thread for each transfer (one inflates at a time per
 * transfer), at most libuv's default of 4; unless UV_THREADPOOL_SIZE is set. libuv reads the
 * variable when the pool first starts, so the CLIs call this before a command makes any
 * asynchronous file or zlib call. On 2 cores libuv's 4 threads and the main thread (which parses,
 * hashes and hands the work out) took turns: measured, a cold get of 150 MiB in 0.94 s with 4
 * threads, 0.88 with 2, 0.84 with 1; an install of four packages, two at a time, 0.97 s with 4,
 * 0.88 with 2, 1.00 with 1 (where both fetches inflated on the one thread in turn).
 * Child processes inherit the variable; ocipkg starts only credential helpers and itself.
 */
export function sizeThreadPool(transfersAtOnce: number): void {
  if (process.env.UV_THREADPOOL_SIZE !== undefined) return;
  const cores = process.getBuiltinModule('node:os').availableParallelism();
  process.env.UV_THREADPOOL_SIZE = String(Math.min(4, Math.max(1, transfersAtOnce, cores - 1)));
}

const ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * `text` with every control character (C0, DEL, C1) and bidirectional mark or override written as
 * an escape (`\n`, `\u001b`, `\u202e`). Messages quote what registries and packages sent (an error
 * code, a name); on stderr that must stay one line, must not move the cursor, clear the screen or
 * recolour what follows, and must read in the order it is written.
 */
export function escapeControls(text: string): string {
  return text.replace(UNSAFE_IN_MESSAGES, (c) => ESCAPES[c] ?? unicodeEscape(c));
}

/**
 * Runs a CLI body: on failure prints `<prog>: <message>` on stderr, control characters escaped (the
 * stack only with --verbose or OCIPKG_DEBUG=1), and exits with the status of the error's kind
 * (EXIT_STATUSES in errors.ts).
 */
export async function runMain(prog: string, argv: string[], body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    const debug = debugEnabled(argv);
    if (err instanceof OcipkgError) {
      process.stderr.write(`${prog}: ${escapeControls(err.message)}\n`);
      if (debug) process.stderr.write(`${err.stack ?? ''}\n${err.cause ? `cause: ${(err.cause as Error).stack ?? String(err.cause)}\n` : ''}`);
      process.exitCode = exitStatusOf(err.code);
    } else {
      const store = storeFailure(err);
      const message = err instanceof Error ? err.message : String(err);
      const line = store ?? `unexpected error: ${message.split('\n')[0]!}${debug ? '' : ' (run with --verbose for details)'}`;
      process.stderr.write(`${prog}: ${escapeControls(line)}\n`);
      if (debug && err instanceof Error) process.stderr.write(`${err.stack}\n`);
      process.exitCode = 1;
    }
  }
}

/**
 * What to say when the store could not be written (read-only, someone else's, a full disk): the
 * store, not ocipkg, is what the user must change. Undefined for any other failure.
 */
function storeFailure(err: unknown): string | undefined {
  const failure = machineFailure(err);
  const root = storeRoot();
  if (failure?.path === undefined || (failure.path !== root && !failure.path.startsWith(root + sep))) return undefined;
  const why = failure.code === 'ENOSPC' || failure.code === 'EDQUOT' ? 'is out of space' : 'cannot be written';
  return `the ocipkg store at ${root} ${why} (${failure.code} on ${failure.path}): fetching, removing and pruning write to it; set OCIPKG_DATA_DIR to use another store`;
}

/** Reads all of standard input as text (for --password-stdin). */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

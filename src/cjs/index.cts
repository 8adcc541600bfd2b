import { join } from 'node:path';
import { Script } from 'node:vm';
import type { LinkFlags } from '../link/flags.js';
import { loadBundle } from './bundles.cjs';

/**
 * The CommonJS face of ocipkg, for binding.gyp expressions such as
 *
 *   "include_dirs": ["<!@(node -p \"require('ocipkg').includeDirs('ghcr.io/acme/zstd:1.5.6')\")"]
 *
 * Node 20 cannot require() an ES module, and gyp wants an answer synchronously. Each function runs
 * `ocipkg-link`'s own bundled code (the one code path for every consumer) in this process when the
 * store has the packages, synchronously (its warm path is), and runs the `ocipkg-link` CLI, which
 * fetches, when it does not.
 * The string-returning functions give one line in pkg-config's conventions, ready for `<!@(...)`.
 */

export interface LinkOptions {
  /** Target triple; default: npm_config_arch for a cross build, then OCIPKG_TARGET, then the host. */
  target?: string;
  /** Link shared builds where a library has both (default static). */
  shared?: boolean;
  /** Use the store only, never the network. */
  offline?: boolean;
  /** Spell `$ORIGIN` for a Makefile (node-gyp's make generator on Linux). */
  forMake?: boolean;
}

/** What `ocipkg-link --json` prints. Paths are absolute, with forward slashes. */
export interface LinkInfo extends LinkFlags {
  packages: {
    image: string;
    name: string;
    version: string | null;
    target: string | null;
    manifestDigest: string;
    dir: string;
    root: string;
  }[];
  prefix: string[];
}

const BIN = join(__dirname, '..', '..', 'bin', 'ocipkg-link.cjs');

/** errors.ts's brand of ocipkg's errors: the bundle's class is its own copy, not one to test instanceof against. */
const BRAND = Symbol.for('ocipkg.error');

/** ocipkg-link's bundle, loaded on the first call. */
let bundle: { storedLinkOutput(argv: string[]): string | undefined } | undefined;

/** What ocipkg-link prints for `args` when the store alone can answer, else undefined. */
function storedOutput(args: string[]): string | undefined {
  bundle ??= loadBundle<NonNullable<typeof bundle>>('ocipkg-link').exports;
  try {
    return bundle.storedLinkOutput(args);
  } catch (err) {
    // ocipkg's own errors (errors.ts brands them) are the CLI's answer too, in the CLI's words as
    // it would print them on stderr; anything else, the CLI is asked, and says it in its own.
    const error = err as { message?: unknown; [BRAND]?: unknown } | undefined;
    if (typeof error !== 'object' || error === null || error[BRAND] !== true) return undefined;
    return fail(`ocipkg-link: ${String(error.message)}`, err);
  }
}

function runCli(args: string[]): string {
  // Loaded here, not at the top: child_process brings net, streams and more, a third of a bare
  // Node start, and the warm path never needs it.
  const { execFileSync } = process.getBuiltinModule('node:child_process');
  try {
    return execFileSync(process.execPath, [BIN, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trimEnd();
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
    return fail(stderr || `ocipkg-link failed: ${(err as Error).message}`, err);
  }
}

/** Throws its argument from a line of its own (see fail). */
let thrower: ((error: Error) => never) | undefined;

/**
 * Throws what ocipkg-link says (`message`) as gyp's `node -p` shows it: Node prints an uncaught
 * error's stack, its cause and, above them, the source line it was thrown from, which here is this
 * whole minified bundle (~2 KB): ~5 KB for a registry out of reach. So, unless OCIPKG_DEBUG=1 asks
 * for the stack and the cause, the error is the message and the frame of the call into this API
 * (a frame, because Node brackets an error without one), and it is thrown from a line compiled
 * apart that carries the marker Node's own rethrows carry to keep their line out (a Node without
 * it would show that short line).
 */
function fail(message: string, cause: unknown): never {
  thrower ??= new Script('(error) => { throw error; /* node-do-not-add-exception-line */ }', { filename: 'ocipkg' }).runInThisContext() as (error: Error) => never;
  if (process.env.OCIPKG_DEBUG === '1') return thrower(new Error(message, { cause }));
  const limit = Error.stackTraceLimit;
  const error = new Error(message);
  // Two frames above run: the API function, then its caller's.
  Error.stackTraceLimit = 2;
  Error.captureStackTrace(error, run);
  Error.stackTraceLimit = limit;
  const frames = error.stack ?? '';
  const caller = frames.lastIndexOf('\n    at ');
  error.stack = caller === -1 ? message : message + frames.slice(caller);
  return thrower(error);
}

const OPTIONS = new Set<string>(['target', 'shared', 'offline', 'forMake'] satisfies (keyof LinkOptions)[]);

function run(outputs: string[], images: string | string[], options: LinkOptions): string {
  // A misspelt option ({ share: true }) would link the other build without a word.
  const unknown = Object.keys(options).find((key) => !OPTIONS.has(key));
  if (unknown !== undefined) fail(`ocipkg: unknown option "${unknown}" (options: ${[...OPTIONS].join(', ')})`, undefined);
  const args = [...outputs];
  if (options.target) args.push('--target', options.target);
  if (options.shared) args.push('--shared');
  if (options.offline) args.push('--offline');
  if (options.forMake) args.push('--for-make');
  args.push('--', ...(Array.isArray(images) ? images : [images]));
  return storedOutput(args) ?? runCli(args);
}

/** Everything `ocipkg-link --json` knows. */
export function link(images: string | string[], options: LinkOptions = {}): LinkInfo {
  return JSON.parse(run(['--json'], images, options)) as LinkInfo;
}

/** Include directories, space-separated. */
export function includeDirs(images: string | string[], options: LinkOptions = {}): string {
  return run(['--include-dirs'], images, options);
}

/** What goes in binding.gyp's `libraries`: `ocipkg-link --libs`. */
export function libraries(images: string | string[], options: LinkOptions = {}): string {
  return run(['--libs'], images, options);
}

/** `ocipkg-link --cflags`. */
export function cflags(images: string | string[], options: LinkOptions = {}): string {
  return run(['--cflags'], images, options);
}

/** `ocipkg-link --cflags --libs`. */
export function flags(images: string | string[], options: LinkOptions = {}): string {
  return run(['--cflags', '--libs'], images, options);
}

/** Shared libraries to copy next to the addon, space-separated. */
export function runtimeFiles(images: string | string[], options: LinkOptions = {}): string {
  return run(['--runtime-files'], images, options);
}

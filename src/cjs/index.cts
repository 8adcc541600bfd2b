import { join } from 'node:path';
import { createContext, runInContext, Script, type Context } from 'node:vm';
import type { LinkFlags } from '../link/flags.js';
import { loadBundle } from './bundles.cjs';

/**
 * The CommonJS face of ocipkg, for binding.gyp expressions such as
 *
 *   "include_dirs": ["<!@(node -p \"require('ocipkg').includeDirs('ghcr.io/acme/zstd:1.5.6')\")"]
 *
 * Node 20 cannot require() an ES module, and gyp wants an answer synchronously. Each function runs
 * `ocipkg-link`'s own bundled code (the one code path for every consumer) in this process when the
 * store has the packages, and runs the `ocipkg-link` CLI, which fetches, when it does not.
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

/** errors.ts's brand of ocipkg's errors (a registered symbol: the same in every context). */
const BRAND = Symbol.for('ocipkg.error');

interface Outcome {
  output?: string;
  error?: unknown;
}

/**
 * The warm path, synchronously. ocipkg-link's bundle is async code whose warm path awaits nothing
 * but its own promises (its reads are synchronous), so it runs in a vm context of its own whose
 * microtasks V8 runs to completion as soon as a script evaluated there returns: when `drain` has
 * run, the promise has settled. The first need of the cold path, an import() and real I/O, rejects
 * at once instead (NEEDS_COLD_PATH); then, or if anything were left pending, the CLI takes over.
 */
class WarmPath {
  private readonly context: Context;
  private readonly linkOutput: (argv: string[]) => Promise<string>;
  private readonly drain = new Script('undefined');
  /** Records how a promise settles, with handlers of the context's own (a host function's reaction would queue on the host's microtasks). */
  private readonly settle: (promise: Promise<string>, outcome: Outcome) => void;
  static readonly NEEDS_COLD_PATH = Symbol('the cold path');

  constructor() {
    // The host's globals the bundle uses; the context brings its own JavaScript builtins.
    const host = globalThis as Record<string, unknown>;
    const names = ['process', 'Buffer', 'URL', 'URLSearchParams', 'TextEncoder', 'TextDecoder', 'console', 'setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate'];
    this.context = createContext(Object.fromEntries(names.map((name) => [name, host[name]])), { microtaskMode: 'afterEvaluate' });
    const ContextPromise = runInContext('Promise', this.context) as PromiseConstructor;
    this.settle = runInContext('(promise, outcome) => { promise.then((output) => { outcome.output = output; }, (error) => { outcome.error = error; }); }', this.context) as WarmPath['settle'];
    const importCold = () => ContextPromise.reject(WarmPath.NEEDS_COLD_PATH) as Promise<never>;
    this.linkOutput = loadBundle<{ linkOutput(argv: string[]): Promise<string> }>('ocipkg-link', { context: this.context, importCold }).exports.linkOutput;
  }

  /** What ocipkg-link prints for `args`, or undefined when only the CLI can say. */
  run(args: string[]): string | undefined {
    const outcome: Outcome = {};
    this.settle(this.linkOutput(args), outcome);
    this.drain.runInContext(this.context);
    if (outcome.output !== undefined) return outcome.output;
    // ocipkg's own errors (errors.ts brands them, whichever copy made them) are the CLI's answer
    // too; anything else, the CLI is asked, and says it in its own words.
    const error = outcome.error as { message?: unknown; [BRAND]?: unknown } | undefined;
    if (typeof error !== 'object' || error === null || error[BRAND] !== true) return undefined;
    // The CLI's own line, as the CLI would print it on stderr.
    throw new Error(`ocipkg-link: ${String(error.message)}`);
  }
}

let warm: WarmPath | undefined;

function runCli(args: string[]): string {
  // Loaded here, not at the top: child_process brings net, streams and more, a third of a bare
  // Node start, and the warm path never needs it.
  const { execFileSync } = process.getBuiltinModule('node:child_process');
  try {
    return execFileSync(process.execPath, [BIN, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trimEnd();
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
    throw new Error(stderr || `ocipkg-link failed: ${(err as Error).message}`, { cause: err });
  }
}

function run(outputs: string[], images: string | string[], options: LinkOptions): string {
  const args = [...outputs];
  if (options.target) args.push('--target', options.target);
  if (options.shared) args.push('--shared');
  if (options.offline) args.push('--offline');
  if (options.forMake) args.push('--for-make');
  args.push('--', ...(Array.isArray(images) ? images : [images]));
  warm ??= new WarmPath();
  return warm.run(args) ?? runCli(args);
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

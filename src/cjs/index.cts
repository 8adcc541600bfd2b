import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { LinkFlags } from '../link/flags.js';

/**
 * The CommonJS face of ocipkg, for binding.gyp expressions such as
 *
 *   "include_dirs": ["<!@(node -p \"require('ocipkg').includeDirs('ghcr.io/acme/zstd:1.5.6')\")"]
 *
 * Node 20 cannot require() an ES module, and gyp wants an answer synchronously, so each function
 * runs the `ocipkg-link` CLI and returns what it printed: one code path for every consumer.
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

const CLI = join(__dirname, '..', '..', 'bin', 'ocipkg-link.cjs');

function run(outputs: string[], images: string | string[], options: LinkOptions): string {
  const args = [...outputs];
  if (options.target) args.push('--target', options.target);
  if (options.shared) args.push('--shared');
  if (options.offline) args.push('--offline');
  if (options.forMake) args.push('--for-make');
  args.push('--', ...(Array.isArray(images) ? images : [images]));
  try {
    return execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trimEnd();
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
    throw new Error(stderr || `ocipkg-link failed: ${(err as Error).message}`, { cause: err });
  }
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

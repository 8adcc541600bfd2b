import { readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { configDir } from '../dirs.js';
import { OcipkgError } from '../errors.js';
import { parseReference, repositoryOf } from '../reference.js';
import type { Project } from './manifest.js';

/**
 * The trust policy: which keys an image must be signed by before it enters the store for a build.
 *
 *   "ocipkg": { "trust": { "ghcr.io/acme": { "keys": ["keys/acme.pub"] }, "*": { "keys": [...] } } }
 *
 * in the project's package.json (paths relative to the project), and the same `trust` object in
 * `$OCIPKG_CONFIG_DIR/policy.json` for a whole machine (paths relative to that file). Prefixes match
 * on path-component boundaries (`ghcr.io/acme` covers `ghcr.io/acme/zstd`, not `ghcr.io/acmex`);
 * the longest wins, the project's over the machine's on a tie; `*` covers everything. Synchronous
 * and import-light: the warm path asks for every package it resolves.
 */

export interface TrustRule {
  prefix: string;
  /** The file that declared it, for messages. */
  declaredIn: string;
  /** Public key files (absolute paths) and their PEM text. */
  keys: { path: string; pem: string }[];
}

export interface DeclaredRule {
  prefix: string;
  declaredIn: string;
  keyPaths: string[];
}

function invalid(file: string, why: string): OcipkgError {
  return new OcipkgError('EINPUT', `${file}: invalid "trust" section: ${why}`);
}

/** The rules of one `trust` object; key paths made absolute against `base`. */
export function parseTrust(section: unknown, file: string, base: string): DeclaredRule[] {
  if (section === undefined) return [];
  if (typeof section !== 'object' || section === null || Array.isArray(section)) throw invalid(file, 'not an object');
  return Object.entries(section as Record<string, unknown>).map(([prefix, rule]) => {
    const keys = (rule as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => typeof k === 'string' && k !== '')) {
      throw invalid(file, `"${prefix}" needs "keys": a non-empty list of public key files`);
    }
    return { prefix, declaredIn: file, keyPaths: (keys as string[]).map((key) => resolve(base, key)) };
  });
}

/** `$OCIPKG_CONFIG_DIR/policy.json`, the machine's own rules; none when there is no such file. */
function machineRules(): DeclaredRule[] {
  const file = join(configDir(), 'policy.json');
  if (!statSync(file, { throwIfNoEntry: false })?.isFile()) return [];
  let doc: { trust?: unknown };
  try {
    doc = JSON.parse(readFileSync(file, 'utf8')) as { trust?: unknown };
  } catch {
    throw new OcipkgError('EINPUT', `${file}: not valid JSON`);
  }
  return parseTrust(doc?.trust, file, dirname(file));
}

function covers(prefix: string, repository: string): boolean {
  return prefix === '*' || repository === prefix || repository.startsWith(`${prefix.replace(/\/+$/, '')}/`);
}

/** The rule that covers `image` (a registry reference), with its keys read; undefined when none does. */
export function trustRuleFor(image: string, project: Project | undefined): TrustRule | undefined {
  const ref = parseReference(image);
  if (ref.kind !== 'registry') return undefined;
  const repository = repositoryOf(ref);
  const rules = [...(project?.trust ?? []), ...machineRules()];
  let best: DeclaredRule | undefined;
  for (const rule of rules) {
    if (!covers(rule.prefix, repository)) continue;
    const length = rule.prefix === '*' ? 0 : rule.prefix.length;
    const bestLength = best === undefined ? -1 : best.prefix === '*' ? 0 : best.prefix.length;
    if (length > bestLength) best = rule;
  }
  if (!best) return undefined;
  const keys = best.keyPaths.map((path) => {
    try {
      return { path, pem: readFileSync(path, 'utf8') };
    } catch {
      throw new OcipkgError('EINPUT', `${best!.declaredIn}: trusted key ${path} for "${best!.prefix}" cannot be read`);
    }
  });
  return { prefix: best.prefix, declaredIn: best.declaredIn, keys };
}

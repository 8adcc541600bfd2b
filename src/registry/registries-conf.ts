import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { OcipkgError, errno } from '../errors.js';
import { canonicalReference, parseReference, type RegistryReference } from '../reference.js';

/**
 * containers-registries.conf(5), version 2, read as containers/image reads it (the facts of
 * pkg/sysregistriesv2; the v1 format and short-name aliases are not read):
 *   - the file is $CONTAINERS_REGISTRIES_CONF, else ~/.config/containers/registries.conf when it
 *     exists, else /etc/containers/registries.conf;
 *   - then the `*.conf` drop-ins of /etc/containers/registries.conf.d and of
 *     ~/.config/containers/registries.conf.d (only the latter beside the per-user file), in name
 *     order; a drop-in's `[[registry]]` replaces an earlier one with the same prefix;
 *   - the `[[registry]]` whose prefix matches a reference longest decides where it is pulled from.
 */

export type PullFromMirror = 'all' | 'digest-only' | 'tag-only';

export interface MirrorEntry {
  location: string;
  insecure: boolean;
  pullFromMirror: PullFromMirror;
}

export interface RegistryEntry {
  prefix: string;
  /** Where the prefix is rewritten to; empty only for a `*.domain` prefix (the reference as is). */
  location: string;
  insecure: boolean;
  blocked: boolean;
  /** The legacy registry-wide `mirror-by-digest-only`. */
  mirrorByDigestOnly: boolean;
  mirrors: MirrorEntry[];
  /** The file that defined it, for messages. */
  file: string;
}

/** One place a pull may be served from: a mirror, or the (possibly rewritten) primary. */
export interface PullEndpoint {
  registry: string;
  repository: string;
  insecure: boolean;
  mirror: boolean;
}

const SYSTEM_FILE = '/etc/containers/registries.conf';
const SYSTEM_DIR = '/etc/containers/registries.conf.d';

function invalid(file: string, why: string): OcipkgError {
  return new OcipkgError('EINPUT', `${file}: ${why}`);
}

/** The main file (and whether it must exist) and the drop-in directories, as containers/image picks them. */
function configSources(): { file: string; required: boolean; dirs: string[] } {
  const home = process.env.HOME || homedir();
  const userFile = join(home, '.config', 'containers', 'registries.conf');
  const userDir = join(home, '.config', 'containers', 'registries.conf.d');
  const override = process.env.CONTAINERS_REGISTRIES_CONF;
  if (override) return { file: override, required: true, dirs: [SYSTEM_DIR, userDir] };
  // A per-user file replaces the system's configuration, drop-ins included.
  if (existsSync(userFile)) return { file: userFile, required: false, dirs: [userDir] };
  return { file: SYSTEM_FILE, required: false, dirs: [SYSTEM_DIR, userDir] };
}

function readToml(file: string, required: boolean): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (!required && (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR')) return undefined;
    throw new OcipkgError('EINPUT', `cannot read registries configuration ${file}: ${errno(err) ?? String(err)}`, { cause: err });
  }
  try {
    return parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new OcipkgError('EINPUT', `${file} is not valid TOML: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
}

function dropIns(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir, { withFileTypes: true }).filter((e) => !e.isDirectory() && e.name.endsWith('.conf')).map((e) => e.name);
  } catch (err) {
    if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return [];
    throw new OcipkgError('EINPUT', `cannot read ${dir}: ${errno(err) ?? String(err)}`, { cause: err });
  }
  return names.sort().map((name) => join(dir, name));
}

function field<T>(table: Record<string, unknown>, key: string, type: 'string' | 'boolean', fallback: T, file: string): T {
  const value = table[key];
  if (value === undefined) return fallback;
  if (typeof value !== type) throw invalid(file, `"${key}" must be a ${type}`);
  return value as T;
}

/** A location or prefix without trailing slashes; a URL scheme is refused, as containers/image does. */
function parseLocation(value: string, file: string): string {
  const trimmed = value.replace(/\/+$/, '');
  if (/^https?:\/\//.test(trimmed)) throw invalid(file, `location "${value}": URI schemes are not supported`);
  return trimmed;
}

function parseMirror(raw: unknown, prefix: string, byDigestOnly: boolean, file: string): MirrorEntry {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid(file, `a mirror of "${prefix}" is not a table`);
  const table = raw as Record<string, unknown>;
  const location = parseLocation(field(table, 'location', 'string', '', file), file);
  if (location === '') throw invalid(file, `a mirror of "${prefix}" has no location`);
  const pull = field<string>(table, 'pull-from-mirror', 'string', '', file);
  if (pull !== '' && byDigestOnly) {
    throw invalid(file, `"${prefix}" sets mirror-by-digest-only and its mirror ${location} sets pull-from-mirror; use one of them`);
  }
  if (pull !== '' && pull !== 'all' && pull !== 'digest-only' && pull !== 'tag-only') {
    throw invalid(file, `pull-from-mirror "${pull}" of mirror ${location} is not all, digest-only or tag-only`);
  }
  const pullFromMirror: PullFromMirror = byDigestOnly ? 'digest-only' : ((pull || 'all') as PullFromMirror);
  return { location, insecure: field(table, 'insecure', 'boolean', false, file), pullFromMirror };
}

function parseRegistry(raw: unknown, file: string): RegistryEntry {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid(file, '[[registry]] is not a table');
  const table = raw as Record<string, unknown>;
  const location = parseLocation(field(table, 'location', 'string', '', file), file);
  let prefix = parseLocation(field(table, 'prefix', 'string', '', file), file);
  if (prefix === '') {
    if (location === '') throw invalid(file, 'a [[registry]] sets neither prefix nor location');
    prefix = location;
  } else if (location === '' && !prefix.startsWith('*.')) {
    throw invalid(file, `[[registry]] "${prefix}" has no location (only a "*.domain" prefix may leave it out)`);
  }
  if (table['pull-from-mirror'] !== undefined) throw invalid(file, `pull-from-mirror belongs to a mirror, not to [[registry]] "${prefix}"`);
  const mirrorByDigestOnly = field(table, 'mirror-by-digest-only', 'boolean', false, file);
  const mirrorsRaw = table.mirror ?? [];
  if (!Array.isArray(mirrorsRaw)) throw invalid(file, `the mirrors of "${prefix}" must be [[registry.mirror]] tables`);
  return {
    prefix,
    location,
    insecure: field(table, 'insecure', 'boolean', false, file),
    blocked: field(table, 'blocked', 'boolean', false, file),
    mirrorByDigestOnly,
    mirrors: mirrorsRaw.map((m) => parseMirror(m, prefix, mirrorByDigestOnly, file)),
    file,
  };
}

/** A file's `[[registry]]` tables; within one file the first of a prefix wins (as containers/image keeps it). */
function registriesIn(doc: Record<string, unknown>, file: string): RegistryEntry[] {
  const raw = doc.registry ?? [];
  if (!Array.isArray(raw)) throw invalid(file, '"registry" must be an array of [[registry]] tables');
  const seen = new Set<string>();
  const entries: RegistryEntry[] = [];
  for (const entry of raw.map((r) => parseRegistry(r, file))) {
    if (seen.has(entry.prefix)) continue;
    seen.add(entry.prefix);
    entries.push(entry);
  }
  return entries;
}

let loaded: RegistryEntry[] | undefined;

/** Every `[[registry]]` in force, read once per process. */
export function registriesConf(): RegistryEntry[] {
  if (loaded) return loaded;
  const { file, required, dirs } = configSources();
  const byPrefix = new Map<string, RegistryEntry>();
  const main = readToml(file, required);
  for (const entry of main ? registriesIn(main, file) : []) byPrefix.set(entry.prefix, entry);
  for (const dropIn of dirs.flatMap(dropIns)) {
    const doc = readToml(dropIn, false);
    for (const entry of doc ? registriesIn(doc, dropIn) : []) byPrefix.set(entry.prefix, entry);
  }
  loaded = [...byPrefix.values()];
  return loaded;
}

/** Forgets the configuration read (tests change the files between pulls in one process). */
export function forgetRegistriesConf(): void {
  loaded = undefined;
}

/**
 * How much of `ref` (`host/path[:tag][@digest]`) a prefix matches: the prefix whole, ending where a
 * path component, tag or digest does; a `*.domain` prefix matches any subdomain's references.
 * -1 when it does not match.
 */
export function prefixMatch(ref: string, prefix: string): number {
  if (prefix.startsWith('*.')) {
    const domain = prefix.slice(1);
    const at = ref.indexOf(domain);
    if (at < 0 || ref.slice(0, at).includes('/')) return -1;
    const end = at + domain.length;
    return end === ref.length || ':/@'.includes(ref[end]!) ? end : -1;
  }
  if (ref === prefix) return prefix.length;
  return ref.startsWith(prefix) && ':/@'.includes(ref[prefix.length] ?? 'x') ? prefix.length : -1;
}

/** The `[[registry]]` whose prefix matches `ref` longest, if any. */
export function findRegistry(entries: RegistryEntry[], ref: string): { entry: RegistryEntry; length: number } | undefined {
  let best: { entry: RegistryEntry; length: number } | undefined;
  for (const entry of entries) {
    const length = prefixMatch(ref, entry.prefix);
    if (length >= 0 && (best === undefined || length > best.length)) best = { entry, length };
  }
  return best;
}

function rewrite(location: string, rest: string, entry: RegistryEntry): RegistryReference {
  const rewritten = `${location}${rest}`;
  try {
    const ref = parseReference(rewritten);
    if (ref.kind === 'registry') return ref;
  } catch (err) {
    throw new OcipkgError('EINPUT', `${entry.file}: [[registry]] "${entry.prefix}" rewrites to "${rewritten}", which is not an image reference`, { cause: err });
  }
  throw new OcipkgError('EINPUT', `${entry.file}: [[registry]] "${entry.prefix}" rewrites to "${rewritten}", which is not a registry`);
}

/**
 * Where a pull of `ref` goes, in order: the mirrors its `[[registry]]` lists (those whose
 * pull-from-mirror admits a reference by digest, or by tag, as `ref` is), then the primary at its
 * `location`. Without a matching `[[registry]]`, the reference's own registry alone. A blocked
 * registry is refused.
 */
export function pullEndpoints(ref: RegistryReference, entries: RegistryEntry[] = registriesConf()): PullEndpoint[] {
  const name = canonicalReference(ref);
  const found = findRegistry(entries, name);
  if (!found) return [{ registry: ref.registry, repository: ref.repository, insecure: false, mirror: false }];
  const { entry, length } = found;
  if (entry.blocked) throw new OcipkgError('EDENIED', `${name}: registry "${entry.prefix}" is blocked in ${entry.file}`);
  const rest = name.slice(length);
  const byDigest = ref.digest !== undefined;
  const endpoints: PullEndpoint[] = [];
  for (const mirror of entry.mirrors) {
    if (mirror.pullFromMirror === (byDigest ? 'tag-only' : 'digest-only')) continue;
    const at = rewrite(mirror.location, rest, entry);
    endpoints.push({ registry: at.registry, repository: at.repository, insecure: mirror.insecure, mirror: true });
  }
  const primary = entry.location === '' ? ref : rewrite(entry.location, rest, entry);
  endpoints.push({ registry: primary.registry, repository: primary.repository, insecure: entry.insecure, mirror: false });
  return endpoints;
}

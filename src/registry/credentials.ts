import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { configDir } from '../dirs.js';
import { OcipkgError, errno } from '../errors.js';
import { DOCKER_HUB } from '../reference.js';

/**
 * Where credentials for a registry come from, first match wins:
 *   1. ocipkg's own auth file (written by `ocipkg login`),
 *   2. $REGISTRY_AUTH_FILE (the containers tools' override),
 *   3. $XDG_RUNTIME_DIR/containers/auth.json (podman, skopeo, buildah),
 *   4. docker's config.json: `credHelpers`, then `auths`, then `credsStore`.
 * All four share docker's `{"auths": {HOST: {"auth": base64("user:pass")}}}` shape, so skopeo and
 * podman can read ocipkg's file too (`--authfile`).
 */

export interface Credentials {
  username: string;
  password: string;
  /** An OAuth2 refresh token (docker's `identitytoken`), exchanged at the token realm. */
  identityToken?: string;
  /** Where they were found (a file, a credential helper named in one), for the error that refuses them. */
  from?: string;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface AuthFile {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [other: string]: unknown;
}

/** Docker spells Docker Hub's key as its v1 URL, and passes that to credential helpers. */
const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';
const HELPER_TIMEOUT_MS = 60_000;

export function ocipkgAuthFile(): string {
  return join(configDir(), 'auth.json');
}

function dockerConfigFile(): string {
  return join(process.env.DOCKER_CONFIG || join(homedir(), '.docker'), 'config.json');
}

/**
 * The registry a key in `auths` or `credHelpers` names. Docker's legacy keys are URLs
 * (`https://index.docker.io/v1/`); bare keys must be a host alone. Podman also allows
 * `host/namespace` keys scoped to some repositories; those are skipped rather than applied to the
 * whole registry.
 */
export function keyRegistry(key: string): string | undefined {
  let host = key.toLowerCase();
  const scheme = /^https?:\/\//.exec(host);
  if (scheme) host = host.slice(scheme[0].length).split('/')[0] ?? '';
  else if (host.includes('/')) return undefined;
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? DOCKER_HUB : host;
}

function lookup<T>(map: Record<string, T> | undefined, registry: string): T | undefined {
  if (!map) return undefined;
  const exact = map[registry];
  if (exact !== undefined) return exact;
  for (const [key, value] of Object.entries(map)) {
    if (keyRegistry(key) === registry) return value;
  }
  return undefined;
}

async function readAuthFile(path: string): Promise<AuthFile | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return undefined;
    throw new OcipkgError('ECREDENTIALS', `cannot read credentials file ${path}: ${errno(err) ?? String(err)}`, { cause: err });
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as AuthFile;
  } catch (err) {
    throw new OcipkgError('ECREDENTIALS', `credentials file ${path} is not valid JSON`, { cause: err });
  }
}

function fromEntry(entry: AuthEntry, registry: string, path: string): Credentials | undefined {
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) {
      throw new OcipkgError('ECREDENTIALS', `credentials for ${registry} in ${path} are not base64 "user:password"`);
    }
    return withToken({ username: decoded.slice(0, colon), password: decoded.slice(colon + 1) }, entry.identitytoken);
  }
  if (entry.username !== undefined && entry.password !== undefined) {
    return withToken({ username: entry.username, password: entry.password }, entry.identitytoken);
  }
  if (entry.identitytoken) return { username: '', password: '', identityToken: entry.identitytoken };
  // An empty entry: docker writes `{}` as a marker when a credsStore holds the secret.
  return undefined;
}

function withToken(creds: Credentials, identityToken: string | undefined): Credentials {
  return identityToken ? { ...creds, identityToken } : creds;
}

/** Docker's rule for helper names: with a `/` the program would be a path, run relative to wherever ocipkg runs. */
const HELPER_NAME = /^[A-Za-z0-9._-]+$/;

/** The program a helper name stands for, refusing names that would be paths. */
function helperProgram(name: string, registry: string, path: string): string {
  if (!HELPER_NAME.test(name)) {
    throw new OcipkgError('ECREDENTIALS', `${path}: credential helper name ${JSON.stringify(name)} for ${registry} is not a plain name (letters, digits, . _ -)`);
  }
  return `docker-credential-${name}`;
}

/** The server name a helper is told: docker's key for Docker Hub, else the host. */
const helperServer = (registry: string) => (registry === DOCKER_HUB ? DOCKER_HUB_KEY : registry);

/** Runs `docker-credential-NAME ACTION` with `input` on stdin, as docker does. */
async function runHelper(program: string, action: 'get' | 'store' | 'erase', input: string, registry: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolve, reject) => {
      // child_process is fetched here: only a registry with a credential helper needs it.
      const { spawn } = process.getBuiltinModule('node:child_process');
      const child = spawn(program, [action], { stdio: ['pipe', 'pipe', 'pipe'], timeout: HELPER_TIMEOUT_MS });
      let out = '';
      let err = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
      child.on('error', (e) => {
        const why = errno(e) === 'ENOENT' ? 'is not on PATH' : `failed to start: ${errno(e) ?? String(e)}`;
        reject(new OcipkgError('ECREDENTIALS', `credential helper ${program} for ${registry} ${why}`, { cause: e }));
      });
      child.on('close', (c) => resolve({ code: c, stdout: out, stderr: err }));
      child.stdin.on('error', () => {
        // A helper that exits without reading stdin; its exit status tells the story.
      });
      child.stdin.end(input);
    },
  );
}

/** Runs `docker-credential-NAME get` with the server on stdin, as docker does. */
async function fromHelper(name: string, registry: string, path: string): Promise<Credentials | undefined> {
  const program = helperProgram(name, registry, path);
  const { code, stdout, stderr } = await runHelper(program, 'get', helperServer(registry), registry);
  if (code !== 0) {
    // The helper protocol's way of saying "nothing stored for this server".
    if (/credentials not found/i.test(stdout + stderr)) return undefined;
    const detail = (stderr.trim() || stdout.trim()).split('\n')[0] ?? '';
    throw new OcipkgError('ECREDENTIALS', `credential helper ${program} failed for ${registry} (exit ${code}): ${detail}`);
  }
  let reply: { Username?: unknown; Secret?: unknown };
  try {
    reply = JSON.parse(stdout) as typeof reply;
  } catch (err) {
    throw new OcipkgError('ECREDENTIALS', `credential helper ${program} printed no JSON for ${registry}`, { cause: err });
  }
  if (typeof reply.Secret !== 'string' || reply.Secret === '') return undefined;
  const username = typeof reply.Username === 'string' ? reply.Username : '';
  const from = `credential helper ${program} (configured in ${path})`;
  // Helpers store OAuth refresh tokens under the pseudo-user `<token>`.
  if (username === '<token>') return { username: '', password: '', identityToken: reply.Secret, from };
  return { username, password: reply.Secret, from };
}

async function fromFile(path: string, registry: string): Promise<Credentials | undefined> {
  const file = await readAuthFile(path);
  if (!file) return undefined;
  const helper = lookup(file.credHelpers, registry);
  if (helper) return fromHelper(helper, registry, path);
  const entry = lookup(file.auths, registry);
  const found = entry && fromEntry(entry, registry, path);
  if (found) return { ...found, from: path };
  if (file.credsStore) return fromHelper(file.credsStore, registry, path);
  return undefined;
}

/** The files searched, in order; unset variables drop their file. */
export function credentialFiles(): string[] {
  const runtime = process.env.XDG_RUNTIME_DIR;
  return [
    ocipkgAuthFile(),
    ...(process.env.REGISTRY_AUTH_FILE ? [process.env.REGISTRY_AUTH_FILE] : []),
    ...(runtime ? [join(runtime, 'containers', 'auth.json')] : []),
    dockerConfigFile(),
  ];
}

/** Credentials for a registry (`host[:port]`, `docker.io` for Docker Hub), or undefined. */
export async function findCredentials(registry: string): Promise<Credentials | undefined> {
  const host = registry.toLowerCase();
  for (const path of credentialFiles()) {
    const found = await fromFile(path, host);
    if (found) return found;
  }
  return undefined;
}

/** A credential helper a file configures for a registry: `credHelpers` for it, else `credsStore`. */
export interface ConfiguredHelper {
  program: string;
  /** The file that names it. */
  file: string;
}

/**
 * The helper `ocipkg login` stores credentials with, as docker login does: the one ocipkg's own
 * auth file names for the registry, else docker's config.json's. None: ocipkg's auth file.
 */
export async function configuredHelper(registry: string): Promise<ConfiguredHelper | undefined> {
  for (const path of [ocipkgAuthFile(), dockerConfigFile()]) {
    const file = await readAuthFile(path);
    const name = file && (lookup(file.credHelpers, registry) ?? file.credsStore);
    if (name) return { program: helperProgram(name, registry, path), file: path };
  }
  return undefined;
}

/**
 * `docker-credential-NAME store` (or `erase`, given no credentials): false when there was nothing to
 * erase; a failure is one line naming the helper and its message.
 */
export async function helperWrite(helper: ConfiguredHelper, registry: string, creds: Credentials | undefined): Promise<boolean> {
  const server = helperServer(registry);
  const input = creds ? JSON.stringify({ ServerURL: server, Username: creds.username, Secret: creds.password }) : server;
  const { code, stdout, stderr } = await runHelper(helper.program, creds ? 'store' : 'erase', input, registry);
  if (code === 0) return true;
  // Erasing what is not there is no failure: logout is idempotent.
  if (!creds && /credentials not found/i.test(stdout + stderr)) return false;
  const detail = (stderr.trim() || stdout.trim()).split('\n')[0] ?? '';
  throw new OcipkgError('ECREDENTIALS', `credential helper ${helper.program} (configured in ${helper.file}) failed to ${creds ? 'store' : 'erase'} credentials for ${registry} (exit ${code}): ${detail}`);
}

/** Replaces ocipkg's auth file in one rename, readable by its owner only (mode 0600). */
async function writeOcipkgAuthFile(file: AuthFile): Promise<void> {
  const path = ocipkgAuthFile();
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const staging = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(staging, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    await rename(staging, path);
  } catch (err) {
    await rm(staging, { force: true });
    throw new OcipkgError('ECREDENTIALS', `cannot write credentials file ${path}: ${errno(err) ?? String(err)}`, { cause: err });
  }
}

export async function saveCredentials(registry: string, creds: Credentials): Promise<void> {
  const file = (await readAuthFile(ocipkgAuthFile())) ?? {};
  const auths = { ...file.auths };
  for (const key of Object.keys(auths)) if (keyRegistry(key) === registry) delete auths[key];
  auths[registry] = { auth: Buffer.from(`${creds.username}:${creds.password}`).toString('base64') };
  await writeOcipkgAuthFile({ ...file, auths });
}

/** Removes a registry's entry from ocipkg's auth file; false when there was none. */
export async function removeCredentials(registry: string): Promise<boolean> {
  const file = await readAuthFile(ocipkgAuthFile());
  const auths = { ...file?.auths };
  const keys = Object.keys(auths).filter((key) => key === registry || keyRegistry(key) === registry);
  if (!file || keys.length === 0) return false;
  for (const key of keys) delete auths[key];
  await writeOcipkgAuthFile({ ...file, auths });
  return true;
}

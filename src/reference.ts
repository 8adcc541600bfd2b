import { OcipkgError } from './errors.js';
import { isDigest } from './oci/digest.js';

/**
 * Image references, following the distribution project's grammar:
 *
 *   reference := name [ ":" tag ] [ "@" digest ]
 *   name      := [ domain "/" ] component ( "/" component )*
 *   domain    := host [ ":" port ]     host: DNS name, IPv4, or "[" IPv6 "]"
 *
 * A first component is a domain when it contains "." or ":", is "localhost", or has uppercase
 * letters (which repository names may not); otherwise the name is on Docker Hub, where a
 * single-component name lives under `library/`. `oci:PATH[:TAG]` names an OCI image layout
 * directory instead of a registry, as skopeo spells it; skopeo's `docker://` before a registry
 * reference is accepted and dropped. An oci-archive is a file, not a reference: commands that read
 * one take its path, with or without skopeo's `oci-archive:` (see archivePath).
 */
export interface RegistryReference {
  kind: 'registry';
  /** Normalised registry host[:port], e.g. `docker.io`, `127.0.0.1:5000`. */
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

export interface LayoutReference {
  kind: 'oci';
  path: string;
  tag?: string;
  digest?: string;
}

export type ImageReference = RegistryReference | LayoutReference;

export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_API = 'registry-1.docker.io';

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const HOST_LABEL = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const IPV6 = /^\[[0-9a-fA-F:.]+\]$/;
const MAX_NAME = 255;

function bad(input: string, why: string): OcipkgError {
  return new OcipkgError('EREFERENCE', `invalid image reference "${input}": ${why}`);
}

function checkDomain(input: string, domain: string): void {
  let host = domain;
  const port = /^(.*?)(?::(\d+))?$/.exec(domain);
  if (port && !IPV6.test(domain)) host = port[1] ?? domain;
  if (domain.startsWith('[')) {
    const m = /^(\[[^\]]+\])(?::(\d+))?$/.exec(domain);
    if (!m || !IPV6.test(m[1]!)) throw bad(input, `"${domain}" is not a valid registry host`);
    return;
  }
  if (host === '' || !host.split('.').every((label) => HOST_LABEL.test(label))) {
    throw bad(input, `"${domain}" is not a valid registry host`);
  }
  if (domain.includes(':') && !/:\d{1,5}$/.test(domain)) {
    throw bad(input, `"${domain}" has an invalid port`);
  }
}

function splitTagDigest(input: string, rest: string): { name: string; tag?: string; digest?: string } {
  let name = rest;
  let digest: string | undefined;
  const at = name.indexOf('@');
  if (at >= 0) {
    digest = name.slice(at + 1);
    name = name.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(input, `"${digest}" is not a digest`);
    if (digest.startsWith('sha256:') && !isDigest(digest)) {
      throw bad(input, `"${digest}" is not a sha256 digest (64 lowercase hex digits)`);
    }
  }
  let tag: string | undefined;
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
    if (!TAG.test(tag)) throw bad(input, `"${tag}" is not a valid tag`);
  }
  return { name, ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) };
}

export const DOCKER_TRANSPORT = 'docker://';
export const ARCHIVE_TRANSPORT = 'oci-archive:';

/** References parsed so far, by input: see parseReference. */
const parsed = new Map<string, ImageReference>();

/**
 * Parsed once per input and process: ocipkg-link parses each image about five times, and V8
 * compiles a regular expression to machine code on its second run (measured: ~0.15 ms of a warm
 * ocipkg-link's ~3). Each caller gets its own copy.
 */
export function parseReference(input: string): ImageReference {
  let ref = parsed.get(input);
  if (ref === undefined) {
    ref = parseUncached(input);
    parsed.set(input, ref);
  }
  return { ...ref };
}

function parseUncached(input: string): ImageReference {
  if (input.startsWith(DOCKER_TRANSPORT)) return parseUncached(input.slice(DOCKER_TRANSPORT.length));
  if (input.startsWith('oci:')) return parseLayoutReference(input);
  if (input.startsWith(ARCHIVE_TRANSPORT)) throw bad(input, 'an oci-archive is a file: `ocipkg load ARCHIVE` puts it in the store, `ocipkg push ARCHIVE` sends it to a registry');
  if (input === '') throw bad(input, 'empty');
  if (/\s/.test(input)) throw bad(input, 'contains whitespace');
  const { name, tag, digest } = splitTagDigest(input, input);
  if (name === '') throw bad(input, 'missing repository name');

  const slash = name.indexOf('/');
  let registry = DOCKER_HUB;
  let repository = name;
  if (slash >= 0) {
    const first = name.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      checkDomain(input, first);
      registry = first.toLowerCase();
      repository = name.slice(slash + 1);
    }
  }
  if (registry === 'index.docker.io' || registry === DOCKER_HUB_API) registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;

  if (repository !== repository.toLowerCase()) {
    throw bad(input, 'repository names must be lowercase');
  }
  for (const component of repository.split('/')) {
    if (!COMPONENT.test(component)) {
      throw bad(input, `"${component}" is not a valid path component (lowercase letters, digits and . _ - separators)`);
    }
  }
  if (registry.length + 1 + repository.length > MAX_NAME) {
    throw bad(input, `name is longer than ${MAX_NAME} characters`);
  }
  return { kind: 'registry', registry, repository, ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) };
}

/** `oci:PATH[:TAG|@DIGEST]`; the last `:` starts a tag only if no `/` follows it. */
function parseLayoutReference(input: string): LayoutReference {
  let rest = input.slice('oci:'.length);
  let digest: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0 && /^sha256:/.test(rest.slice(at + 1))) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw bad(input, `"${digest}" is not a sha256 digest`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0 && !rest.slice(colon).includes('/') && !/^[a-zA-Z]$/.test(rest.slice(0, colon))) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(input, `"${tag}" is not a valid tag`);
  }
  if (rest === '') throw bad(input, 'missing layout directory path');
  return { kind: 'oci', path: rest, ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) };
}

/** The file an archive argument names: `PATH` or skopeo's `oci-archive:PATH`. */
export function archivePath(input: string): string {
  return input.startsWith(ARCHIVE_TRANSPORT) ? input.slice(ARCHIVE_TRANSPORT.length) : input;
}

/** The tag or digest to resolve: the digest wins, then the tag, then `latest`. */
export function tagOrDigest(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

/** The repository (or layout directory) a reference names, without tag or digest. */
export function repositoryOf(ref: ImageReference): string {
  return ref.kind === 'oci' ? `oci:${ref.path}` : `${ref.registry}/${ref.repository}`;
}

export function formatReference(ref: ImageReference): string {
  return `${repositoryOf(ref)}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** Like `formatReference`, with `:latest` filled in when neither tag nor digest was given. */
export function canonicalReference(ref: ImageReference): string {
  if (ref.tag === undefined && ref.digest === undefined) return formatReference({ ...ref, tag: 'latest' });
  return formatReference(ref);
}

/** The host to talk HTTP to: Docker Hub's API is not served at docker.io. */
export function registryApiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

let loopbackAddresses: import('node:net').BlockList | undefined;

/**
 * True for every literal spelling of this machine, with or without a port: `localhost` and
 * `*.localhost` (RFC 6761 keeps them on loopback), with or without a trailing dot, in any case;
 * 127.0.0.0/8, ::1, and the unspecified 0.0.0.0 and :: (connecting to either reaches this
 * machine), in every form the WHATWG URL parser and node:net read as those addresses (`127.1`,
 * `0x7f.1`, `[0:0:0:0:0:0:0:1]`, `[::ffff:127.0.0.1]`). A name that merely resolves to this
 * machine (an /etc/hosts entry, a DNS record) cannot be told without a lookup, and is not.
 * node:net is loaded on first use only: the warm path never asks.
 */
export function isLoopbackRegistry(registry: string): boolean {
  let host: string;
  try {
    host = new URL(`http://${registry}`).hostname;
  } catch {
    return false;
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  const net = process.getBuiltinModule('node:net');
  const address = host.startsWith('[') ? host.slice(1, -1) : host;
  const family = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : undefined;
  if (family === undefined) return false;
  if (!loopbackAddresses) {
    loopbackAddresses = new net.BlockList();
    loopbackAddresses.addSubnet('127.0.0.0', 8, 'ipv4');
    loopbackAddresses.addAddress('0.0.0.0', 'ipv4');
    loopbackAddresses.addAddress('::1', 'ipv6');
    loopbackAddresses.addAddress('::', 'ipv6');
  }
  // An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is checked against the IPv4 rules.
  return loopbackAddresses.check(address, family);
}

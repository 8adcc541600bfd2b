import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { connect as netConnect, isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
// undici's index loads all of undici (fetch, WebSocket, mocks, caches), and its cookie module reads
// globalThis.Headers, which makes Node load its own bundled copy of undici as well (~12 MiB and tens
// of ms before the first request): the parts used here are required alone, and given the request
// methods (`request`, and `connect`, which the proxy agent tunnels with) as the index gives them.
import Agent from 'undici/lib/dispatcher/agent.js';
import DispatcherBase from 'undici/lib/dispatcher/dispatcher.js';
import EnvHttpProxyAgent from 'undici/lib/dispatcher/env-http-proxy-agent.js';
import api from 'undici/lib/api/index.js';

Object.assign(DispatcherBase.prototype, api);
import { OcipkgError, errno, type ErrorCode } from '../errors.js';
import { readAll } from '../oci/manifest.js';
import { isLoopbackRegistry, registryApiHost } from '../reference.js';

/**
 * The HTTP transport under the registry client: the process's undici dispatchers (proxy, CA,
 * timeouts), which scheme each registry speaks, bounded retries, and the mapping of network
 * failures and HTTP statuses to OcipkgError codes. It knows nothing of authentication.
 */

export type HttpMethod = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

export interface HttpRequest {
  method: HttpMethod;
  url: URL;
  headers?: Record<string, string>;
  body?: Uint8Array | Readable;
}

export type HttpResponse = Dispatcher.ResponseData;

/** An unreachable registry must fail within seconds, not after the OS's minutes-long SYN retries. */
const CONNECT_TIMEOUT_MS = 10_000;
/**
 * OCIPKG_TIMEOUT (seconds): how long a response may keep ocipkg waiting, for its headers and between
 * two pieces of its body. A stalled server then fails (and is retried like a dropped connection)
 * instead of hanging a build.
 */
const DEFAULT_IDLE_TIMEOUT_S = 30;
/** A request is tried at most this many times in a row without progress... */
const MAX_ATTEMPTS = 5;
/** ...and a run of failures is given up once retrying would reach past this, Retry-After included. */
const RETRY_BUDGET_MS = 60_000;
/**
 * OCIPKG_RETRY_BASE_MS: the first backoff delay, doubled at each retry. Tests set it low so that
 * injected faults cost milliseconds.
 */
const DEFAULT_RETRY_BASE_MS = 250;
/** Enough of an error body to read the registry's error code; the rest is not worth holding. */
const MAX_ERROR_BODY = 64 * 1024;

/** A positive (or, with `zero`, non-negative) number from the environment, else the default. */
function numberFromEnv(name: string, fallback: number, zero = false): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || (value === 0 && !zero)) {
    throw new OcipkgError('EUSAGE', `${name} must be a ${zero ? 'non-negative' : 'positive'} number, got "${raw}"`);
  }
  return value;
}

function idleTimeoutMs(): number {
  return numberFromEnv('OCIPKG_TIMEOUT', DEFAULT_IDLE_TIMEOUT_S) * 1000;
}

/**
 * Node's `ca` option replaces the trusted roots instead of adding to them, so an extra CA means
 * passing the bundled roots, NODE_EXTRA_CA_CERTS (which Node would otherwise add itself) and the
 * file together. Without OCIPKG_CA_FILE Node's defaults apply untouched.
 */
function extraCa(): string[] | undefined {
  const file = process.env.OCIPKG_CA_FILE;
  if (!file) return undefined;
  const read = (path: string, variable: string): string => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new OcipkgError('EINPUT', `cannot read ${variable} ${path}: ${errno(err) ?? String(err)}`, { cause: err });
    }
  };
  const node = process.env.NODE_EXTRA_CA_CERTS;
  return [...rootCertificates, ...(node ? [read(node, 'NODE_EXTRA_CA_CERTS')] : []), read(file, 'OCIPKG_CA_FILE')];
}

let proxied: Dispatcher | undefined;
let direct: Dispatcher | undefined;

function agentOptions(): Agent.Options & { requestTls?: object; proxyTls?: object } {
  const ca = extraCa();
  const idle = idleTimeoutMs();
  const tls = { timeout: CONNECT_TIMEOUT_MS, ...(ca && { ca }) };
  // Through a proxy undici dials the proxy with `proxyTls` and the registry with `requestTls`.
  return { connect: tls, requestTls: tls, proxyTls: tls, headersTimeout: idle, bodyTimeout: idle };
}

/**
 * The dispatcher for a URL. Loopback hosts bypass any proxy (as Go's HTTP client does): a proxy
 * cannot reach this machine's loopback, and test registries live there.
 */
export function dispatcherFor(url: URL): Dispatcher {
  if (isLoopbackRegistry(url.host)) {
    direct ??= new Agent(agentOptions());
    return direct;
  }
  // EnvHttpProxyAgent reads HTTP(S)_PROXY / NO_PROXY in either case.
  proxied ??= new EnvHttpProxyAgent(agentOptions());
  return proxied;
}

/**
 * Drops the process's dispatchers and closes their connections; the next request makes new ones,
 * reading OCIPKG_CA_FILE, OCIPKG_TIMEOUT and the proxy variables again. No CLI needs it (undici
 * does not hold a process open for idle keep-alive sockets): the tests do, after changing those
 * variables and before stopping a registry the dispatchers still have connections to.
 */
export async function closeDispatchers(): Promise<void> {
  const open = [proxied, direct].filter((d): d is Dispatcher => d !== undefined);
  proxied = direct = undefined;
  await Promise.all(open.map((d) => d.close()));
}

/** undici's `request(url, options)`, through the dispatcher for `url`. */
function request(url: URL, options: { method: HttpMethod; headers?: Record<string, string>; body?: Uint8Array | Readable }): Promise<HttpResponse> {
  return dispatcherFor(url).request({ ...options, origin: url.origin, path: `${url.pathname}${url.search}` });
}

/** Endpoints registries.conf marks `insecure` (see registry/mirrors.ts): spoken to as OCIPKG_INSECURE_REGISTRIES are. */
const insecureEndpoints = new Set<string>();

export function allowPlainHttp(registry: string): void {
  insecureEndpoints.add(registry.toLowerCase());
}

function insecureRegistries(): string[] {
  return (process.env.OCIPKG_INSECURE_REGISTRIES ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '');
}

const schemes = new Map<string, Promise<'https:' | 'http:'>>();

/**
 * `https://HOST` or `http://HOST` for a registry. HTTPS everywhere, except registries listed in
 * OCIPKG_INSECURE_REGISTRIES, and loopback registries whose server does not speak TLS at all: those
 * are probed once (as docker does for localhost) and fall back to plain HTTP only when the server
 * does not answer a TLS hello in TLS. A loopback server that speaks TLS is spoken to in HTTPS,
 * verified as any registry is: one with a bad certificate is an ETLS error at the first request.
 * The decision is remembered for the process.
 *
 * (Asking /v2/ in plain HTTP first was measured and dropped: the peak memory of a cold get of
 * 500 MiB rose from 77 to 92 MiB.)
 */
export async function registryOrigin(registry: string): Promise<string> {
  const host = registryApiHost(registry);
  let scheme = schemes.get(registry);
  if (!scheme) {
    scheme = chooseScheme(registry, host);
    schemes.set(registry, scheme);
    // A failed probe (registry down) is not a decision; the next call probes again.
    scheme.catch(() => schemes.delete(registry));
  }
  return `${await scheme}//${host}`;
}

async function chooseScheme(registry: string, host: string): Promise<'https:' | 'http:'> {
  if (insecureRegistries().includes(registry) || insecureEndpoints.has(registry)) return 'http:';
  if (!isLoopbackRegistry(registry)) return 'https:';
  const url = new URL(`https://${host}/v2/`);
  // A registry starting up (connection refused) is retried like any request: the probe is one.
  const backoff = new Backoff();
  for (;;) {
    try {
      return (await speaksTls(url)) ? 'https:' : 'http:';
    } catch (err) {
      const delay = isTransient(err) ? backoff.next() : undefined;
      if (delay === undefined) throw transportError(err, url, registry, Math.max(backoff.failures, 1));
      await sleep(delay);
    }
  }
}

/** The content types a TLS record may start with in answer to a hello: a handshake, or an alert. */
const TLS_ANSWERS = new Set([0x16, 0x15]);

/**
 * A TLS 1.2 ClientHello (RFC 5246 7.4.1.2: common suites, groups and signature algorithms, and the
 * server's name unless it is an address, as SNI allows), then an empty line. A TLS server answers
 * the hello with a TLS record; an HTTP server, which reads lines, finds the end of a malformed
 * request there and answers with an error.
 */
function clientHello(host: string): Buffer {
  const u16 = (n: number) => [n >> 8, n & 0xff];
  const list = (items: number[]) => [...u16(items.length * 2), ...items.flatMap(u16)];
  const extension = (type: number, data: number[]) => [...u16(type), ...u16(data.length), ...data];
  const name = [...Buffer.from(host, 'ascii')];
  const extensions = [
    ...(isIP(host) ? [] : extension(0x0000, [...u16(name.length + 3), 0, ...u16(name.length), ...name])), // server_name
    ...extension(0x000a, list([0x001d, 0x0017, 0x0018])), // supported_groups: x25519, P-256, P-384
    ...extension(0x000b, [1, 0]), // ec_point_formats: uncompressed
    ...extension(0x000d, list([0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601])), // signature_algorithms
  ];
  const suites = list([0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0x009c, 0x009d, 0x002f, 0x0035]);
  const hello = [0x03, 0x03, ...randomBytes(32), 0, ...suites, 1, 0, ...u16(extensions.length), ...extensions];
  const handshake = [0x01, 0, ...u16(hello.length), ...hello];
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01, ...u16(handshake.length), ...handshake]), Buffer.from('\r\n\r\n')]);
}

/**
 * Whether `url`'s server speaks TLS, for the probe: it is sent a TLS hello over plain TCP, and a
 * TLS server answers with a TLS record, where anything else answers otherwise or hangs up. The
 * requests that follow verify the certificate; the probe asks nothing more, so it does without
 * Node's TLS stack, whose handshake and context cost ~1 MiB of a cold get's peak memory for an
 * answer this gives. Loopback servers only: no proxy is in the way.
 */
function speaksTls(url: URL): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const socket = netConnect({ host, port: Number(url.port || 443) });
    let connected = false;
    const settle = (answer: boolean | Error) => {
      socket.destroy();
      if (answer instanceof Error) reject(answer);
      else resolve(answer);
    };
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => settle(Object.assign(new Error('TLS probe timed out'), { code: 'ETIMEDOUT' })));
    socket.once('connect', () => {
      connected = true;
      socket.write(clientHello(host));
    });
    socket.once('data', (chunk: Buffer) => settle(TLS_ANSWERS.has(chunk[0]!)));
    socket.once('end', () => settle(false));
    // Connected, then reset: a server that took the hello for garbage. Not connected: a failure to
    // reach it, retried as any request's.
    socket.once('error', (err) => settle(connected ? false : err));
  });
}

const TLS_CODE = /^(?:ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH|EPROTO)/;

/** The first system error code in an error, its cause chain, or an AggregateError's members. */
function rootCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 5; depth++) {
    const code = errno(e);
    if (code) return code;
    if (e instanceof AggregateError && e.errors.length > 0) e = e.errors[0];
    else e = (e as { cause?: unknown } | null)?.cause;
  }
  return undefined;
}

/**
 * Maps a failure to get a response, or the rest of one, to EUNREACHABLE, ETLS or EBADSIZE. The
 * message names the path (repository and digest; never the query, which may hold a presigned
 * URL's signature) and, after retries, how many attempts failed.
 */
export function transportError(err: unknown, url: URL, registry: string, attempts = 1): OcipkgError {
  if (err instanceof OcipkgError) return err;
  const code = rootCode(err) ?? 'unknown';
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') {
    return new OcipkgError('EBADSIZE', `upload to ${url.host} for registry ${registry}: body size differs from the descriptor's`, { cause: err });
  }
  if (code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') {
    return new OcipkgError('EBADSIZE', `${url.host}${url.pathname} (registry ${registry}) sent a body that differs from its Content-Length`, { cause: err });
  }
  const host = url.host === registryApiHost(registry) ? `registry ${registry}` : `${url.host} (for registry ${registry})`;
  const where = url.pathname === '/v2/' ? host : `${host} for ${url.pathname}`;
  if (TLS_CODE.test(code)) {
    const detail = err instanceof Error ? err.message.split('\n')[0] : code;
    return new OcipkgError(
      'ETLS',
      `TLS with ${where} failed: ${detail} (${code}); set OCIPKG_CA_FILE to a PEM file with the registry's CA if it uses a private one`,
      { cause: err },
    );
  }
  const why: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ENOTFOUND: 'host name not found (DNS)',
    EAI_AGAIN: 'DNS lookup failed temporarily',
    ETIMEDOUT: 'connection timed out',
    UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
    UND_ERR_HEADERS_TIMEOUT: 'no response in time (OCIPKG_TIMEOUT)',
    UND_ERR_BODY_TIMEOUT: 'response stalled (OCIPKG_TIMEOUT)',
    ECONNRESET: 'connection reset',
    UND_ERR_SOCKET: 'connection closed by the server',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
  };
  const tries = attempts > 1 ? `; gave up after ${attempts} attempts` : '';
  return new OcipkgError('EUNREACHABLE', `cannot reach ${where}: ${why[code] ?? code}${tries}`, { cause: err });
}

/** Failures that say nothing about the request itself: the connection or the server had a moment. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'UND_ERR_SOCKET',
  'EPIPE',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);
const IDEMPOTENT = new Set<HttpMethod>(['GET', 'HEAD', 'PUT', 'DELETE']);

/** Whether a transport failure (no response, or a body cut short) is worth another try. */
export function isTransient(err: unknown): boolean {
  return !(err instanceof OcipkgError) && TRANSIENT_CODES.has(rootCode(err) ?? '');
}

/**
 * Statuses that mean "not now": the request may succeed as it is a moment later. Other 5xx (501
 * Not Implemented, 505...) would answer the same again.
 */
const TRANSIENT_STATUSES = new Set([408, 429, 500, 502, 503, 504]);

export function isTransientStatus(status: number): boolean {
  return TRANSIENT_STATUSES.has(status);
}

/** Retry-After as a delay: delta-seconds or an HTTP date. */
function retryAfterMs(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return undefined;
  const seconds = Number(value);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(value) - Date.now();
  return Number.isFinite(ms) ? Math.max(ms, 0) : undefined;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * When to try again after a run of consecutive failures: exponential backoff with jitter (so that
 * many clients knocked over together do not come back together), or what Retry-After asks. A run
 * ends after MAX_ATTEMPTS tries or once the next try would start past RETRY_BUDGET_MS from its
 * first failure; progress (a resumed download that got bytes) starts a new run.
 */
export class Backoff {
  private failed = 0;
  private deadline: number | undefined;

  /** Failed tries in the current run. */
  get failures(): number {
    return this.failed;
  }

  /** Counts a failure; the delay before the next try, or undefined when it is time to give up. */
  next(retryAfter?: string | string[]): number | undefined {
    this.failed++;
    const now = Date.now();
    this.deadline ??= now + RETRY_BUDGET_MS;
    if (this.failed >= MAX_ATTEMPTS) return undefined;
    const exponential = numberFromEnv('OCIPKG_RETRY_BASE_MS', DEFAULT_RETRY_BASE_MS, true) * 2 ** (this.failed - 1);
    // Half fixed, half random: always some pause, never in lockstep with other clients.
    const delay = retryAfterMs(retryAfter) ?? exponential / 2 + Math.random() * (exponential / 2);
    return now + delay > this.deadline ? undefined : delay;
  }

  progressed(): void {
    this.failed = 0;
    this.deadline = undefined;
  }
}

/** Responses returned after retries ran out, with why, for statusError's message. */
const exhausted = new WeakMap<HttpResponse, string>();

/**
 * Sends one request and returns the response whatever its status. Idempotent requests whose body
 * can be replayed (none, or bytes in memory) are retried with backoff on a transient failure
 * (reset, refused, timeout, 408, 429, 5xx); a streamed body cannot be replayed and is sent once.
 * Redirects are returned, not followed: whether credentials may go along is the caller's decision.
 */
export async function send(req: HttpRequest, registry: string): Promise<HttpResponse> {
  const replayable = IDEMPOTENT.has(req.method) && (req.body === undefined || req.body instanceof Uint8Array);
  const backoff = new Backoff();
  for (;;) {
    let res: HttpResponse;
    try {
      res = await request(req.url, { method: req.method, headers: req.headers, body: req.body });
    } catch (err) {
      if (!replayable || !isTransient(err)) throw transportError(err, req.url, registry);
      const delay = backoff.next();
      if (delay === undefined) throw transportError(err, req.url, registry, backoff.failures);
      await sleep(delay);
      continue;
    }
    if (!replayable || !isTransientStatus(res.statusCode)) return res;
    const retryAfter = res.headers['retry-after'];
    const delay = backoff.next(retryAfter);
    if (delay === undefined) {
      const asked = retryAfter === undefined ? '' : ` (it asked to retry after ${String(retryAfter)})`;
      exhausted.set(res, `; gave up after ${backoff.failures} attempt${backoff.failures === 1 ? '' : 's'}${asked}`);
      return res;
    }
    await res.body.dump();
    await sleep(delay);
  }
}

/**
 * Drops a response without reading its body. undici's body, destroyed unread, emits an abort error;
 * nobody is left to care, so it is swallowed rather than left to crash the process.
 */
export function discard(res: HttpResponse): void {
  res.body.on('error', () => {});
  res.body.destroy();
}

/** A response body read whole; a Content-Length over `max` is refused before reading anything. */
export async function readBody(res: HttpResponse, max: number, what: string): Promise<Buffer> {
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) {
    discard(res);
    throw new OcipkgError('ETOOLARGE', `${what} is ${declared} bytes, over the ${max}-byte limit`);
  }
  return readAll(res.body, max, what);
}

/** The registry's own error code (`MANIFEST_UNKNOWN`, `DENIED`, ...) from a JSON errors body. */
async function registryErrorCode(res: HttpResponse): Promise<string | undefined> {
  try {
    const body = JSON.parse((await readBody(res, MAX_ERROR_BODY, 'error body')).toString('utf8')) as {
      errors?: Array<{ code?: unknown }>;
    };
    const code = body.errors?.[0]?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    // Not JSON, or too long: the status alone has to do.
    return undefined;
  }
}

/**
 * The error for an unexpected status. `what` names the request's subject, e.g.
 * `manifest 127.0.0.1:5000/acme/zstd:1.0`; `registry` is who to log in to on a 401.
 */
export async function statusError(res: HttpResponse, what: string, registry: string): Promise<OcipkgError> {
  const status = res.statusCode;
  const code = res.body ? await registryErrorCode(res) : undefined;
  const suffix = code ? ` (${code})` : '';
  const byStatus: Record<number, [ErrorCode, string]> = {
    401: ['EAUTH', `${registry} requires authentication for ${what}${suffix}; run \`ocipkg login ${registry}\``],
    403: ['EDENIED', `access to ${what} denied by ${registry}${suffix}`],
    404: ['ENOTFOUND', `${what} not found${suffix}`],
  };
  const [errorCode, message] = byStatus[status] ?? ['EREGISTRY', `${registry} answered ${status} for ${what}${suffix}${exhausted.get(res) ?? ''}`];
  return new OcipkgError(errorCode, message);
}

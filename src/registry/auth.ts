import { OcipkgError } from '../errors.js';
import { isLoopbackRegistry } from '../reference.js';
import { findCredentials, type Credentials } from './credentials.js';
import { readBody, registryOrigin, send, statusError, type HttpRequest, type HttpResponse } from './http.js';

/**
 * Registry authentication (the distribution spec's token flow and HTTP Basic): parses challenges,
 * fetches and caches bearer tokens per scope set, and follows redirects itself so that credentials
 * only ever go to the registry's own origin and to the token realm it names.
 */

export interface Challenge {
  /** Lowercased: `bearer`, `basic`, ... */
  scheme: string;
  /** Parameter names lowercased, values unquoted. */
  params: Record<string, string>;
  /** The token68 form (`Negotiate abc==`), for schemes that use one. */
  token68?: string;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*(?=[ \t]*(?:,|$))/;

/**
 * Parses a WWW-Authenticate value (RFC 9110 §11.6.1): several comma-separated challenges, each a
 * scheme followed by a token68 or by `name=value` parameters whose values may be quoted strings with
 * commas and backslash escapes. A parameter list ends where a token is not followed by `=`: that
 * token is the next challenge's scheme.
 */
export function parseWwwAuthenticate(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let pos = 0;
  const skip = (chars: RegExp) => {
    while (pos < header.length && chars.test(header[pos]!)) pos++;
  };
  const token = (): string => {
    const start = pos;
    while (pos < header.length && TCHAR.test(header[pos]!)) pos++;
    return header.slice(start, pos);
  };
  const quoted = (): string => {
    let value = '';
    pos++; // opening quote
    while (pos < header.length && header[pos] !== '"') {
      if (header[pos] === '\\' && pos + 1 < header.length) pos++;
      value += header[pos++];
    }
    pos++; // closing quote (or past the end of a truncated header)
    return value;
  };

  while (pos < header.length) {
    skip(/[\s,]/);
    const scheme = token();
    if (scheme === '') {
      // Not a token: skip the stray character rather than loop on it.
      if (pos < header.length) pos++;
      continue;
    }
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    skip(/[ \t]/);
    const t68 = TOKEN68.exec(header.slice(pos));
    if (t68) {
      challenge.token68 = t68[0];
      pos += t68[0].length;
      continue;
    }
    for (;;) {
      skip(/[\s,]/);
      const start = pos;
      const name = token();
      skip(/[ \t]/);
      if (name === '' || header[pos] !== '=') {
        pos = start;
        break;
      }
      pos++;
      skip(/[ \t]/);
      challenge.params[name.toLowerCase()] = header[pos] === '"' ? quoted() : token();
    }
  }
  return challenges;
}

/** The scope a repository operation needs: `pull` for reads, `pull,push` for writes. */
export function repositoryScope(repository: string, access: 'pull' | 'pull,push'): string {
  return `repository:${repository}:${access}`;
}

interface CachedToken {
  value: string;
  expiresAt: number;
}

export interface AuthRequest extends HttpRequest {
  /** Token scopes the request needs, e.g. `repository:acme/zstd:pull`; none for `/v2/`. */
  scopes: string[];
}

const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** The distribution token spec's default when a token response has no `expires_in`. */
const DEFAULT_TOKEN_SECONDS = 60;
/** Refresh a little early so a token does not expire between the check and the request. */
const TOKEN_MARGIN_MS = 5_000;
const MAX_TOKEN_RESPONSE = 1024 * 1024;

function basic(creds: Credentials): string {
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
}

/**
 * What one process knows about one registry's authentication: which scheme it asked for, the
 * credentials (looked up once, only when the registry first asks), and bearer tokens by scope set.
 */
export class RegistrySession {
  private scheme: 'basic' | 'bearer' | undefined;
  private bearer: { realm: string; service?: string } | undefined;
  private readonly tokens = new Map<string, CachedToken>();
  private credentials: Promise<Credentials | undefined> | undefined;

  /** `credentials` given explicitly (by `login`) replace the lookup in credentials files. */
  constructor(
    readonly registry: string,
    credentials?: Credentials,
  ) {
    if (credentials) this.credentials = Promise.resolve(credentials);
  }

  /** Found credentials are kept; a miss or failure is not, so a later `login` elsewhere is seen. */
  private async lookupCredentials(): Promise<Credentials | undefined> {
    this.credentials ??= findCredentials(this.registry);
    try {
      const found = await this.credentials;
      if (!found) this.credentials = undefined;
      return found;
    } catch (err) {
      this.credentials = undefined;
      throw err;
    }
  }

  /**
   * Sends a request to the registry with whatever authorization it needs, answering one 401
   * challenge (a cached token that was refused is fetched afresh) and following GET/HEAD redirects.
   * Returns the final response whatever its status; a second 401 is the caller's EAUTH, except
   * that Basic credentials found in a file and refused fail here, naming the file.
   */
  async send(req: AuthRequest): Promise<HttpResponse> {
    const origin = await registryOrigin(this.registry);
    let authorization = await this.authorization(req.scopes, false);
    let res = await this.sendFollowing(req, origin, authorization);
    if (res.statusCode !== 401) return res;
    if (authorization !== undefined && this.scheme === 'basic') await this.refusedBasic(res);

    const challenges = parseWwwAuthenticate(String(res.headers['www-authenticate'] ?? ''));
    // A streamed body is spent; Basic credentials already sent would only be refused again.
    const streamed = req.body !== undefined && !(req.body instanceof Uint8Array);
    const sentBasic = authorization !== undefined && this.scheme === 'basic';
    if (!this.learn(challenges) || streamed || (sentBasic && this.scheme === 'basic')) return res;
    const extraScopes = challenges.find((c) => c.scheme === 'bearer')?.params.scope?.split(' ') ?? [];
    authorization = await this.authorization(req.scopes, true, extraScopes);
    if (authorization === undefined) return res;
    await res.body.dump();
    res = await this.sendFollowing(req, origin, authorization);
    if (res.statusCode === 401 && this.scheme === 'basic') await this.refusedBasic(res);
    return res;
  }

  /** A 401 to Basic credentials found in a file: an EAUTH naming the file (login's own credentials name none). */
  private async refusedBasic(res: HttpResponse): Promise<void> {
    const creds = await this.credentials;
    if (creds?.from === undefined) return;
    await res.body.dump();
    throw new OcipkgError('EAUTH', `${this.registry} refused the credentials of user "${creds.username}" from ${creds.from}; run \`ocipkg login ${this.registry}\``);
  }

  /** Records the scheme a 401 asked for; false when ocipkg cannot answer any of its challenges. */
  private learn(challenges: Challenge[]): boolean {
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    if (bearer) {
      this.scheme = 'bearer';
      this.bearer = {
        realm: bearer.params.realm!,
        ...(bearer.params.service !== undefined && { service: bearer.params.service }),
      };
      return true;
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      this.scheme = 'basic';
      return true;
    }
    return false;
  }

  /** The Authorization header for a request, or undefined when none is known to be needed. */
  private async authorization(scopes: string[], fresh: boolean, extraScopes: string[] = []): Promise<string | undefined> {
    if (this.scheme === 'basic') {
      const creds = await this.lookupCredentials();
      return creds && !creds.identityToken ? basic(creds) : undefined;
    }
    if (this.scheme !== 'bearer') return undefined;
    const key = [...new Set(scopes)].sort().join(' ');
    const cached = this.tokens.get(key);
    if (!fresh && cached && cached.expiresAt > Date.now()) return `Bearer ${cached.value}`;
    const token = await this.fetchToken([...new Set([...scopes, ...extraScopes])]);
    this.tokens.set(key, token);
    return `Bearer ${token.value}`;
  }

  /**
   * Asks the challenge's realm for a token: a GET with Basic credentials (or none, anonymously), or,
   * with an identity token, the OAuth2 refresh-token POST that docker uses for those.
   */
  private async fetchToken(scopes: string[]): Promise<CachedToken> {
    const { realm, service } = this.bearer!;
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new OcipkgError('EREGISTRY', `${this.registry} named an invalid token realm "${realm}"`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new OcipkgError('EREGISTRY', `${this.registry} named a token realm that is not HTTP(S): ${url.origin}`);
    }
    const creds = await this.lookupCredentials();
    if (creds && url.protocol === 'http:' && !isLoopbackRegistry(url.host) && !(await registryOrigin(this.registry)).startsWith('http:')) {
      throw new OcipkgError('EAUTH', `refusing to send credentials for ${this.registry} to plain-HTTP token realm ${url.origin}`);
    }

    let req: HttpRequest;
    if (creds?.identityToken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'ocipkg' });
      if (service !== undefined) form.set('service', service);
      if (scopes.length > 0) form.set('scope', scopes.join(' '));
      req = {
        method: 'POST',
        url,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: Buffer.from(form.toString()),
      };
    } else {
      if (service !== undefined) url.searchParams.set('service', service);
      for (const scope of scopes) url.searchParams.append('scope', scope);
      req = { method: 'GET', url, headers: creds ? { authorization: basic(creds) } : {} };
    }
    // The token endpoint is told apart from the registry in messages; it never gets redirects followed.
    const res = await send(req, this.registry);
    const what = `a token for ${scopes.length > 0 ? scopes.join(' ') : this.registry} from ${url.origin}`;
    if (res.statusCode !== 200) {
      const err = await statusError(res, what, this.registry);
      if (res.statusCode !== 401 && res.statusCode !== 403) throw err;
      const refused = creds ? `refused the credentials${creds.from !== undefined ? ` from ${creds.from}` : ''}` : 'requires authentication';
      throw new OcipkgError('EAUTH', `${this.registry} ${refused} for ${what}; run \`ocipkg login ${this.registry}\``, { cause: err });
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse((await readBody(res, MAX_TOKEN_RESPONSE, what)).toString('utf8')) as typeof body;
    } catch (err) {
      throw new OcipkgError('EREGISTRY', `${url.origin} sent an unreadable token response for ${this.registry}`, { cause: err });
    }
    const value = typeof body.token === 'string' && body.token !== '' ? body.token : body.access_token;
    if (typeof value !== 'string' || value === '') {
      throw new OcipkgError('EREGISTRY', `${url.origin} sent a token response without a token for ${this.registry}`);
    }
    const seconds = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_SECONDS;
    return { value, expiresAt: Date.now() + seconds * 1000 - TOKEN_MARGIN_MS };
  }

  /**
   * One request plus the redirects of a GET or HEAD (blobs are often served from a CDN). The
   * Authorization header goes only to the registry's origin, never to another one.
   */
  private async sendFollowing(req: AuthRequest, origin: string, authorization: string | undefined): Promise<HttpResponse> {
    let url = req.url;
    for (let hop = 0; ; hop++) {
      const headers = { ...req.headers };
      if (authorization !== undefined && url.origin === origin) headers.authorization = authorization;
      const res = await send({ ...req, url, headers }, this.registry);
      const location = res.headers.location;
      const follow = REDIRECTS.has(res.statusCode) && (req.method === 'GET' || req.method === 'HEAD');
      if (!follow || typeof location !== 'string') return res;
      if (hop === MAX_REDIRECTS) {
        await res.body.dump();
        throw new OcipkgError('EREGISTRY', `${this.registry} redirected ${req.url.pathname} more than ${MAX_REDIRECTS} times`);
      }
      await res.body.dump();
      url = new URL(location, url);
    }
  }
}

const sessions = new Map<string, RegistrySession>();

/** The process's session for a registry, so tokens and credentials are shared by every client. */
export function sessionFor(registry: string): RegistrySession {
  let session = sessions.get(registry);
  if (!session) {
    session = new RegistrySession(registry);
    sessions.set(registry, session);
  }
  return session;
}

/** Forgets what was learnt about a registry (after `login`/`logout` change its credentials). */
export function forgetSession(registry: string): void {
  sessions.delete(registry);
}

import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, randomUUID, sign } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './registry.js';

/**
 * A real token service for distribution's `auth: token`: it checks Basic credentials, grants `pull`
 * to anyone (or, with `anonymous: false`, refuses requests without credentials) and `push` to the
 * users listed, and signs RS256 JWTs with a throwaway key whose
 * self-signed certificate the registry trusts (`rootcertbundle`; the cert travels in the `x5c`
 * header). Every request and every token it issues is recorded for the tests to inspect.
 */
export interface TokenRequest {
  user: string | undefined;
  scopes: string[];
  service: string | null;
}

export interface TokenServer {
  /** `http://127.0.0.1:PORT/token` */
  realm: string;
  /** The YAML for the registry's config (pass as `extraConfig` to startRegistry). */
  registryConfig: string;
  requests: TokenRequest[];
  /** Every token handed out, so tests can look for them in output. */
  issued: string[];
  /**
   * How long the registry should accept the next tokens issued. The response always claims 300 s,
   * so a client caches the token and only learns of its expiry from a 401 mid-operation.
   */
  lifetimeSeconds: number;
  stop(): Promise<void>;
}

const ISSUER = 'ocipkg-test-issuer';
const SERVICE = 'ocipkg-test';
/**
 * distribution 2.8 adds 60 s of leeway to a token's `exp` (for clock skew); a token meant to live
 * `n` seconds therefore gets `exp = now + n - 60`.
 */
const REGISTRY_LEEWAY_SECONDS = 60;

export async function startTokenServer(users: Record<string, string>, options: { anonymous?: boolean } = {}): Promise<TokenServer> {
  const dir = await mkdtemp(join(tmpdir(), 'ocipkg-token-'));
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath,
    '-days', '1', '-subj', '/CN=ocipkg test token issuer'], { stdio: 'ignore' });
  const key = createPrivateKey(await readFile(keyPath));
  const certDer = new X509Certificate(await readFile(certPath)).raw.toString('base64');
  const b64url = (data: string | Buffer) => Buffer.from(data).toString('base64url');

  const requests: TokenRequest[] = [];
  const issued: string[] = [];
  const state = { lifetimeSeconds: 300 };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://token');
    const header = req.headers.authorization ?? '';
    let user: string | undefined;
    let password: string | undefined;
    if (header.startsWith('Basic ')) {
      const decoded = Buffer.from(header.slice(6), 'base64').toString();
      const colon = decoded.indexOf(':');
      [user, password] = [decoded.slice(0, colon), decoded.slice(colon + 1)];
    }
    const scopes = url.searchParams.getAll('scope');
    requests.push({ user, scopes, service: url.searchParams.get('service') });
    if (user === undefined ? options.anonymous === false : users[user] !== password) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
      return;
    }
    const access = scopes.map((scope) => {
      const [type, name, actions] = scope.split(':');
      const wanted = (actions ?? '').split(',');
      return { type, name, actions: wanted.filter((a) => a === 'pull' || (a === 'push' && user !== undefined)) };
    });
    const now = Math.floor(Date.now() / 1000);
    const head = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', x5c: [certDer] }));
    const claims = b64url(JSON.stringify({
      iss: ISSUER, sub: user ?? '', aud: SERVICE, exp: now + state.lifetimeSeconds - REGISTRY_LEEWAY_SECONDS,
      nbf: now - 10, iat: now, jti: randomUUID(), access,
    }));
    const token = `${head}.${claims}.${b64url(sign('sha256', Buffer.from(`${head}.${claims}`), key))}`;
    issued.push(token);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: token, expires_in: 300 }));
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const realm = `http://127.0.0.1:${port}/token`;
  return {
    realm,
    registryConfig: ['auth:', '  token:', `    realm: ${realm}`, `    service: ${SERVICE}`, `    issuer: ${ISSUER}`,
      `    rootcertbundle: ${certPath}`].join('\n'),
    requests,
    issued,
    get lifetimeSeconds() {
      return state.lifetimeSeconds;
    },
    set lifetimeSeconds(value: number) {
      state.lifetimeSeconds = value;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

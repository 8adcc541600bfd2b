import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryRepository } from '../src/registry/client.js';
import { ocipkg, tempDir, type RunResult } from './helpers/cli.js';
import { startConnectProxy, type ConnectProxy } from './helpers/connect-proxy.js';
import { codeOf } from './helpers/errors.js';
import { debianPrefix } from './helpers/prefix.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { createTestCa, startTlsRegistry, type TestCa } from './helpers/tls.js';

/**
 * HTTPS registries with a private CA, and pulls through an HTTP(S) proxy, all through the CLI.
 *
 * Proxy use is proven by addressing registries by names no DNS resolves (`*.ocipkg.test`): only the
 * CONNECT proxy, which maps those names to 127.0.0.1, can reach them. Loopback registries addressed
 * as 127.0.0.1 or localhost bypass the proxy on purpose, as docker, skopeo and Go's HTTP client do
 * (a proxy cannot reach this machine's loopback); NO_PROXY applies to every other host.
 */
const TLS_NAME = 'registry.ocipkg.test';
const PLAIN_NAME = 'plain.ocipkg.test';

let ca: TestCa;
let tls: TestRegistry;
let plain: TestRegistry;
let proxy: ConnectProxy;
let work: string;
let archive: string;
let tlsPort: string;
let plainPort: string;

/**
 * A clean environment: no proxies or CAs inherited from the machine, credentials isolated. Unset
 * rather than empty (spawn drops undefined values): undici prefers a set-but-empty `https_proxy`
 * over `HTTPS_PROXY`.
 */
function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    HTTPS_PROXY: undefined, https_proxy: undefined, HTTP_PROXY: undefined, http_proxy: undefined, NO_PROXY: undefined,
    no_proxy: undefined, OCIPKG_CA_FILE: undefined, NODE_EXTRA_CA_CERTS: undefined, OCIPKG_INSECURE_REGISTRIES: undefined,
    OCIPKG_CONFIG_DIR: join(work, 'config'), DOCKER_CONFIG: join(work, 'docker'), XDG_RUNTIME_DIR: join(work, 'run'),
    ...extra,
  };
}

async function get(image: string, extra: NodeJS.ProcessEnv): Promise<RunResult> {
  return ocipkg(['get', image], env({ OCIPKG_DATA_DIR: await tempDir('store'), ...extra }));
}

function expectInstalled(result: RunResult): void {
  expect(result.code, result.stderr).toBe(0);
  expect(existsSync(join(result.stdout.trim(), 'lib', 'liblz4.a'))).toBe(true);
}

/** One line on stderr, nothing on stdout, and the exit status of the failure's kind (4: unreachable or TLS). */
function expectOneLine(result: RunResult, status = 4): void {
  expect(result.code).toBe(status);
  expect(result.stdout).toBe('');
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
}

beforeAll(async () => {
  work = await tempDir('tls-proxy');
  ca = await createTestCa([TLS_NAME, 'localhost', '127.0.0.1']);
  [tls, plain, proxy] = await Promise.all([
    startTlsRegistry(ca),
    startRegistry(),
    startConnectProxy({ [TLS_NAME]: '127.0.0.1', [PLAIN_NAME]: '127.0.0.1' }),
  ]);
  tlsPort = tls.host.split(':')[1]!;
  plainPort = plain.host.split(':')[1]!;
  archive = join(work, 'lz4.tar');
  const prefix = await debianPrefix(join(work, 'prefix'), 'lz4', ['lz4.h']);
  expect((await ocipkg(['pack', prefix, archive, '-t', 'example.invalid/acme/lz4:1'], env())).code).toBe(0);
  const pushed = await ocipkg(['push', archive, `${tls.host}/acme/lz4:1`], env({ OCIPKG_CA_FILE: ca.caCert }));
  expect(pushed.code, pushed.stderr).toBe(0);
  expect((await ocipkg(['push', archive, `${plain.host}/acme/lz4:1`], env())).code).toBe(0);
});

afterAll(async () => {
  await Promise.all([tls?.stop(), plain?.stop(), proxy?.stop()]);
});

describe('an HTTPS registry with a certificate from a private CA', () => {
  it('is refused by default, in one line that names OCIPKG_CA_FILE, and nothing is installed', async () => {
    const store = await tempDir('store');
    const result = await ocipkg(['get', `${tls.host}/acme/lz4:1`], env({ OCIPKG_DATA_DIR: store }));
    expectOneLine(result);
    expect(result.stderr).toContain('OCIPKG_CA_FILE');
    expect(existsSync(join(store, 'packages'))).toBe(false);
  });

  it('on 127.0.0.1 is an ETLS error, never a retry over plain HTTP', async () => {
    // A plain-HTTP attempt would reach the TLS listener and be answered 400: EREGISTRY, not ETLS.
    expect(await codeOf(new RegistryRepository(tls.host, 'acme/lz4').resolve('1'))).toBe('ETLS');
  });

  it('is accepted with OCIPKG_CA_FILE naming the CA', async () => {
    expectInstalled(await get(`${tls.host}/acme/lz4:1`, { OCIPKG_CA_FILE: ca.caCert }));
  });

  it('is accepted with NODE_EXTRA_CA_CERTS naming the CA', async () => {
    expectInstalled(await get(`${tls.host}/acme/lz4:1`, { NODE_EXTRA_CA_CERTS: ca.caCert }));
  });

  it('is accepted with both set (OCIPKG_CA_FILE adds to NODE_EXTRA_CA_CERTS, not replaces it)', async () => {
    const other = await createTestCa(['unrelated.ocipkg.test']);
    expectInstalled(await get(`${tls.host}/acme/lz4:1`, { OCIPKG_CA_FILE: other.caCert, NODE_EXTRA_CA_CERTS: ca.caCert }));
    expectInstalled(await get(`${tls.host}/acme/lz4:1`, { OCIPKG_CA_FILE: ca.caCert, NODE_EXTRA_CA_CERTS: other.caCert }));
  });

  it('is refused when the certificate does not name the host, even with the CA trusted', async () => {
    const result = await get(`127.0.0.2:${tlsPort}/acme/lz4:1`, { OCIPKG_CA_FILE: ca.caCert });
    expectOneLine(result);
  });

  it('is not trusted because some other registry is listed as insecure', async () => {
    const result = await get(`${tls.host}/acme/lz4:1`, { OCIPKG_INSECURE_REGISTRIES: `${plain.host},other.example:5000` });
    expectOneLine(result);
    expect(result.stderr).toContain('OCIPKG_CA_FILE');
  });
});

describe('proxies from the environment', () => {
  it('HTTPS_PROXY carries an HTTPS pull through a CONNECT tunnel', async () => {
    proxy.tunnels.length = 0;
    expectInstalled(await get(`${TLS_NAME}:${tlsPort}/acme/lz4:1`, { HTTPS_PROXY: proxy.url, OCIPKG_CA_FILE: ca.caCert }));
    expect(proxy.tunnels.length).toBeGreaterThan(0);
    expect(new Set(proxy.tunnels)).toEqual(new Set([`${TLS_NAME}:${tlsPort}`]));
  });

  it('https_proxy (lower case) works the same', async () => {
    proxy.tunnels.length = 0;
    expectInstalled(await get(`${TLS_NAME}:${tlsPort}/acme/lz4:1`, { https_proxy: proxy.url, OCIPKG_CA_FILE: ca.caCert }));
    expect(proxy.tunnels).toContain(`${TLS_NAME}:${tlsPort}`);
  });

  it('the proxy tunnel does not weaken TLS: the registry certificate is still verified', async () => {
    proxy.tunnels.length = 0;
    const result = await get(`${TLS_NAME}:${tlsPort}/acme/lz4:1`, { HTTPS_PROXY: proxy.url });
    expectOneLine(result);
    expect(result.stderr).toContain('OCIPKG_CA_FILE');
    expect(proxy.tunnels).toContain(`${TLS_NAME}:${tlsPort}`);
  });

  it('HTTP_PROXY carries a plain-HTTP registry (listed as insecure) through the proxy', async () => {
    proxy.tunnels.length = 0;
    const host = `${PLAIN_NAME}:${plainPort}`;
    expectInstalled(await get(`${host}/acme/lz4:1`, { HTTP_PROXY: proxy.url, OCIPKG_INSECURE_REGISTRIES: host }));
    expect(new Set(proxy.tunnels)).toEqual(new Set([host]));
  });

  it('NO_PROXY (either case) sends a listed host direct: the proxy sees nothing', async () => {
    for (const variable of ['NO_PROXY', 'no_proxy']) {
      proxy.tunnels.length = 0;
      // Direct, the made-up name does not resolve: proof that the proxy was skipped.
      const result = await get(`${TLS_NAME}:${tlsPort}/acme/lz4:1`, {
        HTTPS_PROXY: proxy.url, OCIPKG_CA_FILE: ca.caCert, [variable]: `example.com,${TLS_NAME}`,
      });
      expectOneLine(result);
      expect(result.stderr).toContain(TLS_NAME);
      expect(proxy.tunnels).toEqual([]);
    }
  });

  it('loopback registries bypass the proxy, as docker and skopeo do', async () => {
    proxy.tunnels.length = 0;
    expectInstalled(await get(`${plain.host}/acme/lz4:1`, { HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url }));
    expectInstalled(await get(`localhost:${tlsPort}/acme/lz4:1`, { HTTPS_PROXY: proxy.url, OCIPKG_CA_FILE: ca.caCert }));
    expect(proxy.tunnels).toEqual([]);
  });
});

describe('requirements', () => {
  it('a package from a registry on the network may not require this machine\'s loopback registry', async () => {
    const local = `${plain.host}/acme/lz4:1`;
    const prefix = await debianPrefix(join(work, 'needs-local'), 'lz4', ['lz4.h'], { 'ocipkg.json': JSON.stringify({ requires: [local] }) });
    const packed = join(work, 'needs-local.tar');
    expect((await ocipkg(['pack', prefix, packed, '-t', 'example.invalid/acme/needs-local:1'], env())).code).toBe(0);
    const remote = `${TLS_NAME}:${tlsPort}/acme/needs-local:1`;
    const viaProxy = { HTTPS_PROXY: proxy.url, OCIPKG_CA_FILE: ca.caCert };
    const pushed = await ocipkg(['push', packed, remote], env(viaProxy));
    expect(pushed.code, pushed.stderr).toBe(0);

    const store = await tempDir('store');
    const refused = await ocipkg(['get', remote], env({ OCIPKG_DATA_DIR: store, ...viaProxy }));
    expectOneLine(refused, 6);
    expect(refused.stderr).toMatch(/requires" names .*127\.0\.0\.1.* a loopback registry, but the package comes from registry\.ocipkg\.test/);
    expect(existsSync(join(store, 'packages'))).toBe(false);

    // Every other spelling of this machine is refused as well.
    const port = plain.host.slice(plain.host.lastIndexOf(':') + 1);
    for (const [i, host] of [`0.0.0.0:${port}`, `[::ffff:127.0.0.1]:${port}`, `127.1:${port}`, `[0:0:0:0:0:0:0:1]:${port}`, `registry.localhost:${port}`].entries()) {
      const spelled = join(work, `needs-local-${i}`);
      const other = await debianPrefix(spelled, 'lz4', ['lz4.h'], { 'ocipkg.json': JSON.stringify({ requires: [`${host}/acme/lz4:1`] }) });
      expect((await ocipkg(['pack', other, `${spelled}.tar`, '-t', `example.invalid/acme/needs-local-${i}:1`], env())).code).toBe(0);
      const image = `${TLS_NAME}:${tlsPort}/acme/needs-local-${i}:1`;
      expect((await ocipkg(['push', `${spelled}.tar`, image], env(viaProxy))).code).toBe(0);
      const result = await ocipkg(['get', image], env({ OCIPKG_DATA_DIR: store, ...viaProxy }));
      expectOneLine(result, 6);
      expect(result.stderr, host).toContain(`names ${host}/acme/lz4:1, a loopback registry`);
    }
    expect(existsSync(join(store, 'packages'))).toBe(false);

    // From loopback itself, the same package may name loopback: it is this machine already.
    expect((await ocipkg(['push', packed, `${plain.host}/acme/needs-local:1`], env())).code).toBe(0);
    expectInstalled(await get(`${plain.host}/acme/needs-local:1`, {}));
  });

  it('a package may require registry images only: pack refuses an oci: path on the consumer\'s machine', async () => {
    for (const [i, required] of ['oci:/etc/ssl:1', 'oci:../secrets'].entries()) {
      const prefix = await debianPrefix(join(work, `needs-oci-${i}`), 'lz4', ['lz4.h'], { 'ocipkg.json': JSON.stringify({ requires: [required] }) });
      const packed = await ocipkg(['pack', prefix, join(work, `needs-oci-${i}.tar`), '-t', 'example.invalid/acme/needs-oci:1'], env());
      expectOneLine(packed, 6);
      expect(packed.stderr).toContain('which is not a registry image reference');
      expect(existsSync(join(work, `needs-oci-${i}.tar`))).toBe(false);
    }
  });
});

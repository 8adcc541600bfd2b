import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, type TestRegistry } from './registry.js';

/** A throwaway certificate authority and one server certificate it signed, as PEM files. */
export interface TestCa {
  dir: string;
  /** The CA's certificate: what OCIPKG_CA_FILE / NODE_EXTRA_CA_CERTS should name. */
  caCert: string;
  serverCert: string;
  serverKey: string;
}

const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });

/**
 * Makes a CA and a server certificate for `names` (DNS names and IP addresses, as subjectAltNames)
 * with the openssl CLI. The server certificate is not self-signed, so trusting it means trusting
 * the CA, as with a company's private CA.
 */
export async function createTestCa(names: string[]): Promise<TestCa> {
  const dir = await mkdtemp(join(tmpdir(), 'ocipkg-ca-'));
  const ca = { dir, caCert: join(dir, 'ca.pem'), serverCert: join(dir, 'server.pem'), serverKey: join(dir, 'server-key.pem') };
  const caKey = join(dir, 'ca-key.pem');
  const csr = join(dir, 'server.csr');
  const ext = join(dir, 'server.ext');
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', ca.caCert, '-days', '1',
    '-subj', '/CN=ocipkg test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', ca.serverKey, '-out', csr, '-subj', `/CN=${names[0]}`]);
  const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  await writeFile(ext, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.caCert, '-CAkey', caKey, '-CAcreateserial', '-out', ca.serverCert,
    '-days', '1', '-extfile', ext]);
  return ca;
}

/**
 * A distribution registry serving HTTPS itself (`http.tls`), on 127.0.0.1. The shared launcher
 * (scripts/registry.mjs) probes over plain HTTP, which a TLS listener answers with 400, so this one
 * starts the binary itself and probes over HTTPS trusting the test CA.
 */
export async function startTlsRegistry(ca: TestCa, extraConfig = ''): Promise<TestRegistry> {
  const root = await mkdtemp(join(tmpdir(), 'ocipkg-registry-tls-'));
  const port = await freePort();
  const configPath = join(root, 'config.yml');
  await writeFile(configPath, [
    'version: 0.1',
    'log:', '  level: warn', '  accesslog:', '    disabled: true',
    'storage:', '  filesystem:', `    rootdirectory: ${join(root, 'data')}`,
    'http:', `  addr: 127.0.0.1:${port}`, '  tls:', `    certificate: ${ca.serverCert}`, `    key: ${ca.serverKey}`,
    extraConfig,
  ].join('\n'));
  // distribution reads REGISTRY_* variables as config overrides; REGISTRY_AUTH_FILE (podman's, set
  // by the suite's global setup) would become a bogus `auth.file` section.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('REGISTRY_')));
  const child = spawn('docker-registry', ['serve', configPath], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-8000)));
  const caPem = await readFile(ca.caCert);
  const up = () =>
    new Promise<boolean>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/v2/', ca: caPem }, (res) => {
        res.resume();
        resolve(res.statusCode === 200 || res.statusCode === 401);
      });
      req.on('error', () => resolve(false));
      req.end();
    });
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await rm(root, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  while (!(await up())) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`docker-registry with TLS did not come up on 127.0.0.1:${port}:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { host: `127.0.0.1:${port}`, url: `https://127.0.0.1:${port}`, root, stop };
}

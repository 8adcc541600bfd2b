import { execFileSync } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from './registry.js';

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

/** A distribution registry serving HTTPS itself (`http.tls`) on 127.0.0.1 with a certificate from `ca`. */
export function startTlsRegistry(ca: TestCa, extraConfig = ''): Promise<TestRegistry> {
  return startRegistry({ extraConfig, tls: { certificate: ca.serverCert, key: ca.serverKey, ca: ca.caCert } });
}

import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';


/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (address && typeof address === 'object' ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

const BINARY = 'docker-registry';

function assertInstalled() {
  const probe = spawnSync(BINARY, ['--version'], { encoding: 'utf8' });
  if (probe.error) {
    throw new Error(`${BINARY} is not installed; the tests need a real registry: apt-get install docker-registry`);
  }
}

/** Whether the registry answers /v2/ (200, or 401 when it wants credentials). */
function answers(url, ca) {
  return new Promise((resolve) => {
    const request = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = request(`${url}/v2/`, { ca }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 || res.statusCode === 401);
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}

async function waitUntilUp(url, ca, child, log) {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${BINARY} exited (${child.exitCode ?? child.signalCode}):\n${log()}`);
    if (await answers(url, ca)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${BINARY} did not come up at ${url}:\n${log()}`);
}

/**
 * Starts a CNCF distribution registry (Debian's `docker-registry`) on 127.0.0.1 with a free port and
 * a temporary root. Used by the tests, the demo and the benchmarks.
 * @param {{ extraConfig?: string, tls?: { certificate: string, key: string, ca: string } }} [options]
 *   extraConfig: YAML appended right after `http.addr` (more `http:` keys, or top-level sections such
 *   as `auth:`); tls: serve HTTPS with this certificate and key, checked against the CA file `ca`
 * @returns {Promise<{ host: string, url: string, root: string, pid: number, stop(): Promise<void> }>}
 */
export async function startRegistry(options = {}) {
  assertInstalled();
  const root = await mkdtemp(join(tmpdir(), 'ocipkg-registry-'));
  const port = await freePort();
  const config = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(root, 'data')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    ...(options.tls ? ['  tls:', `    certificate: ${options.tls.certificate}`, `    key: ${options.tls.key}`] : []),
    options.extraConfig ?? '',
  ].join('\n');
  const configPath = join(root, 'config.yml');
  await writeFile(configPath, config);
  // distribution reads REGISTRY_* variables as overrides of its config (REGISTRY_AUTH_FILE, which
  // podman users set, would turn auth on): start it with none of them.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('REGISTRY_')));
  const child = spawn(BINARY, ['serve', configPath], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr = (stderr + chunk.toString()).slice(-8000);
  });
  const url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  try {
    await waitUntilUp(url, options.tls && (await readFile(options.tls.ca)), child, () => stderr);
  } catch (err) {
    child.kill('SIGKILL');
    await rm(root, { recursive: true, force: true });
    throw err;
  }
  return {
    host: `127.0.0.1:${port}`,
    url,
    root,
    /** The registry's process (the bench counts its CPU time). */
    pid: child.pid,
    /** Idempotent: a registry stopped once (by a test, then by afterAll) is not waited for again. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(root, { recursive: true, force: true });
    },
  };
}

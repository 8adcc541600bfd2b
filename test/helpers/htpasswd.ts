import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';

/**
 * An htpasswd file for the distribution registry's `auth: htpasswd`, which accepts bcrypt hashes
 * only. python3's `crypt` module makes them on Debian 12 (it is gone from Python 3.13).
 */
export async function writeHtpasswd(path: string, users: Record<string, string>): Promise<void> {
  const lines = Object.entries(users).map(([user, password]) => `${user}:${bcrypt(password)}`);
  await writeFile(path, `${lines.join('\n')}\n`);
}

function bcrypt(password: string): string {
  const script = 'import crypt,sys; print(crypt.crypt(sys.stdin.read(), crypt.mksalt(crypt.METHOD_BLOWFISH)))';
  const run = spawnSync('python3', ['-W', 'ignore', '-c', script], { input: password, encoding: 'utf8' });
  const hash = run.stdout?.trim() ?? '';
  if (run.status !== 0 || !hash.startsWith('$2')) {
    throw new Error(`python3 could not make a bcrypt hash (needs the crypt module, Python < 3.13): ${run.stderr ?? run.error}`);
  }
  return hash;
}

/** The registry config section that turns on Basic auth against that file. */
export function htpasswdConfig(path: string): string {
  return ['auth:', '  htpasswd:', '    realm: ocipkg-test', `    path: ${path}`].join('\n');
}

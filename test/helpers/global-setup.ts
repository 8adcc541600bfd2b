import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Keeps the suite away from the developer's own store, credentials and docker config: every test
 * process (and every CLI it spawns) inherits these unless a test sets its own.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const home = await mkdtemp(join(tmpdir(), 'ocipkg-test-home-'));
  process.env.OCIPKG_DATA_DIR = join(home, 'store');
  process.env.OCIPKG_CONFIG_DIR = join(home, 'config');
  process.env.DOCKER_CONFIG = join(home, 'docker');
  process.env.REGISTRY_AUTH_FILE = join(home, 'containers-auth.json');
  process.env.XDG_RUNTIME_DIR = join(home, 'run');
  return async () => {
    await rm(home, { recursive: true, force: true });
  };
}

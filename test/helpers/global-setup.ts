import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Keeps the suite away from the developer's own store, credentials and docker config: every test
 * process (and every CLI it spawns) inherits these unless a test sets its own. Temporary
 * directories (the tests' own, and those of the registries, compilers and CLIs they start) go
 * under the same directory, so that the run leaves nothing in the system's.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const home = await mkdtemp(join(tmpdir(), 'ocipkg-test-home-'));
  process.env.OCIPKG_DATA_DIR = join(home, 'store');
  process.env.OCIPKG_CONFIG_DIR = join(home, 'config');
  process.env.DOCKER_CONFIG = join(home, 'docker');
  process.env.REGISTRY_AUTH_FILE = join(home, 'containers-auth.json');
  process.env.XDG_RUNTIME_DIR = join(home, 'run');
  process.env.TMPDIR = join(home, 'tmp');
  await mkdir(process.env.TMPDIR);
  return async () => {
    await rm(home, { recursive: true, force: true });
  };
}

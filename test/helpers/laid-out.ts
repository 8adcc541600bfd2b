import { copyFile, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { preparePackage } from '../../src/link/generate.js';
import type { PackageMetadata } from '../../src/artifact/config.js';
import type { PackageInfo } from '../../src/store/package.js';

export const TARGET = 'x86_64-unknown-linux-gnu';

/**
 * A package as the store holds it, without a registry: `<dir>/root` gets `files` (path -> source:
 * `->target` makes a symlink, text containing a newline is written as is, anything else is a file
 * to copy), then the installer's prepare step runs on it.
 */
export async function laidOut(dir: string, files: Record<string, string>, meta?: PackageMetadata): Promise<string> {
  for (const [path, source] of Object.entries(files)) {
    const dest = join(dir, 'root', path);
    await mkdir(join(dest, '..'), { recursive: true });
    if (source.startsWith('->')) await symlink(source.slice(2), dest);
    else if (source.includes('\n')) await writeFile(dest, source);
    else await copyFile(source, dest);
  }
  const info: PackageInfo = {
    manifestDigest: `sha256:${'0'.repeat(64)}`,
    manifest: { schemaVersion: 2, config: { mediaType: 'application/vnd.ocipkg.v1.config+json', digest: `sha256:${'1'.repeat(64)}`, size: 2 }, layers: [] },
    config: { layers: {}, ...(meta && { package: meta }) },
    target: TARGET,
  };
  await preparePackage(dir, info, [], 'test package');
  return dir;
}

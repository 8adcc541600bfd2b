import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './helpers/cli.js';

/** The README's reference tables against the code they describe. */
async function sources(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.ts')).map((e) => join(e.parentPath, e.name));
}

describe('the README', () => {
  it('names every OCIPKG_* environment variable the code reads, in its table', async () => {
    const readme = await readFile(join(REPO, 'README.md'), 'utf8');
    const read = new Set<string>();
    for (const file of await sources(join(REPO, 'src'))) {
      const text = await readFile(file, 'utf8');
      // `process.env.NAME`, `env.NAME`, and names given as strings to the readers of numbers and limits.
      for (const match of text.matchAll(/\benv\.(OCIPKG_[A-Z0-9_]+)|['"`](OCIPKG_[A-Z0-9_]+)['"`]/g)) read.add(match[1] ?? match[2]!);
    }
    expect(read.size).toBeGreaterThan(10);
    const table = readme.slice(readme.indexOf('## Environment variables'));
    for (const name of read) expect(table, name).toMatch(new RegExp(`^\\| \`${name}\` \\|`, 'm'));
  });
});

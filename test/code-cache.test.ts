import { cpSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ocipkg, OCIPKG_LINK, REPO, run, tempDir } from './helpers/cli.js';

/** What bin/ocipkg-link.cjs exports when required (for the build) instead of run. */
const { loadBundle, CODE_CACHE } = createRequire(import.meta.url)(OCIPKG_LINK) as {
  loadBundle: (cachedData?: Buffer) => { script: { cachedDataRejected?: boolean } };
  CODE_CACHE: string;
};

describe("ocipkg-link's code cache", () => {
  let work: string;
  let env: NodeJS.ProcessEnv;
  const image = 'localhost/cache/warm:1';

  beforeAll(async () => {
    work = await tempDir('code-cache');
    env = { OCIPKG_DATA_DIR: join(work, 'store') };
    const prefix = join(work, 'prefix');
    mkdirSync(join(prefix, 'include'), { recursive: true });
    mkdirSync(join(prefix, 'lib'));
    writeFileSync(join(prefix, 'include', 'warm.h'), 'int warm(void);\n');
    writeFileSync(join(prefix, 'lib', 'libwarm.a'), '!<arch>\n');
    expect((await ocipkg(['pack', prefix, join(work, 'warm.tar'), '-t', image], env)).code).toBe(0);
    expect((await ocipkg(['load', join(work, 'warm.tar')], env)).code).toBe(0);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('is made by the build for the bundle it sits beside, and V8 accepts it', () => {
    const { script } = loadBundle(readFileSync(CODE_CACHE));
    expect(script.cachedDataRejected).toBe(false);
  });

  it('is only an optimisation: a package whose cache is missing or unusable prints the same flags', async () => {
    const expected = await run(OCIPKG_LINK, ['--cflags', '--libs', image], env);
    expect(expected.code).toBe(0);
    expect(expected.stdout).toMatch(/^-I\S+\/include \S+\/libwarm\.a -Wl,--exclude-libs,libwarm\.a\n$/);
    for (const cache of ['missing', 'garbage']) {
      const copy = join(work, `package-${cache}`);
      for (const part of ['bin', 'dist', 'package.json']) cpSync(join(REPO, part), join(copy, part), { recursive: true });
      symlinkSync(join(REPO, 'node_modules'), join(copy, 'node_modules'));
      const copiedCache = join(copy, 'dist', 'cli', 'ocipkg-link.v8cache');
      if (cache === 'missing') rmSync(copiedCache);
      else writeFileSync(copiedCache, Buffer.alloc(4096, 7));
      const result = await run(join(copy, 'bin', 'ocipkg-link.cjs'), ['--cflags', '--libs', image], env);
      expect({ cache, ...result }).toEqual({ cache, ...expected });
    }
  });
});

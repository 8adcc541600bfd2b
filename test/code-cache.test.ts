import { cpSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ocipkg, OCIPKG_LINK, REPO, run, tempDir, type RunResult } from './helpers/cli.js';

/** The bins' loader (src/cjs/bundles.cts), as the build uses it. */
const { loadBundle, codeCacheFile } = createRequire(import.meta.url)(join(REPO, 'dist', 'cjs', 'bundles.cjs')) as {
  loadBundle: (name: string) => { script: { cachedDataRejected?: boolean } };
  codeCacheFile: (name: string) => string;
};

/** A listing without the time each package was last used, which every ocipkg-link run moves. */
const lastUseless = (result: RunResult) => ({ ...result, stdout: result.stdout.replace(/"lastUsed": "[^"]*"/g, '"lastUsed": "…"') });

describe("the CLIs' code caches", () => {
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

  it('are made by the build for the bundles they sit beside, and V8 accepts them', () => {
    for (const name of ['ocipkg-link', 'ocipkg']) {
      expect(readFileSync(codeCacheFile(name)).length).toBeGreaterThan(0);
      expect({ name, rejected: loadBundle(name).script.cachedDataRejected }).toEqual({ name, rejected: false });
    }
  });

  it('are only an optimisation: with the caches missing or unusable both CLIs print the same', async () => {
    const expected = {
      link: await run(OCIPKG_LINK, ['--cflags', '--libs', image], env),
      list: lastUseless(await ocipkg(['list', '--json'], env)),
    };
    expect(expected.link.code).toBe(0);
    expect(expected.link.stdout).toMatch(/^-I\S+\/include \S+\/libwarm\.a -Wl,--exclude-libs,libwarm\.a\n$/);
    expect(expected.list.code).toBe(0);
    expect(expected.list.stdout).toContain(image);
    for (const cache of ['missing', 'garbage']) {
      const copy = join(work, `package-${cache}`);
      for (const part of ['bin', 'dist', 'package.json']) cpSync(join(REPO, part), join(copy, part), { recursive: true });
      symlinkSync(join(REPO, 'node_modules'), join(copy, 'node_modules'));
      for (const name of ['ocipkg-link', 'ocipkg']) {
        const copiedCache = join(copy, 'dist', 'bundle', `${name}.v8cache`);
        if (cache === 'missing') rmSync(copiedCache);
        else writeFileSync(copiedCache, Buffer.alloc(4096, 7));
      }
      const result = {
        link: await run(join(copy, 'bin', 'ocipkg-link.cjs'), ['--cflags', '--libs', image], env),
        list: lastUseless(await run(join(copy, 'bin', 'ocipkg.cjs'), ['list', '--json'], env)),
      };
      expect({ cache, ...result }).toEqual({ cache, ...expected });
    }
  });
});

import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO, tempDir } from './helpers/cli.js';

/** The npm tarball as consumers install it (`npm pack`, as from a clone until it is on the registry). */
describe('the packed tarball', () => {
  it('runs nothing on a consumer\'s install and carries the bins, dist/ and the CMake module', async () => {
    const dir = await tempDir('pack');
    const [packed] = JSON.parse(execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: REPO, encoding: 'utf8' })) as { filename: string; files: { path: string }[] }[];
    const manifest = JSON.parse(execFileSync('tar', ['-xOzf', join(dir, packed!.filename), 'package/package.json'], { encoding: 'utf8' })) as { scripts?: Record<string, string> };
    // npm runs these on the consumer's machine (and npm 11 warns of each); a build belongs to `npm pack`.
    for (const script of ['preinstall', 'install', 'postinstall', 'prepare']) expect(manifest.scripts?.[script], script).toBeUndefined();
    const files = packed!.files.map((f) => f.path);
    for (const file of ['bin/ocipkg.cjs', 'bin/ocipkg-link.cjs', 'dist/cjs/bundles.cjs', 'dist/bundle/ocipkg.cjs', 'dist/bundle/ocipkg.v8cache', 'dist/bundle/ocipkg-link.cjs', 'dist/bundle/ocipkg-link.v8cache', 'dist/progress.js', 'cmake/ocipkgConfig.cmake', 'README.md', 'examples/node-gyp-addon/binding.gyp', 'examples/c-library/toolchains/aarch64-linux-gnu.cmake']) expect(files).toContain(file);
    expect(files.some((f) => f.startsWith('test/') || f.startsWith('src/'))).toBe(false);

    // Unpacked elsewhere, a --verbose stack names the bundle by its place in the package, not by the
    // path it was built at (V8 keeps the name the code cache was made under).
    execFileSync('tar', ['-xzf', join(dir, packed!.filename), '-C', dir]);
    const failed = spawnSync(process.execPath, [join(dir, 'package', 'bin', 'ocipkg.cjs'), 'get', '--verbose', '127.0.0.1:1/none:1'], {
      encoding: 'utf8', env: { ...process.env, OCIPKG_DATA_DIR: join(dir, 'store') },
    });
    expect(failed.status).toBe(4);
    expect(failed.stderr).toContain('(ocipkg/dist/bundle/ocipkg.cjs:');
    expect(failed.stderr).not.toContain(REPO);
  });
});

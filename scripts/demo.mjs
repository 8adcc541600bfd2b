#!/usr/bin/env node
/**
 * `npm run demo`: the whole story on this machine, in a couple of minutes.
 *
 *  1. build libgreet (examples/c-library), static and shared, and publish it from its own CMake
 *     build (`ocipkg_package`'s ocipkg-push target: install, pack, push) to a throwaway registry
 *     (Debian's `docker-registry` on a free 127.0.0.1 port) or, without one, to an OCI layout directory;
 *  3. install this package as a user would (`npm pack`, then the tarball) into both example addons;
 *  4. build the cmake-js addon and the node-gyp addon against the published image, statically and
 *     shared, and call into libgreet through each.
 *
 * Everything lands in .demo/ (the ocipkg store too: OCIPKG_DATA_DIR), which each run starts afresh.
 * Exits non-zero on the first failure, after stopping the registry.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import {
  buildExample,
  callExample,
  installExample,
  nodeHeadersEnv,
  packOcipkg,
  publishGreetFromCmake,
  REPO,
  run,
} from './examples.mjs';
import { startRegistry } from './registry.mjs';

const work = join(REPO, '.demo');
const started = Date.now();

function say(line) {
  process.stdout.write(`${line}\n`);
}

/** Runs one step, printing what it does and how long it took. */
async function step(title, action) {
  say(`==> ${title}`);
  const t0 = Date.now();
  const result = await action();
  say(`    done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return result;
}

function hasCommand(command, args = ['--version']) {
  return !spawnSync(command, args, { stdio: 'ignore' }).error;
}

async function main() {
  if (!hasCommand('cmake')) throw new Error('cmake is not installed; the examples need CMake 3.19+ and a C/C++ compiler');

  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  // Keep the demo's packages out of the user's own store.
  process.env.OCIPKG_DATA_DIR = join(work, 'store');

  await step('building ocipkg (npm run build)', () => run(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', 'build']));

  let registry;
  let image;
  if (hasCommand('docker-registry')) {
    registry = await step('starting a throwaway registry (docker-registry)', () => startRegistry());
    image = `${registry.host}/examples/greet:1.2.0`;
  } else {
    say('==> docker-registry is not installed: publishing to an OCI image layout directory instead');
    image = `oci:${join(work, 'layout')}:1.2.0`;
  }

  try {
    const archive = await step(`building libgreet (examples/c-library) and publishing ${image} (cmake --build --target ocipkg-push)`, () =>
      publishGreetFromCmake(work, image),
    );
    say(`    ${relative(REPO, archive)}`);

    const tarball = await step('packing ocipkg as users install it (npm pack)', () => packOcipkg(work));
    say(`    ${relative(REPO, tarball)}`);

    const headers = nodeHeadersEnv();
    if (headers.npm_config_nodedir) say(`    (node-gyp uses the headers that ship with this Node: ${headers.npm_config_nodedir})`);

    for (const example of ['cmake-js-addon', 'node-gyp-addon']) {
      const dir = await step(`installing examples/${example} with the tarball (npm install)`, () =>
        installExample(example, work, tarball),
      );
      for (const linkage of /** @type {const} */ (['static', 'shared'])) {
        await step(`building ${example} against ${image}, ${linkage} (npm run build)`, () =>
          buildExample(dir, { image, linkage }),
        );
        const release = join(dir, 'build', 'Release');
        const beside = readdirSync(release).filter((f) => !f.endsWith('.node') && /\.(so|dylib|dll)/.test(f));
        if (linkage === 'shared' && beside.length === 0) throw new Error(`no runtime library was copied into ${release}`);
        const { sum, version } = await callExample(dir);
        if (sum !== 5) throw new Error(`${example}: add(2, 3) returned ${sum}`);
        if (!version.includes(`(${linkage})`)) throw new Error(`${example}: loaded libgreet ${version}, expected a ${linkage} build`);
        say(`    require('${relative(REPO, dir)}').add(2, 3) = ${sum}; libgreet ${version}`);
        if (beside.length > 0) say(`    shipped beside the addon: ${beside.join(', ')}`);
      }
    }
  } finally {
    if (registry) await registry.stop();
  }
  say(`\nAll done in ${((Date.now() - started) / 1000).toFixed(0)} s; everything is under ${relative(process.cwd(), work) || '.'}.`);
}

main().catch((err) => {
  process.stderr.write(`\ndemo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  if (existsSync(work)) process.stderr.write(`(the work directory ${work} is kept for a look)\n`);
  process.exitCode = 1;
});

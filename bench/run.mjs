#!/usr/bin/env node
// Side-by-side benchmarks of ocipkg against the tools a user would otherwise reach for. Figures are
// ratios of two sides measured in one run on one machine, taken in turn (interleaved), so they
// travel between machines better than seconds, and a machine shared with other work slows both.
//
//   node bench/run.mjs [--size-mb 150] [--memory-size-mb 500] [--runs 3] [--warm-runs 30]
//                      [--entries 5000] [--content random|archives] [--only warm,push,mount,cold-get,memory,entries,install,resume]
//
// 1. warm `ocipkg-link --cflags --libs` against `node -e 0`, also for a package verified under a
//    trust policy; binding.gyp's forms against the same: `node -p "require('ocipkg')..."` (the
//    in-process CommonJS API), `npx ocipkg-link` and `ocipkg-link` on the PATH npm sets for scripts;
// 2. cold `ocipkg push` of a SIZE oci-archive to an empty registry against `skopeo copy
//    oci-archive:... docker://...`, time and peak memory (each side gets a registry of its own
//    every run: skopeo remembers where blobs are and would mount them from an earlier run);
// 3. cold `ocipkg get` of the SIZE package from a loopback registry, against `skopeo copy` to an
//    OCI layout + `tar -xzf` of the layer, `curl | sha256sum | tar -xz`, and Node inflating the
//    same layer file alone (no network, no writes: the floor a get stands on);
// 4. peak memory (max RSS, the median of the runs) of a cold `ocipkg get` of a MEMORY_SIZE package;
// 5. peak memory of cold gets of packages of many small files, ENTRIES and 4 x ENTRIES of them:
//    memory should stay flat with the entry count;
// 6. cold `ocipkg install` of a project declaring four packages (SIZE, SIZE/2, SIZE/4, SIZE/4)
//    against a cold `ocipkg get` of the largest alone, with the CPU time of each and the least
//    ratio that CPU time allows on this machine's cores;
// 7. a push of a SIZE package whose blobs sit in another repository of the registry (mounted) against skopeo's;
// 8. a cold get of a SIZE package interrupted at half its layer, then run again: bytes the rerun transfers.
// Where NODE_EXTRA_CA_CERTS is set, the Node sides of 1-3 are also measured without it.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startRegistry } from '../scripts/registry.mjs';

const { values } = parseArgs({
  options: {
    'size-mb': { type: 'string', default: '150' },
    'memory-size-mb': { type: 'string', default: '500' },
    runs: { type: 'string', default: '3' },
    'warm-runs': { type: 'string', default: '30' },
    entries: { type: 'string', default: '5000' },
    only: { type: 'string' },
    content: { type: 'string', default: 'random' },
  },
});
const only = values.only?.split(',');
const wanted = (name) => only === undefined || only.includes(name);
const repo = resolve(import.meta.dirname, '..');
const ocipkg = join(repo, 'bin', 'ocipkg.cjs');
const ocipkgLink = join(repo, 'bin', 'ocipkg-link.cjs');
const work = mkdtempSync(join(tmpdir(), 'ocipkg-bench-'));
const log = (line) => process.stderr.write(`${line}\n`);
/**
 * NODE_EXTRA_CA_CERTS makes every Node start parse a CA bundle (~80 ms here) that skopeo, curl and
 * tar never read: where it is set, the Node sides are also measured without it.
 */
const extraCa = Boolean(process.env.NODE_EXTRA_CA_CERTS);
const WITHOUT_EXTRA_CA = { NODE_EXTRA_CA_CERTS: undefined };

/**
 * This machine's own static archives, for `--content archives`: real object code compresses and
 * inflates as packages do (about 3:1), where random bytes are stored by gzip as they are and make
 * inflating nearly free.
 */
function systemArchives() {
  const dir = '/usr/lib/x86_64-linux-gnu';
  const files = readdirSync(dir).filter((f) => f.endsWith('.a')).map((f) => join(dir, f)).filter((f) => statSync(f).size > 64 * 1024);
  if (files.length === 0) throw new Error(`--content archives: no static archives in ${dir}`);
  return files.map((f) => readFileSync(f));
}

/**
 * An install prefix of `mb` MiB: a header plus libraries of random (incompressible) bytes, or with
 * `--content archives` of the machine's real static archives, repeated up to the size.
 */
function makePrefix(dir, mb) {
  mkdirSync(join(dir, 'include'), { recursive: true });
  mkdirSync(join(dir, 'lib'), { recursive: true });
  writeFileSync(join(dir, 'include', 'bench.h'), 'int bench(void);\n');
  const chunk = 16;
  const archives = values.content === 'archives' ? systemArchives() : undefined;
  for (let i = 0; i * chunk < mb; i++) {
    const size = Math.min(chunk, mb - i * chunk) * 1024 * 1024;
    let body = randomBytes(0);
    if (archives) {
      const parts = [];
      for (let n = 0, k = i; n < size; k++) parts.push(archives[k % archives.length]), (n += archives[k % archives.length].length);
      body = Buffer.concat(parts).subarray(0, size);
    } else body = randomBytes(size);
    writeFileSync(join(dir, 'lib', `libbench${i}.a`), body);
  }
}

function run(cmd, args, env = {}, options = {}) {
  const result = spawnSync(cmd, args, { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 26, ...options });
  if (result.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

function seconds(fn) {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Publishes a package of `mb` MiB (or the prefix `fill` makes); returns its image and layer digest. */
function publish(registry, name, mb, fill = makePrefix) {
  const prefix = join(work, `${name}-prefix`);
  fill(prefix, mb);
  const archive = join(work, `${name}.tar`);
  const image = `${registry.host}/bench/${name}:1`;
  run(process.execPath, [ocipkg, 'pack', prefix, archive, '-t', image, '--target', 'x86_64-unknown-linux-gnu']);
  run(process.execPath, [ocipkg, 'push', archive]);
  rmSync(prefix, { recursive: true });
  const inspected = JSON.parse(run(process.execPath, [ocipkg, 'inspect', image]));
  return { image, layer: inspected.manifest.layers[0].digest };
}

function fresh(name) {
  const dir = join(work, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

function coldGet(registry, runs) {
  const mb = Number(values['size-mb']);
  log(`cold get: publishing a ${mb} MiB package`);
  const { image, layer } = publish(registry, 'cold', mb);
  const repository = image.slice(registry.host.length + 1).replace(/:1$/, '');
  const times = { ocipkg: [], skopeo: [], curl: [], inflate: [], ...(extraCa && { ocipkgWithoutExtraCa: [], inflateWithoutExtraCa: [] }) };
  const layerFile = join(work, 'layer.gz');
  run('curl', ['-sfL', '-o', layerFile, `${registry.url}/v2/${repository}/blobs/${layer}`]);
  // Inflated into 1 MiB chunks, as ocipkg does, and dropped: no network, no writes, no hashing.
  const inflate = `const { createReadStream } = require('node:fs'); const { createGunzip } = require('node:zlib');
    createReadStream(${JSON.stringify(layerFile)}).pipe(createGunzip({ chunkSize: 1 << 20 })).resume();`;
  for (let i = 0; i < runs; i++) {
    const store = fresh('store');
    times.ocipkg.push(seconds(() => run(process.execPath, [ocipkg, 'get', image], { OCIPKG_DATA_DIR: store })));
    const layout = fresh('layout');
    const out = fresh('out');
    times.skopeo.push(seconds(() => {
      run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${image}`, `oci:${layout}:1`]);
      run('tar', ['-xzf', join(layout, 'blobs', 'sha256', layer.slice(7)), '-C', out]);
    }));
    const out2 = fresh('out2');
    times.curl.push(seconds(() => run('bash', ['-o', 'pipefail', '-c',
      `curl -sfL ${registry.url}/v2/${repository}/blobs/${layer} | tee >(sha256sum > ${join(work, 'sum')}) | tar -xz -C ${out2}`])));
    times.inflate.push(seconds(() => run(process.execPath, ['-e', inflate])));
    if (extraCa) {
      const store2 = fresh('store');
      times.ocipkgWithoutExtraCa.push(seconds(() => run(process.execPath, [ocipkg, 'get', image], { ...WITHOUT_EXTRA_CA, OCIPKG_DATA_DIR: store2 })));
      times.inflateWithoutExtraCa.push(seconds(() => run(process.execPath, ['-e', inflate], WITHOUT_EXTRA_CA)));
    }
    log(`  run ${i + 1}: ${Object.keys(times).map((side) => `${side} ${times[side][i].toFixed(2)}s`).join(', ')}`);
  }
  const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
  return {
    sizeMiB: mb, runs, medianSeconds: m, ratioVsSkopeoTar: m.ocipkg / m.skopeo, ratioVsCurlTar: m.ocipkg / m.curl, ratioVsInflate: m.ocipkg / m.inflate,
    ...(extraCa && { ratioVsInflateWithoutExtraCa: m.ocipkgWithoutExtraCa / m.inflateWithoutExtraCa }),
  };
}

/** An oci-archive of an `mb` MiB package, packed from a prefix that is removed again. */
function packedArchive(name, mb) {
  const prefix = join(work, `${name}-prefix`);
  makePrefix(prefix, mb);
  const archive = join(work, `${name}.tar`);
  run(process.execPath, [ocipkg, 'pack', prefix, archive, '-t', `localhost/bench/${name}:1`, '--target', 'x86_64-unknown-linux-gnu']);
  rmSync(prefix, { recursive: true });
  return archive;
}

/**
 * Cold push of an oci-archive against skopeo's, to a registry of its own each time (empty, and
 * unknown to skopeo's blob-info cache, which would otherwise mount blobs from an earlier run).
 */
async function coldPush(runs) {
  const mb = Number(values['size-mb']);
  log(`cold push: packing a ${mb} MiB package`);
  const archive = packedArchive('push', mb);
  const sides = { ocipkg: [], skopeo: [], ...(extraCa && { ocipkgWithoutExtraCa: [] }) };
  const ocipkgPush = (host) => [process.execPath, [ocipkg, 'push', archive, `${host}/bench/push:1`]];
  const commands = {
    ocipkg: (host) => ocipkgPush(host),
    skopeo: (host) => ['skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci-archive:${archive}`, `docker://${host}/bench/push:1`]],
    ocipkgWithoutExtraCa: (host) => [...ocipkgPush(host), WITHOUT_EXTRA_CA],
  };
  for (let i = 0; i < runs; i++) {
    for (const side of Object.keys(sides)) {
      const target = await startRegistry();
      try {
        sides[side].push(await peakOf(...commands[side](target.host)));
      } finally {
        await target.stop();
      }
    }
    log(`  run ${i + 1}: ${Object.keys(sides).map((side) => `${side} ${sides[side][i].seconds.toFixed(2)}s ${sides[side][i].maxRssMiB} MiB`).join(', ')}`);
  }
  const m = (side, key) => median(sides[side].map((r) => r[key]));
  return {
    sizeMiB: mb,
    runs,
    medianSeconds: Object.fromEntries(Object.keys(sides).map((side) => [side, m(side, 'seconds')])),
    ratioVsSkopeo: m('ocipkg', 'seconds') / m('skopeo', 'seconds'),
    ...(extraCa && { ratioVsSkopeoWithoutExtraCa: m('ocipkgWithoutExtraCa', 'seconds') / m('skopeo', 'seconds') }),
    medianMaxRssMiB: { ocipkg: m('ocipkg', 'maxRssMiB'), skopeo: m('skopeo', 'maxRssMiB') },
  };
}

/**
 * Push of a package whose blobs already sit in another repository of the same registry: each side
 * first pushes the archive to one repository (untimed: that is how it learns where the blobs live,
 * ocipkg in its store's record, skopeo in its blob-info cache), then the timed push to a second one
 * mounts them instead of uploading. A registry of its own per side and run.
 */
async function mountedPush(runs) {
  const mb = Number(values['size-mb']);
  log(`mounted push: packing a ${mb} MiB package`);
  const archive = packedArchive('mount', mb);
  const commands = {
    ocipkg: (host, repo) => [process.execPath, [ocipkg, 'push', archive, `${host}/${repo}:1`]],
    skopeo: (host, repo) => ['skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci-archive:${archive}`, `docker://${host}/${repo}:1`]],
  };
  const times = { ocipkg: [], skopeo: [] };
  for (let i = 0; i < runs; i++) {
    for (const side of Object.keys(times)) {
      const target = await startRegistry();
      const env = { OCIPKG_DATA_DIR: fresh('store') };
      try {
        run(...commands[side](target.host, 'bench/first'), env);
        times[side].push((await peakOf(...commands[side](target.host, 'bench/second'), env)).seconds);
      } finally {
        await target.stop();
      }
    }
    log(`  run ${i + 1}: ocipkg ${times.ocipkg[i].toFixed(2)}s, skopeo ${times.skopeo[i].toFixed(2)}s`);
  }
  const m = { ocipkg: median(times.ocipkg), skopeo: median(times.skopeo) };
  return { sizeMiB: mb, runs, medianSeconds: m, ratioVsSkopeo: m.ocipkg / m.skopeo };
}

/**
 * Cold `ocipkg install` of four declared packages against a cold get of the largest alone, with the
 * CPU time of each (ocipkg's and the registry's): on a machine whose cores the install keeps busy,
 * its time cannot fall below what its CPU time allows. A cold get of a 1 MiB package measures the
 * start every run has before its transfers can overlap (Node, the bundle, the first requests).
 */
async function installOfFour(registry, runs) {
  const mb = Number(values['size-mb']);
  const sizes = [mb, Math.ceil(mb / 2), Math.ceil(mb / 4), Math.ceil(mb / 4)];
  log(`install of four: publishing packages of ${sizes.join(', ')} MiB, and one of 1 MiB`);
  const images = sizes.map((size, i) => publish(registry, `four${i}`, size).image);
  const small = publish(registry, 'four-start', 1).image;
  const project = fresh('four-project');
  const packages = Object.fromEntries(images.map((image, i) => [`p${i}`, image]));
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'bench-four', private: true, ocipkg: { packages } }));
  const sides = { install: [], largest: [], start: [] };
  /** A side's run, with the CPU time of the registry serving it added to ocipkg's own. */
  const measured = async (cmd, args, env, options) => {
    const registryBefore = cpuSecondsOf(registry.pid);
    const result = await peakOf(cmd, args, env, options);
    return { ...result, cpuSeconds: result.cpuSeconds + cpuSecondsOf(registry.pid) - registryBefore };
  };
  for (let i = 0; i < runs; i++) {
    rmSync(join(project, 'ocipkg-lock.json'), { force: true });
    sides.install.push(await measured(process.execPath, [ocipkg, 'install'], { OCIPKG_DATA_DIR: fresh('store') }, { cwd: project }));
    sides.largest.push(await measured(process.execPath, [ocipkg, 'get', images[0]], { OCIPKG_DATA_DIR: fresh('store') }));
    sides.start.push(await measured(process.execPath, [ocipkg, 'get', small], { OCIPKG_DATA_DIR: fresh('store') }));
    log(`  run ${i + 1}: ${Object.keys(sides).map((side) => `${side} ${sides[side][i].seconds.toFixed(2)}s (CPU ${sides[side][i].cpuSeconds.toFixed(2)}s)`).join(', ')}`);
  }
  const m = (side, key) => median(sides[side].map((r) => r[key]));
  const [seconds, cpu] = ['seconds', 'cpuSeconds'].map((key) => Object.fromEntries(Object.keys(sides).map((side) => [side, m(side, key)])));
  const cores = availableParallelism();
  return {
    sizesMiB: sizes,
    runs,
    medianSeconds: seconds,
    ratio: seconds.install / seconds.largest,
    medianCpuSeconds: cpu,
    /** Cores busy on average, of `cores`. */
    coresBusy: { install: cpu.install / seconds.install, largest: cpu.largest / seconds.largest, of: cores },
    cpuRatio: cpu.install / cpu.largest,
    // The least the ratio could be: the start as it is, then the rest of the install's CPU time
    // spread over every core without a moment idle.
    floorRatio: (seconds.start + (cpu.install - cpu.start) / cores) / seconds.largest,
  };
}

/** Kernel-reported memory of a running process, in KiB: all of it, and its private (anonymous) part. */
function memoryOf(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
    return { rss: kib('VmRSS'), anon: kib('RssAnon') };
  } catch {
    return { rss: 0, anon: 0 };
  }
}

/**
 * Peak memory of a cold get, sampled every 10 ms from /proc. Max RSS counts the pages of the node
 * binary itself (file-backed, shared, ~45 MiB here); RssAnon is what the process allocated.
 */
async function peakMemory(registry, runs) {
  const mb = Number(values['memory-size-mb']);
  log(`peak memory: publishing a ${mb} MiB package`);
  const { image } = publish(registry, 'memory', mb);
  // The peak of one run moves by a MiB or two with how the buffers happen to line up: the median
  // of the runs is the figure, as for the timed rows.
  const peaks = [];
  for (let i = 0; i < runs; i++) {
    peaks.push(await peakOfGet(image));
    log(`  run ${i + 1}: ${peaks[i].maxRssMiB} MiB (${peaks[i].maxAnonymousRssMiB} MiB private)`);
  }
  return {
    sizeMiB: mb,
    runs,
    maxRssMiB: median(peaks.map((p) => p.maxRssMiB)),
    maxAnonymousRssMiB: median(peaks.map((p) => p.maxAnonymousRssMiB)),
    maxRssMiBEachRun: peaks.map((p) => p.maxRssMiB),
  };
}

/** An install prefix of `count` small headers, 100 to a directory. */
function makeManyFiles(dir, count) {
  for (let i = 0; i < count; i++) {
    const sub = join(dir, 'include', `d${Math.floor(i / 100)}`);
    if (i % 100 === 0) mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `h${i}.h`), `#define H${i} ${i}\n`);
  }
  mkdirSync(join(dir, 'lib'));
  writeFileSync(join(dir, 'lib', 'libmany.a'), '!<arch>\n');
}

/** Peak memory of cold gets of ENTRIES and 4 x ENTRIES files: the second should be no larger. */
async function manyEntries(registry) {
  const counts = [Number(values.entries), 4 * Number(values.entries)];
  const peaks = [];
  for (const count of counts) {
    log(`many entries: publishing a package of ${count} files`);
    const { image } = publish(registry, `entries${count}`, count, makeManyFiles);
    peaks.push({ entries: count, ...(await peakOfGet(image)) });
  }
  return { peaks, ratioAnonymous: peaks[1].maxAnonymousRssMiB / peaks[0].maxAnonymousRssMiB };
}

/** Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`, 100 on Linux as built). */
const CLOCK_TICKS = Number(run('getconf', ['CLK_TCK']).trim());

/**
 * CPU seconds (user + system) from /proc/PID/stat: of the process itself, or with `children`, of its
 * children that have exited and been waited for (the kernel adds each to its parent on exit).
 */
function cpuSecondsOf(pid, { children = false } = {}) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // After the command name (which may hold spaces): state is field 3, utime/stime 14/15, cutime/cstime 16/17.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
  const at = children ? 13 : 11;
  return (fields[at] + fields[at + 1]) / CLOCK_TICKS;
}

/**
 * Wall time, CPU time (user + system), max RSS and max anonymous RSS of running `cmd args`,
 * sampled every 10 ms from /proc.
 */
async function peakOf(cmd, args, env = {}, options = {}) {
  const start = process.hrtime.bigint();
  const cpuBefore = cpuSecondsOf('self', { children: true });
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'], ...options });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr = (stderr + chunk).slice(-4000)));
  const peak = { rss: 0, anon: 0 };
  const timer = setInterval(() => {
    const now = memoryOf(child.pid);
    peak.rss = Math.max(peak.rss, now.rss);
    peak.anon = Math.max(peak.anon, now.anon);
  }, 10);
  const code = await new Promise((resolve) => child.on('close', resolve));
  clearInterval(timer);
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed with exit code ${code}: ${stderr}`);
  return {
    seconds: Number(process.hrtime.bigint() - start) / 1e9,
    // No other child of this process exits meanwhile: the bench runs one command at a time, and the
    // registries it starts outlive each command.
    cpuSeconds: cpuSecondsOf('self', { children: true }) - cpuBefore,
    maxRssMiB: Math.round(peak.rss / 1024),
    maxAnonymousRssMiB: Math.round(peak.anon / 1024),
  };
}

/** Max RSS and max anonymous RSS of a cold get of `image` into a fresh store. */
async function peakOfGet(image) {
  const { maxRssMiB, maxAnonymousRssMiB } = await peakOf(process.execPath, [ocipkg, 'get', image], { OCIPKG_DATA_DIR: fresh('store') });
  return { maxRssMiB, maxAnonymousRssMiB };
}

/**
 * A project whose trust policy covers `image`, signed with a new key and verified once into
 * `store`: the warm ocipkg-link then checks the recorded key instead of the registry.
 */
function signedProject(image, store) {
  const dir = fresh('signed-project');
  const env = { COSIGN_PASSWORD: 'bench', OCIPKG_DATA_DIR: store };
  run(process.execPath, [ocipkg, 'generate-key-pair', '--output-key-prefix', join(dir, 'key')], env);
  run(process.execPath, [ocipkg, 'sign', '--key', join(dir, 'key.key'), image], env);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'bench', ocipkg: { trust: { '*': { keys: ['key.pub'] } } } }));
  run(process.execPath, [ocipkgLink, '--libs', image], { ...env, OCIPKG_PROJECT_DIR: dir });
  return dir;
}

/**
 * A project with ocipkg installed in its node_modules, as `npm install ocipkg` leaves it: the
 * package (a link to this checkout) and its bins in node_modules/.bin.
 */
function consumerProject() {
  const dir = fresh('consumer');
  mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'bench-consumer', private: true }));
  symlinkSync(repo, join(dir, 'node_modules', 'ocipkg'));
  symlinkSync(join('..', 'ocipkg', 'bin', 'ocipkg-link.cjs'), join(dir, 'node_modules', '.bin', 'ocipkg-link'));
  return dir;
}

/**
 * Warm `ocipkg-link` and binding.gyp's other forms against `node -e 0`, interleaved. Node's own
 * start depends on the environment (NODE_EXTRA_CA_CERTS makes every start load a CA bundle), so
 * when that is set the pair is also measured without it.
 */
function warmLink(registry, runs) {
  log('warm ocipkg-link: publishing a small package');
  const { image } = publish(registry, 'warm', 1);
  const store = fresh('store');
  run(process.execPath, [ocipkg, 'get', image], { OCIPKG_DATA_DIR: store });
  const consumer = consumerProject();
  const flags = ['--cflags', '--libs', image];
  const bare = [process.execPath, ['-e', '0']];
  /** Medians of each form and of `node -e 0`, taken in turn; each form's ratio to `node -e 0`. */
  const measure = (env, forms, options = {}) => {
    const times = Object.fromEntries(Object.keys(forms).map((name) => [name, []]));
    times.nodeE0 = [];
    for (let i = 0; i < runs; i++) {
      for (const [name, [cmd, args]] of Object.entries(forms)) times[name].push(seconds(() => run(cmd, args, env, options)));
      times.nodeE0.push(seconds(() => run(...bare, env, options)));
    }
    const m = Object.fromEntries(Object.entries(times).map(([name, xs]) => [name, median(xs)]));
    return { medianSeconds: m, ratio: Object.fromEntries(Object.keys(forms).map((name) => [name, m[name] / m.nodeE0])) };
  };
  const link = { ocipkgLink: [process.execPath, [ocipkgLink, ...flags]] };
  const asIs = measure({ OCIPKG_DATA_DIR: store }, link);
  const verified = measure({ OCIPKG_DATA_DIR: store, OCIPKG_PROJECT_DIR: signedProject(image, store) }, link);
  // binding.gyp's forms, run from the addon's directory as node-gyp runs them; `ocipkg-link` on the
  // PATH is how npm runs an install or build script.
  const gyp = measure({ OCIPKG_DATA_DIR: store, PATH: `${join(consumer, 'node_modules', '.bin')}${delimiter}${process.env.PATH}` }, {
    commonJsApi: [process.execPath, ['-p', `require('ocipkg').flags(${JSON.stringify(image)})`]],
    onNpmPath: ['ocipkg-link', flags],
    npx: ['npx', ['ocipkg-link', ...flags]],
  }, { cwd: consumer });
  const results = { runs, environment: asIs, verifiedUnderPolicy: verified, bindingGyp: gyp };
  if (!process.env.NODE_EXTRA_CA_CERTS) return results;
  return { ...results, withoutNodeExtraCaCerts: measure({ OCIPKG_DATA_DIR: store, NODE_EXTRA_CA_CERTS: undefined }, link) };
}

/**
 * A cold get interrupted (SIGINT) once half its layer has come through, then run again: the rerun
 * should transfer about the other half, not the whole layer again. Bytes are counted by a small
 * proxy in front of the registry, which also sends the signal the moment half has gone out.
 */
async function resumedGet(registry) {
  const mb = Number(values['size-mb']);
  log(`resumed get: publishing a ${mb} MiB package`);
  const { image, layer } = publish(registry, 'resume', mb);
  const size = JSON.parse(run(process.execPath, [ocipkg, 'inspect', image])).manifest.layers[0].size;
  const { createServer, request } = await import('node:http');
  // Per run: a response of the interrupted run still arriving after the kill counts for that run.
  let counter = { sent: 0 };
  let onProgress = () => {};
  const proxy = createServer((req, res) => {
    const counted = counter;
    const upstream = request(new URL(req.url, registry.url), { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.on('data', (chunk) => {
        if (req.url.endsWith(layer)) counted.sent += chunk.length;
        onProgress();
      });
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const proxied = image.replace(registry.host, `127.0.0.1:${proxy.address().port}`);
  try {
    const store = fresh('store');
    const env = { ...process.env, OCIPKG_DATA_DIR: store };
    const child = spawn(process.execPath, [ocipkg, 'get', proxied], { env, stdio: 'ignore' });
    const first = counter;
    onProgress = () => first.sent >= size / 2 && child.kill('SIGINT');
    const signal = await new Promise((resolve) => child.on('close', (_code, sig) => resolve(sig)));
    if (signal !== 'SIGINT') throw new Error(`the interrupted get ended with ${signal ?? 'an exit'}, not SIGINT`);
    const interrupted = first.sent;
    onProgress = () => {};
    counter = { sent: 0 };
    // Not spawnSync: the proxy runs in this process.
    const rerun = spawn(process.execPath, [ocipkg, 'get', proxied], { env, stdio: 'ignore' });
    const code = await new Promise((resolve) => rerun.on('close', resolve));
    if (code !== 0) throw new Error(`the rerun of the interrupted get failed with exit code ${code}`);
    return { layerBytes: size, sentBeforeInterrupt: interrupted, rerun: counter.sent, rerunFraction: counter.sent / size };
  } finally {
    proxy.close();
  }
}

const registry = await startRegistry();
try {
  const results = {
    machine: { node: process.version, cpus: (await import('node:os')).cpus().length },
    ...(wanted('warm') && { warmLink: warmLink(registry, Number(values['warm-runs'])) }),
    ...(wanted('push') && { coldPush: await coldPush(Number(values.runs)) }),
    ...(wanted('mount') && { mountedPush: await mountedPush(Number(values.runs)) }),
    ...(wanted('cold-get') && { coldGet: coldGet(registry, Number(values.runs)) }),
    ...(wanted('memory') && { peakMemory: await peakMemory(registry, Number(values.runs)) }),
    ...(wanted('entries') && { manyEntries: await manyEntries(registry) }),
    ...(wanted('install') && { installOfFour: await installOfFour(registry, Number(values.runs)) }),
    ...(wanted('resume') && { resumedGet: await resumedGet(registry) }),
  };
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
} finally {
  await registry.stop();
  rmSync(work, { recursive: true, force: true });
}

#!/usr/bin/env node
// Side-by-side benchmarks of ocipkg against the tools a user would otherwise reach for. Figures are
// ratios measured in one run on one machine, so they travel between machines better than seconds.
//
//   node bench/run.mjs [--size-mb 150] [--memory-size-mb 500] [--runs 3] [--warm-runs 30]
//
// 1. cold `ocipkg get` of a SIZE package from a loopback registry, against
//    `skopeo copy` to an OCI layout + `tar -xzf` of the layer, and `curl | sha256sum | tar -xz`;
// 2. peak memory (max RSS) of a cold `ocipkg get` of a MEMORY_SIZE package;
// 3. warm `ocipkg-link --cflags --libs` against `node -e 0`, also for a package verified under a trust policy;
// 4. peak memory of cold gets of packages of many small files, ENTRIES and 4 x ENTRIES of them:
//    memory should stay flat with the entry count;
// 5. a cold get of a SIZE package interrupted at half its layer, then run again: bytes the rerun transfers.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startRegistry } from '../scripts/registry.mjs';

const { values } = parseArgs({
  options: {
    'size-mb': { type: 'string', default: '150' },
    'memory-size-mb': { type: 'string', default: '500' },
    runs: { type: 'string', default: '3' },
    'warm-runs': { type: 'string', default: '30' },
    entries: { type: 'string', default: '5000' },
  },
});
const repo = resolve(import.meta.dirname, '..');
const ocipkg = join(repo, 'bin', 'ocipkg.js');
const ocipkgLink = join(repo, 'bin', 'ocipkg-link.cjs');
const work = mkdtempSync(join(tmpdir(), 'ocipkg-bench-'));
const log = (line) => process.stderr.write(`${line}\n`);

/** An install prefix of `mb` MiB: a header plus libraries of random (incompressible) bytes. */
function makePrefix(dir, mb) {
  mkdirSync(join(dir, 'include'), { recursive: true });
  mkdirSync(join(dir, 'lib'), { recursive: true });
  writeFileSync(join(dir, 'include', 'bench.h'), 'int bench(void);\n');
  const chunk = 16;
  for (let i = 0; i * chunk < mb; i++) writeFileSync(join(dir, 'lib', `libbench${i}.a`), randomBytes(Math.min(chunk, mb - i * chunk) * 1024 * 1024));
}

function run(cmd, args, env = {}) {
  const result = spawnSync(cmd, args, { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 26 });
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
  const times = { ocipkg: [], skopeo: [], curl: [] };
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
    log(`  run ${i + 1}: ocipkg ${times.ocipkg[i].toFixed(2)}s, skopeo+tar ${times.skopeo[i].toFixed(2)}s, curl|sha256sum|tar ${times.curl[i].toFixed(2)}s`);
  }
  const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
  return { sizeMiB: mb, medianSeconds: m, ratioVsSkopeoTar: m.ocipkg / m.skopeo, ratioVsCurlTar: m.ocipkg / m.curl };
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
async function peakMemory(registry) {
  const mb = Number(values['memory-size-mb']);
  log(`peak memory: publishing a ${mb} MiB package`);
  const { image } = publish(registry, 'memory', mb);
  return { sizeMiB: mb, ...(await peakOfGet(image)) };
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

/** Max RSS and max anonymous RSS of a cold get of `image` into a fresh store. */
async function peakOfGet(image) {
  const store = fresh('store');
  const child = spawn(process.execPath, [ocipkg, 'get', image], { env: { ...process.env, OCIPKG_DATA_DIR: store }, stdio: 'ignore' });
  const peak = { rss: 0, anon: 0 };
  const timer = setInterval(() => {
    const now = memoryOf(child.pid);
    peak.rss = Math.max(peak.rss, now.rss);
    peak.anon = Math.max(peak.anon, now.anon);
  }, 10);
  const code = await new Promise((resolve) => child.on('close', resolve));
  clearInterval(timer);
  if (code !== 0) throw new Error(`get failed with exit code ${code}`);
  return { maxRssMiB: Math.round(peak.rss / 1024), maxAnonymousRssMiB: Math.round(peak.anon / 1024) };
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
 * Warm `ocipkg-link` against `node -e 0`, interleaved. Node's own start depends on the environment
 * (NODE_EXTRA_CA_CERTS makes every start load a CA bundle), so when that is set the pair is also
 * measured without it.
 */
function warmLink(registry, runs) {
  log('warm ocipkg-link: publishing a small package');
  const { image } = publish(registry, 'warm', 1);
  const store = fresh('store');
  run(process.execPath, [ocipkg, 'get', image], { OCIPKG_DATA_DIR: store });
  const measure = (env) => {
    const link = [], bare = [];
    for (let i = 0; i < runs; i++) {
      link.push(seconds(() => run(process.execPath, [ocipkgLink, '--cflags', '--libs', image], env)));
      bare.push(seconds(() => run(process.execPath, ['-e', '0'], env)));
    }
    return { medianSeconds: { ocipkgLink: median(link), nodeE0: median(bare) }, ratio: median(link) / median(bare) };
  };
  const asIs = measure({ OCIPKG_DATA_DIR: store });
  const verified = measure({ OCIPKG_DATA_DIR: store, OCIPKG_PROJECT_DIR: signedProject(image, store) });
  if (!process.env.NODE_EXTRA_CA_CERTS) return { runs, environment: asIs, verifiedUnderPolicy: verified };
  return { runs, environment: asIs, verifiedUnderPolicy: verified, withoutNodeExtraCaCerts: measure({ OCIPKG_DATA_DIR: store, NODE_EXTRA_CA_CERTS: undefined }) };
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
    warmLink: warmLink(registry, Number(values['warm-runs'])),
    coldGet: coldGet(registry, Number(values.runs)),
    peakMemory: await peakMemory(registry),
    manyEntries: await manyEntries(registry),
    resumedGet: await resumedGet(registry),
  };
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
} finally {
  await registry.stop();
  rmSync(work, { recursive: true, force: true });
}

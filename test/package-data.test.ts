import { existsSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copy } from '../src/copy.js';
import { LayoutDirectory } from '../src/layout/directory.js';
import { RegistryRepository } from '../src/registry/client.js';
import { OCI_MANIFEST } from '../src/oci/mediatypes.js';
import { descriptorFor } from '../src/oci/verify.js';
import { ocipkgLink, tempDir } from './helpers/cli.js';
import { buildImage, writeImage, type TarEntry } from './helpers/layers.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

/**
 * Package data is data: metadata a build would read more into is refused when the package is
 * installed, with one line naming the package, the field and the value, and nothing installed.
 * Every hostile value below once reached a build (a Makefile, a CMake file, a shell, the linker);
 * each would touch MARKER if anything ran it.
 */
let registry: TestRegistry;
let work: string;
let marker: string;
let published = 0;

const files: TarEntry[] = [
  { path: 'include/demo.h', body: 'int demo(void);\n' },
  { path: 'lib/libdemo.a', body: '!<arch>\n' },
  { path: 'bin/collect2', body: '#!/bin/sh\ntouch MARKER\n', mode: 0o755 },
];
const good = { name: 'demo', version: '1.0', includeDirs: ['include'], libraries: [{ name: 'demo', kind: 'static', file: 'lib/libdemo.a' }], linkFlags: ['-lm'], defines: ['DEMO=1'] };

/**
 * Publishes the demo package with `metadata` over the good one; with `pc`, as an artifact without
 * metadata (the Rust ocipkg's kind) that ships `lib/pkgconfig/demo.pc` instead, and with
 * `annotations` on its manifest.
 */
async function publish(metadata: Record<string, unknown>, options: { pc?: string; annotations?: Record<string, string> } = {}): Promise<string> {
  const tag = `v${published++}`;
  const layout = new LayoutDirectory(join(work, `layout-${tag}`));
  const entries: TarEntry[] = files.map((f) => ({ ...f, body: typeof f.body === 'string' ? f.body.replace('MARKER', marker) : f.body }));
  if (options.pc !== undefined) entries.push({ path: 'lib/pkgconfig/demo.pc', body: options.pc.replaceAll('MARKER', marker) });
  let img = buildImage([entries], options.pc !== undefined ? { rust: true } : { metadata: { ...good, ...metadata } });
  if (options.annotations) {
    const manifestBytes = Buffer.from(JSON.stringify({ ...JSON.parse(img.manifestBytes.toString()), annotations: options.annotations }));
    img = { ...img, manifestBytes, manifestDesc: descriptorFor(OCI_MANIFEST, manifestBytes) };
  }
  await writeImage(layout, img, tag);
  await copy(layout, tag, new RegistryRepository(registry.host, 'hostile/data'), tag);
  return `${registry.host}/hostile/data:${tag}`;
}

const pcFile = (fields: Record<string, string>) =>
  ['prefix=${pcfiledir}/../..', 'includedir=${prefix}/include', 'libdir=${prefix}/lib', '',
    ...Object.entries({ Name: 'demo', Description: 'demo', Version: '1.0', Cflags: '-I${includedir}', Libs: '-L${libdir} -ldemo', ...fields }).map(([k, v]) => `${k}: ${v}`)].join('\n');

/** Resolving the image fails in one line naming `field` and the value; nothing lands in the store, nothing ran. */
async function expectRefused(metadata: Record<string, unknown>, field: string, value: string, options: Parameters<typeof publish>[1] = {}): Promise<void> {
  const image = await publish(metadata, options);
  const store = await tempDir('store');
  const result = await ocipkgLink(['--cflags', '--libs', image], { OCIPKG_DATA_DIR: store });
  expect(result.code, result.stderr).toBe(1);
  expect(result.stdout).toBe('');
  expect(result.stderr.trim().split('\n'), result.stderr).toHaveLength(1);
  expect(result.stderr).toContain(image);
  expect(result.stderr).toContain(field);
  expect(result.stderr).toContain(JSON.stringify(value));
  expect(existsSync(join(store, 'packages')) ? readdirSync(join(store, 'packages', 'sha256')) : []).toEqual([]);
  expect(existsSync(marker)).toBe(false);
  await rm(store, { recursive: true, force: true });
}

beforeAll(async () => {
  registry = await startRegistry();
  work = await tempDir('package-data');
  marker = join(work, 'ran');
});

afterAll(async () => {
  await registry?.stop();
});

describe('package metadata a build would run', () => {
  it('accepts the well-behaved package the hostile ones are variants of', async () => {
    const store = await tempDir('store');
    const result = await ocipkgLink(['--cflags', '--libs', await publish({})], { OCIPKG_DATA_DIR: store });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/-DDEMO=1 .*libdemo\.a -lm/);
  });

  it('refuses link flags with shell, Make or CMake syntax in them (9 variants)', async () => {
    for (const flag of [`-lm;touch ${marker};true`, `$(shell touch ${marker})`, `\`touch ${marker}\``, `-lm\ntouch ${marker}`, `-lm|sh`, `-lm&&touch`, '-lm>out', '-l$<1:m>', '-l"m"']) {
      await expectRefused({ linkFlags: [flag] }, 'package.linkFlags', flag);
    }
  });

  it('refuses flags that make the toolchain run or load a file (10 variants)', async () => {
    for (const flag of ['-B@dir@/root/bin/', '-Broot/bin', '-specs=root/evil.specs', '-fplugin=root/evil.so', '-wrapper,root/bin/collect2', '--sysroot=/', '-Wl,-plugin,root/evil.so', '@root/flags.rsp', '-Wl,-rpath,/tmp', '-Wl,--dynamic-linker,/tmp/ld']) {
      await expectRefused({ linkFlags: [flag] }, 'package.linkFlags', flag);
    }
  });

  it('refuses paths a tool reads more into: a file of flags (@), a home directory (~), the sysroot (=) (8 variants)', async () => {
    // `@build.a` once linked as a response file (gcc read `-wrapper` from it and ran a shell).
    for (const flag of ['@build.a', '~/evil.a', '=x.a']) {
      await expectRefused({ linkFlags: [flag] }, 'package.linkFlags', flag);
    }
    await expectRefused({ linkFlags: ['-L=/etc'] }, 'package.linkFlags', '=/etc');
    await expectRefused({ linkFlags: ['-L~/x'] }, 'package.linkFlags', '~/x');
    await expectRefused({ includeDirs: ['@include'] }, 'package.includeDirs', '@include');
    await expectRefused({}, '.pc Cflags', '@rsp.h', { pc: pcFile({ Cflags: '-I${includedir} -isystem @rsp.h' }) });
    await expectRefused({}, '.pc Cflags', '=/etc', { pc: pcFile({ Cflags: '-I${includedir} -isystem=/etc' }) });
  });

  it('anchors the library files and -L directories link flags name at the package root', async () => {
    // Relative, they were relative to wherever the build ran the linker.
    const store = await tempDir('store');
    const result = await ocipkgLink(['--libs', await publish({ linkFlags: ['-Llib', 'lib/libdemo.a'], libraries: [] })], { OCIPKG_DATA_DIR: store });
    expect(result.code, result.stderr).toBe(0);
    const root = join(store, 'packages', 'sha256', readdirSync(join(store, 'packages', 'sha256'))[0]!, 'root');
    expect(result.stdout.trim().split(' ')).toEqual([`-L${root}/lib`, `${root}/lib/libdemo.a`]);
  });

  it('refuses definitions that are not NAME or NAME=plain value (6 variants)', async () => {
    for (const define of [`V=$(shell touch ${marker})`, 'A;B', 'X="y"', 'X=$<1:y>', 'F(x)=x', 'X=a b']) {
      await expectRefused({ defines: [define] }, 'package.defines', define);
    }
  });

  it('refuses versions and names that are not plain words (7 variants)', async () => {
    for (const version of [`1.0\nexecute_process(COMMAND touch ${marker})`, '1.0 # x', '1.0;2', '$(shell id)']) {
      await expectRefused({ version }, 'package.version', version);
    }
    for (const name of ['demo) execute_process(COMMAND touch x', 'a;b', '../demo']) {
      await expectRefused({ name }, 'package.name', name);
    }
  });

  it('refuses requirements that are not registry references (3 variants)', async () => {
    for (const required of ['oci:/etc/ssl:1', 'oci:../secrets:latest', 'not a reference']) {
      await expectRefused({ requires: [required] }, 'package.requires', required);
    }
  });

  it('refuses paths that leave the package or hold syntax (8 variants)', async () => {
    for (const dir of ['../../..', '/etc', `include/$(shell touch ${marker})`, 'include\nx']) {
      await expectRefused({ includeDirs: [dir] }, 'package.includeDirs', dir);
    }
    for (const file of ['../../../etc/passwd', '/etc/passwd', 'lib/lib$(x).a', 'lib/../../x.a']) {
      await expectRefused({ libraries: [{ name: 'demo', kind: 'static', file }] }, 'package.libraries[].file', file);
    }
  });

  it('checks a shipped .pc and the version annotation of artifacts without metadata as strictly (8 variants)', async () => {
    const store = await tempDir('store');
    const fine = await ocipkgLink(['--cflags', '--libs', await publish({}, { pc: pcFile({}) })], { OCIPKG_DATA_DIR: store });
    expect(fine.code, fine.stderr).toBe(0);
    expect(fine.stdout).toMatch(/-I\S+\/root\/include \S+\/root\/lib\/libdemo\.a/);

    await expectRefused({}, '.pc Libs', '$(shell', { pc: pcFile({ Libs: '-L${libdir} -ldemo $(shell touch MARKER)' }) });
    await expectRefused({}, '.pc Libs', '-Wl,-plugin,x.so', { pc: pcFile({ Libs: '-L${libdir} -ldemo -Wl,-plugin,x.so' }) });
    await expectRefused({}, '.pc Libs.private', '-B@dir@/root/bin', { pc: pcFile({ 'Libs.private': '-B${prefix}/bin' }) });
    await expectRefused({}, '.pc Cflags', '-fplugin=x.so', { pc: pcFile({ Cflags: '-I${includedir} -fplugin=x.so' }) });
    await expectRefused({}, '.pc include directory', '/etc', { pc: pcFile({ Cflags: '-I/etc' }) });
    await expectRefused({}, '.pc definition', 'X=`id`', { pc: pcFile({ Cflags: '-DX=`id`' }) });
    await expectRefused({}, '.pc version', '1.0;x', { pc: pcFile({ Version: '1.0;x' }) });
    await expectRefused({}, 'org.opencontainers.image.version', '1.0\nexecute_process(COMMAND touch MARKER)'.replace('MARKER', marker), {
      pc: pcFile({ Version: '' }).replace('Version: \n', ''),
      annotations: { 'org.opencontainers.image.version': `1.0\nexecute_process(COMMAND touch ${marker})` },
    });
  });
});

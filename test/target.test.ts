import { describe, expect, it } from 'vitest';
import { compareTriples, nodeToTriple, normalizePlatform, platformToTriples, selectTriple, TRIPLES, tripleToPlatform } from '../src/triple.js';
import { codeOf, codeOfSync } from './helpers/errors.js';

/** The triple table both ways, and the one order in which a triple is chosen. */

describe('triple <-> OCI platform', () => {
  it.each([
    ['x86_64-unknown-linux-gnu', { os: 'linux', architecture: 'amd64' }],
    ['aarch64-unknown-linux-gnu', { os: 'linux', architecture: 'arm64' }],
    ['armv7-unknown-linux-gnueabihf', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['arm-unknown-linux-gnueabihf', { os: 'linux', architecture: 'arm', variant: 'v6' }],
    ['i686-unknown-linux-gnu', { os: 'linux', architecture: '386' }],
    ['powerpc64le-unknown-linux-gnu', { os: 'linux', architecture: 'ppc64le' }],
    ['s390x-unknown-linux-gnu', { os: 'linux', architecture: 's390x' }],
    ['riscv64gc-unknown-linux-gnu', { os: 'linux', architecture: 'riscv64' }],
    ['loongarch64-unknown-linux-gnu', { os: 'linux', architecture: 'loong64' }],
    ['mips64el-unknown-linux-gnuabi64', { os: 'linux', architecture: 'mips64le' }],
    ['x86_64-unknown-linux-musl', { os: 'linux', architecture: 'amd64' }],
    ['aarch64-unknown-linux-musl', { os: 'linux', architecture: 'arm64' }],
    ['x86_64-apple-darwin', { os: 'darwin', architecture: 'amd64' }],
    ['aarch64-apple-darwin', { os: 'darwin', architecture: 'arm64' }],
    ['x86_64-pc-windows-msvc', { os: 'windows', architecture: 'amd64' }],
    ['aarch64-pc-windows-msvc', { os: 'windows', architecture: 'arm64' }],
    ['i686-pc-windows-msvc', { os: 'windows', architecture: '386' }],
  ])('%s is %o', (triple, platform) => {
    expect(tripleToPlatform(triple)).toEqual(platform);
    expect(platformToTriples(platform)).toContain(triple);
  });

  it('every triple in the table comes back from its own platform, glibc ones first', () => {
    for (const { triple } of TRIPLES) {
      const back = platformToTriples(tripleToPlatform(triple));
      expect(back, triple).toContain(triple);
      const firstMusl = back.findIndex((t) => t.includes('musl'));
      if (firstMusl >= 0) expect(back.slice(firstMusl).every((t) => t.includes('musl')), triple).toBe(true);
    }
    expect(new Set(TRIPLES.map((t) => t.triple)).size).toBe(TRIPLES.length);
  });

  it('a platform reads as its glibc triple first, musl second', () => {
    expect(platformToTriples({ os: 'linux', architecture: 'arm64' })).toEqual(['aarch64-unknown-linux-gnu', 'aarch64-unknown-linux-musl']);
  });

  it('reads the spellings containerd normalises: arm64/v8, aarch64, x86_64, arm without a variant', () => {
    expect(platformToTriples({ os: 'linux', architecture: 'arm64', variant: 'v8' })[0]).toBe('aarch64-unknown-linux-gnu');
    expect(platformToTriples({ os: 'linux', architecture: 'aarch64' })[0]).toBe('aarch64-unknown-linux-gnu');
    expect(platformToTriples({ os: 'Linux', architecture: 'x86_64' })[0]).toBe('x86_64-unknown-linux-gnu');
    expect(platformToTriples({ os: 'linux', architecture: 'arm' })[0]).toBe('armv7-unknown-linux-gnueabihf');
    expect(platformToTriples({ os: 'linux', architecture: 'arm', variant: 'v6' })[0]).toBe('arm-unknown-linux-gnueabihf');
    expect(normalizePlatform({ os: 'linux', architecture: 'armhf' })).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
  });

  it('an unknown platform or triple names nothing', async () => {
    expect(platformToTriples({ os: 'plan9', architecture: 'amd64' })).toEqual([]);
    expect(platformToTriples({ os: 'linux', architecture: 'arm64', variant: 'v9' })).toEqual([]);
    expect(await codeOf(Promise.resolve().then(() => tripleToPlatform('x86_64-unknown-plan9')))).toBe('EUSAGE');
  });
});

describe('triple <-> Node platform/arch', () => {
  it.each([
    ['linux', 'x64', 'gnu', 'x86_64-unknown-linux-gnu'],
    ['linux', 'x64', 'musl', 'x86_64-unknown-linux-musl'],
    ['linux', 'arm64', 'gnu', 'aarch64-unknown-linux-gnu'],
    ['linux', 'arm64', 'musl', 'aarch64-unknown-linux-musl'],
    ['linux', 'arm', 'gnu', 'armv7-unknown-linux-gnueabihf'],
    ['linux', 'ia32', 'gnu', 'i686-unknown-linux-gnu'],
    ['linux', 'ppc64', 'gnu', 'powerpc64le-unknown-linux-gnu'],
    ['linux', 's390x', 'musl', 's390x-unknown-linux-musl'],
    ['linux', 'riscv64', 'gnu', 'riscv64gc-unknown-linux-gnu'],
    ['linux', 'loong64', 'gnu', 'loongarch64-unknown-linux-gnu'],
    ['linux', 'mips64el', 'gnu', 'mips64el-unknown-linux-gnuabi64'],
    ['darwin', 'x64', undefined, 'x86_64-apple-darwin'],
    ['darwin', 'arm64', undefined, 'aarch64-apple-darwin'],
    ['win32', 'x64', undefined, 'x86_64-pc-windows-msvc'],
    ['win32', 'arm64', undefined, 'aarch64-pc-windows-msvc'],
    ['win32', 'ia32', undefined, 'i686-pc-windows-msvc'],
    ['freebsd', 'x64', undefined, 'x86_64-unknown-freebsd'],
  ] as const)('%s/%s (%s) is %s', (platform, arch, libc, triple) => {
    expect(nodeToTriple(platform, arch, libc)).toBe(triple);
    const info = TRIPLES.find((t) => t.triple === triple)!;
    expect(info.node).toMatchObject({ platform, arch, ...(libc && { libc }) });
  });

  it('a pair Node does not run on is ENOTARGET', async () => {
    expect(await codeOf(Promise.resolve().then(() => nodeToTriple('aix', 'ppc64')))).toBe('ENOTARGET');
  });

  it('the host is this machine: glibc x86-64 Linux (the Debian machines the suite runs on)', () => {
    expect(nodeToTriple(process.platform, process.arch)).toBe('x86_64-unknown-linux-gnu');
  });
});

describe('glibc before musl', () => {
  it('sorts glibc and other OSes before musl, then by the table, unknown triples last', () => {
    const sorted = ['x86_64-unknown-linux-musl', 'zz-unknown', 'aarch64-apple-darwin', 'aarch64-unknown-linux-gnu', 'x86_64-unknown-linux-gnu'].sort(compareTriples);
    expect(sorted).toEqual(['x86_64-unknown-linux-gnu', 'aarch64-unknown-linux-gnu', 'aarch64-apple-darwin', 'x86_64-unknown-linux-musl', 'zz-unknown']);
  });
});

describe('selectTriple: --target > node-gyp --arch (npm_config_arch) > OCIPKG_TARGET > host', () => {
  const host = 'x86_64-unknown-linux-gnu';
  const foreignArch = process.arch === 'arm64' ? 'x64' : 'arm64';
  const foreignTriple = nodeToTriple(process.platform, foreignArch);

  it('the host when nothing is said', () => {
    expect(selectTriple(undefined, {})).toBe(host);
  });

  it('OCIPKG_TARGET over the host', () => {
    expect(selectTriple(undefined, { OCIPKG_TARGET: 'x86_64-unknown-linux-musl' })).toBe('x86_64-unknown-linux-musl');
  });

  it('a cross build (npm_config_arch differs from process.arch) over OCIPKG_TARGET', () => {
    expect(selectTriple(undefined, { npm_config_arch: foreignArch })).toBe(foreignTriple);
    expect(selectTriple(undefined, { npm_config_arch: foreignArch, OCIPKG_TARGET: 'x86_64-unknown-linux-musl' })).toBe(foreignTriple);
  });

  it('an OCIPKG_TARGET for the cross build\'s own architecture refines it (its libc)', () => {
    const muslOfForeign = platformToTriples(tripleToPlatform(foreignTriple)).find((t) => t.includes('musl'))!;
    expect(selectTriple(undefined, { npm_config_arch: foreignArch, OCIPKG_TARGET: muslOfForeign })).toBe(muslOfForeign);
  });

  it('npm_config_arch equal to the host arch is no cross build: OCIPKG_TARGET still applies', () => {
    expect(selectTriple(undefined, { npm_config_arch: process.arch, OCIPKG_TARGET: 'aarch64-unknown-linux-musl' })).toBe('aarch64-unknown-linux-musl');
  });

  it('--target (and CMake TARGET, passed as --target) over everything', () => {
    const env = { npm_config_arch: foreignArch, OCIPKG_TARGET: 'x86_64-unknown-linux-musl' };
    expect(selectTriple('riscv64gc-unknown-linux-gnu', env)).toBe('riscv64gc-unknown-linux-gnu');
  });

  it('an unknown triple from any source is a usage error', async () => {
    expect(await codeOf(Promise.resolve().then(() => selectTriple('x86_64-linux')))).toBe('EUSAGE');
    expect(await codeOf(Promise.resolve().then(() => selectTriple(undefined, { OCIPKG_TARGET: 'nope' })))).toBe('EUSAGE');
  });

  it('reads process.env by default', () => {
    const saved = { OCIPKG_TARGET: process.env.OCIPKG_TARGET, npm_config_arch: process.env.npm_config_arch };
    try {
      process.env.OCIPKG_TARGET = 'aarch64-unknown-linux-gnu';
      delete process.env.npm_config_arch;
      expect(selectTriple()).toBe('aarch64-unknown-linux-gnu');
    } finally {
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });
});

describe('Node-style target names (prebuildify, node-gyp, npm os/cpu)', () => {
  it('map to the triple of the table, which is what is returned and recorded', () => {
    expect(selectTriple('linux-x64')).toBe('x86_64-unknown-linux-gnu');
    expect(selectTriple('linux-arm64')).toBe('aarch64-unknown-linux-gnu');
    expect(selectTriple('linux-x64-musl')).toBe('x86_64-unknown-linux-musl');
    expect(selectTriple('linux-arm')).toBe('armv7-unknown-linux-gnueabihf');
    expect(selectTriple('darwin-arm64')).toBe('aarch64-apple-darwin');
    expect(selectTriple('win32-x64')).toBe('x86_64-pc-windows-msvc');
    expect(selectTriple(undefined, { OCIPKG_TARGET: 'linux-arm64-musl' })).toBe('aarch64-unknown-linux-musl');
  });

  it('every table entry has one, and names it back', () => {
    for (const t of TRIPLES) {
      const name = `${t.node.platform}-${t.node.arch}${t.node.libc === 'musl' ? '-musl' : ''}`;
      // 32-bit arm v6 and v7 share linux-arm: the first in the table (v7) has it.
      const first = TRIPLES.find((o) => `${o.node.platform}-${o.node.arch}${o.node.libc === 'musl' ? '-musl' : ''}` === name)!;
      expect(selectTriple(name)).toBe(first.triple);
    }
  });

  it('an unknown name is a usage error that mentions both spellings', () => {
    expect(codeOfSync(() => selectTriple('linux-x65'))).toBe('EUSAGE');
    expect(() => selectTriple('linux-x65')).toThrow(/Node-style name such as linux-x64/);
  });
});

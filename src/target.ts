import { closeSync, openSync, readSync } from 'node:fs';
import { OcipkgError } from './errors.js';
import type { Platform } from './oci/types.js';

/**
 * Target triples (Rust-style, as the Rust ocipkg and most prebuild tools name them) and their OCI
 * platforms. One table serves both directions; `os`/`architecture`/`variant` follow the names Go and
 * containerd use. gnu and musl builds share a platform: the full triple travels in an annotation.
 */
interface TripleInfo {
  triple: string;
  platform: Platform;
  /** process.platform / process.arch / libc for host detection. */
  node: { platform: NodeJS.Platform; arch: string; libc?: 'gnu' | 'musl'; armVersion?: string };
}

const linux = (
  triple: string,
  architecture: string,
  arch: string,
  libc: 'gnu' | 'musl',
  variant?: string,
  armVersion?: string,
): TripleInfo => ({
  triple,
  platform: { os: 'linux', architecture, ...(variant && { variant }) },
  node: { platform: 'linux', arch, libc, ...(armVersion && { armVersion }) },
});

export const TRIPLES: readonly TripleInfo[] = [
  linux('x86_64-unknown-linux-gnu', 'amd64', 'x64', 'gnu'),
  linux('aarch64-unknown-linux-gnu', 'arm64', 'arm64', 'gnu'),
  linux('armv7-unknown-linux-gnueabihf', 'arm', 'arm', 'gnu', 'v7', '7'),
  linux('arm-unknown-linux-gnueabihf', 'arm', 'arm', 'gnu', 'v6', '6'),
  linux('i686-unknown-linux-gnu', '386', 'ia32', 'gnu'),
  linux('powerpc64le-unknown-linux-gnu', 'ppc64le', 'ppc64', 'gnu'),
  linux('s390x-unknown-linux-gnu', 's390x', 's390x', 'gnu'),
  linux('riscv64gc-unknown-linux-gnu', 'riscv64', 'riscv64', 'gnu'),
  linux('loongarch64-unknown-linux-gnu', 'loong64', 'loong64', 'gnu'),
  linux('x86_64-unknown-linux-musl', 'amd64', 'x64', 'musl'),
  linux('aarch64-unknown-linux-musl', 'arm64', 'arm64', 'musl'),
  linux('armv7-unknown-linux-musleabihf', 'arm', 'arm', 'musl', 'v7', '7'),
  linux('arm-unknown-linux-musleabihf', 'arm', 'arm', 'musl', 'v6', '6'),
  linux('i686-unknown-linux-musl', '386', 'ia32', 'musl'),
  linux('powerpc64le-unknown-linux-musl', 'ppc64le', 'ppc64', 'musl'),
  linux('s390x-unknown-linux-musl', 's390x', 's390x', 'musl'),
  linux('riscv64gc-unknown-linux-musl', 'riscv64', 'riscv64', 'musl'),
  { triple: 'x86_64-apple-darwin', platform: { os: 'darwin', architecture: 'amd64' }, node: { platform: 'darwin', arch: 'x64' } },
  { triple: 'aarch64-apple-darwin', platform: { os: 'darwin', architecture: 'arm64' }, node: { platform: 'darwin', arch: 'arm64' } },
  { triple: 'x86_64-pc-windows-msvc', platform: { os: 'windows', architecture: 'amd64' }, node: { platform: 'win32', arch: 'x64' } },
  { triple: 'aarch64-pc-windows-msvc', platform: { os: 'windows', architecture: 'arm64' }, node: { platform: 'win32', arch: 'arm64' } },
  { triple: 'i686-pc-windows-msvc', platform: { os: 'windows', architecture: '386' }, node: { platform: 'win32', arch: 'ia32' } },
  { triple: 'x86_64-unknown-freebsd', platform: { os: 'freebsd', architecture: 'amd64' }, node: { platform: 'freebsd', arch: 'x64' } },
  { triple: 'aarch64-unknown-freebsd', platform: { os: 'freebsd', architecture: 'arm64' }, node: { platform: 'freebsd', arch: 'arm64' } },
];

export function isKnownTriple(triple: string): boolean {
  return TRIPLES.some((t) => t.triple === triple);
}

export function assertTriple(triple: string): string {
  if (!isKnownTriple(triple)) {
    throw new OcipkgError('EUSAGE', `unknown target triple "${triple}" (known: ${TRIPLES.map((t) => t.triple).join(', ')})`);
  }
  return triple;
}

/** The OCI platform of a triple. */
export function tripleToPlatform(triple: string): Platform {
  const info = TRIPLES.find((t) => t.triple === assertTriple(triple));
  return { ...info!.platform };
}

/**
 * The triples an OCI platform may stand for, glibc first. A platform alone cannot tell gnu from
 * musl; callers that know the libc pick from the list.
 */
export function platformToTriples(platform: Platform): string[] {
  return TRIPLES.filter(
    (t) =>
      t.platform.os === platform.os &&
      t.platform.architecture === platform.architecture &&
      (t.platform.variant ?? '') === (platform.variant ?? (t.platform.architecture === 'arm' ? 'v7' : '')),
  ).map((t) => t.triple);
}

/** glibc or musl, read from the ELF interpreter of the running node binary (no process report: it is slow). */
function hostLibc(): 'gnu' | 'musl' {
  let fd: number | undefined;
  try {
    fd = openSync(process.execPath, 'r');
    const head = Buffer.alloc(4096);
    const n = readSync(fd, head, 0, head.length, 0);
    return head.subarray(0, n).includes('ld-musl') ? 'musl' : 'gnu';
  } catch {
    return 'gnu';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The triple of a Node platform/arch pair, e.g. node-gyp's `--arch` for a cross build. */
export function nodeToTriple(platform: NodeJS.Platform, arch: string, libc?: 'gnu' | 'musl'): string {
  const armVersion = arch === 'arm' ? String((process.config.variables as { arm_version?: string }).arm_version ?? '7') : undefined;
  const match = TRIPLES.find(
    (t) =>
      t.node.platform === platform &&
      t.node.arch === arch &&
      (t.node.libc === undefined || t.node.libc === (libc ?? (platform === 'linux' ? hostLibc() : undefined))) &&
      (t.node.armVersion === undefined || t.node.armVersion === armVersion),
  );
  if (!match) throw new OcipkgError('ENOTARGET', `no target triple for ${platform}/${arch}; pass --target TRIPLE`);
  return match.triple;
}

/** The triple to resolve for: an explicit one, then `OCIPKG_TARGET`, then the host. */
export function selectTriple(explicit?: string): string {
  if (explicit) return assertTriple(explicit);
  const fromEnv = process.env.OCIPKG_TARGET;
  if (fromEnv) return assertTriple(fromEnv);
  return nodeToTriple(process.platform, process.arch);
}

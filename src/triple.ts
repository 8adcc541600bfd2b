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

/**
 * Every Linux architecture Node runs on (official, experimental and distribution builds), with glibc
 * and musl; macOS, Windows and FreeBSD for what Node ships there. The order is the stable order
 * `publish` writes index entries in (glibc and the other OSes before musl, see `tripleOrder`).
 */
export const TRIPLES: readonly TripleInfo[] = [
  linux('x86_64-unknown-linux-gnu', 'amd64', 'x64', 'gnu'),
  linux('aarch64-unknown-linux-gnu', 'arm64', 'arm64', 'gnu'),
  linux('armv7-unknown-linux-gnueabihf', 'arm', 'arm', 'gnu', 'v7', '7'),
  linux('arm-unknown-linux-gnueabihf', 'arm', 'arm', 'gnu', 'v6', '6'),
  linux('i686-unknown-linux-gnu', '386', 'ia32', 'gnu'),
  // Node calls little-endian 64-bit POWER `ppc64` (big-endian Linux is not supported).
  linux('powerpc64le-unknown-linux-gnu', 'ppc64le', 'ppc64', 'gnu'),
  linux('s390x-unknown-linux-gnu', 's390x', 's390x', 'gnu'),
  linux('riscv64gc-unknown-linux-gnu', 'riscv64', 'riscv64', 'gnu'),
  linux('loongarch64-unknown-linux-gnu', 'loong64', 'loong64', 'gnu'),
  linux('mips64el-unknown-linux-gnuabi64', 'mips64le', 'mips64el', 'gnu'),
  linux('x86_64-unknown-linux-musl', 'amd64', 'x64', 'musl'),
  linux('aarch64-unknown-linux-musl', 'arm64', 'arm64', 'musl'),
  linux('armv7-unknown-linux-musleabihf', 'arm', 'arm', 'musl', 'v7', '7'),
  linux('arm-unknown-linux-musleabihf', 'arm', 'arm', 'musl', 'v6', '6'),
  linux('i686-unknown-linux-musl', '386', 'ia32', 'musl'),
  linux('powerpc64le-unknown-linux-musl', 'ppc64le', 'ppc64', 'musl'),
  linux('s390x-unknown-linux-musl', 's390x', 's390x', 'musl'),
  linux('riscv64gc-unknown-linux-musl', 'riscv64', 'riscv64', 'musl'),
  linux('loongarch64-unknown-linux-musl', 'loong64', 'loong64', 'musl'),
  linux('mips64el-unknown-linux-muslabi64', 'mips64le', 'mips64el', 'musl'),
  { triple: 'x86_64-apple-darwin', platform: { os: 'darwin', architecture: 'amd64' }, node: { platform: 'darwin', arch: 'x64' } },
  { triple: 'aarch64-apple-darwin', platform: { os: 'darwin', architecture: 'arm64' }, node: { platform: 'darwin', arch: 'arm64' } },
  { triple: 'x86_64-pc-windows-msvc', platform: { os: 'windows', architecture: 'amd64' }, node: { platform: 'win32', arch: 'x64' } },
  { triple: 'aarch64-pc-windows-msvc', platform: { os: 'windows', architecture: 'arm64' }, node: { platform: 'win32', arch: 'arm64' } },
  { triple: 'i686-pc-windows-msvc', platform: { os: 'windows', architecture: '386' }, node: { platform: 'win32', arch: 'ia32' } },
  // MinGW builds: the same platform as MSVC's, told apart by the triple alone (as gnu and musl are).
  // Node's own Windows builds are MSVC's, so the host is never one of these (no `libc` matches).
  { triple: 'x86_64-pc-windows-gnu', platform: { os: 'windows', architecture: 'amd64' }, node: { platform: 'win32', arch: 'x64', libc: 'gnu' } },
  { triple: 'i686-pc-windows-gnu', platform: { os: 'windows', architecture: '386' }, node: { platform: 'win32', arch: 'ia32', libc: 'gnu' } },
  { triple: 'x86_64-unknown-freebsd', platform: { os: 'freebsd', architecture: 'amd64' }, node: { platform: 'freebsd', arch: 'x64' } },
  { triple: 'aarch64-unknown-freebsd', platform: { os: 'freebsd', architecture: 'arm64' }, node: { platform: 'freebsd', arch: 'arm64' } },
];

export function isKnownTriple(triple: string): boolean {
  return TRIPLES.some((t) => t.triple === triple);
}

/**
 * The Node-style name of a table entry, as prebuildify, node-gyp and npm's `os`/`cpu` users write
 * it: `<process.platform>-<process.arch>`, `-musl` for musl builds (`linux-x64-musl`). Where two
 * entries share one (32-bit arm v6 and v7), the first in the table (v7, Node's own arm build) has it.
 */
function nodeStyleName(info: TripleInfo): string {
  return `${info.node.platform}-${info.node.arch}${info.node.libc === 'musl' ? '-musl' : ''}`;
}

/**
 * The triple `name` stands for: a triple of the table, or a Node-style name (`linux-x64`,
 * `linux-arm64`, `linux-x64-musl`, `darwin-arm64`, `win32-x64`) mapped to its triple. Everything that
 * takes a target from a user goes through here, so the triple is what is recorded and printed.
 */
export function assertTriple(name: string): string {
  if (isKnownTriple(name)) return name;
  const aliased = TRIPLES.find((t) => nodeStyleName(t) === name);
  if (aliased) return aliased.triple;
  throw new OcipkgError('EUSAGE', `unknown target triple "${name}" (known: ${TRIPLES.map((t) => t.triple).join(', ')}; or a Node-style name such as linux-x64, linux-x64-musl, darwin-arm64, win32-x64)`);
}

/** The OCI platform of a triple. */
export function tripleToPlatform(triple: string): Platform {
  const info = TRIPLES.find((t) => t.triple === assertTriple(triple));
  return { ...info!.platform };
}

/**
 * A platform spelled the way containerd's `platforms.Normalize` spells it, so that entries other
 * tools wrote compare equal to the table: `aarch64` and arm64 `v8` are plain arm64, 32-bit arm
 * without a variant is v7, `x86_64` is amd64, `i386` is 386.
 */
export function normalizePlatform(platform: Platform): { os: string; architecture: string; variant?: string } {
  const os = platform.os.toLowerCase();
  let architecture = platform.architecture.toLowerCase();
  let variant = platform.variant?.toLowerCase();
  if (architecture === 'x86_64' || architecture === 'x86-64') architecture = 'amd64';
  else if (architecture === 'i386') architecture = '386';
  else if (architecture === 'aarch64') architecture = 'arm64';
  else if (architecture === 'armhf') [architecture, variant] = ['arm', 'v7'];
  else if (architecture === 'armel') [architecture, variant] = ['arm', 'v6'];
  if (architecture === 'arm64' && (variant === '8' || variant === 'v8' || variant === 'v8.0')) variant = undefined;
  if (architecture === 'amd64' && variant === 'v1') variant = undefined;
  if (architecture === 'arm') variant = variant === undefined || variant === '' ? 'v7' : variant.startsWith('v') ? variant : `v${variant}`;
  return { os, architecture, ...(variant && { variant }) };
}

/**
 * The triples an OCI platform may stand for, glibc first. A platform alone cannot tell gnu from
 * musl; callers that know the libc pick from the list.
 */
export function platformToTriples(platform: Platform): string[] {
  const wanted = normalizePlatform(platform);
  return TRIPLES.filter((t) => {
    const have = normalizePlatform(t.platform);
    return have.os === wanted.os && have.architecture === wanted.architecture && have.variant === wanted.variant;
  }).map((t) => t.triple);
}

/**
 * Where a triple sorts among the entries of an index: glibc (and non-Linux) builds before musl
 * ones, so a client that picks the first entry matching its platform gets the glibc build; then
 * table order. Unknown triples sort last, by name.
 */
export function compareTriples(a: string, b: string): number {
  const rank = (triple: string) => {
    const i = TRIPLES.findIndex((t) => t.triple === triple);
    if (i < 0) return [2, 0] as const;
    return [TRIPLES[i]!.node.libc === 'musl' ? 1 : 0, i] as const;
  };
  const [ra, rb] = [rank(a), rank(b)];
  return ra[0] - rb[0] || ra[1] - rb[1] || (a < b ? -1 : a > b ? 1 : 0);
}

let cachedLibc: 'gnu' | 'musl' | undefined;

/**
 * glibc or musl, read from the ELF interpreter of the running node binary (no process report: it
 * is slow). One 4 KiB read, once per process: this runs on the warm path of every ocipkg-link call.
 */
function hostLibc(): 'gnu' | 'musl' {
  cachedLibc ??= readHostLibc();
  return cachedLibc;
}

function readHostLibc(): 'gnu' | 'musl' {
  let fd: number | undefined;
  try {
    fd = openSync(process.execPath, 'r');
    const head = Buffer.alloc(4096);
    const n = readSync(fd, head, 0, head.length, 0);
    // Searched as a string: Buffer#includes costs ~0.25 ms on its first call.
    return head.toString('latin1', 0, n).includes('ld-musl') ? 'musl' : 'gnu';
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

/**
 * The triple to resolve for. The one place the override order lives:
 *
 * 1. `explicit`: a `--target` flag; CMake's `ocipkg_add_package(... TARGET t)` (or the triple it
 *    derives when cross-compiling) reaches ocipkg-link as `--target` too.
 * 2. node-gyp's target architecture: `node-gyp --arch=arm64` exports `npm_config_arch` to the
 *    commands binding.gyp runs; when it differs from the running node's, this is a cross build
 *    and the target's build is wanted, not the host's. An `OCIPKG_TARGET` for that same
 *    architecture still refines it (musl, an older arm).
 * 3. `OCIPKG_TARGET`.
 * 4. The host: process.platform, process.arch and the C library node was linked against.
 */
export function selectTriple(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit) return assertTriple(explicit);
  const fromEnv = env.OCIPKG_TARGET ? assertTriple(env.OCIPKG_TARGET) : undefined;
  const crossArch = env.npm_config_arch;
  if (crossArch && crossArch !== process.arch) {
    const cross = nodeToTriple(process.platform, crossArch);
    const refined = fromEnv && TRIPLES.find((t) => t.triple === fromEnv)!.node;
    if (refined && refined.platform === process.platform && refined.arch === crossArch) return fromEnv!;
    return cross;
  }
  return fromEnv ?? nodeToTriple(process.platform, process.arch);
}

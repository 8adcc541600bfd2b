import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, delimiter, join, sep } from 'node:path';
import { OcipkgError } from '../errors.js';
import { packagePath, expandDir, generatedPcDir } from '../link/description.js';
import { computeLinkFlags, formatFlagLine, isIncludeFlag, libFlagKind, type LinkFlags } from '../link/flags.js';
import { declaredPackage, resolveAlias } from '../project/manifest.js';
import { coldPath } from '../cold.js';
import { resolveStoredWithRequirements, resolveWithRequirements, type ResolvedPackage } from '../resolve.js';
import type { Walked } from '../requirements.js';
import { selectTriple } from '../triple.js';
import { debugEnabled, escapeControls, isQuiet, parseOptions, printLine, progress, runMain, setProgressLog, sizeThreadPool, usageError } from './common.js';

/**
 * `ocipkg-link`: pkg-config for images. Resolves each image to a package in the store (fetching it
 * when missing) and prints flags computed from the link descriptions stored with the packages.
 * The warm path reads a few small JSON files; nothing here loads HTTP or tar code.
 */

const USAGE = `Usage: ocipkg-link [options] IMAGE...

Prints compile and link flags for prebuilt libraries published as OCI images, like pkg-config.
Once an image is in the store it is answered from there, without the network, even when its tag
has moved since: \`ocipkg get IMAGE\` (or \`ocipkg update\` for declared packages) follows a tag.

Flags (one line on stdout; cflags come before libs):
  --cflags               -I, -D and other compile flags
  --cflags-only-I        only the -I flags
  --cflags-only-other    compile flags other than -I
  --libs                 -L, libraries, link flags and, for shared libraries, an rpath of
                         $ORIGIN (@loader_path on macOS): copy --runtime-files next to the addon
  --libs-only-L          only the -L flags
  --libs-only-l          only the libraries (-lNAME for shared ones, the archive path for static)
  --libs-only-other      link flags other than -L and libraries
  --include-dirs         include directories
  --lib-dirs             directories of the shared libraries
  --lib-files            every library file linked
  --runtime-files        shared libraries to ship beside the addon
  --prefix               package directories (generated files only; prefer the two paths below)

Other outputs (alone):
  --pkg-config-path      a PKG_CONFIG_PATH (':'-separated, ';' on Windows) over the images and
                         all they require, for plain pkg-config: package names and the module
                         names packages ship (libpng16)
  --cmake-prefix-path    a CMAKE_PREFIX_PATH (';'-separated) over the images and all they require:
                         find_package(<name> CONFIG) and CMake's Find modules (find_package(ZLIB))
  --json                 everything above as one JSON object
  --modversion           the version of each image, one per line
  --variable=NAME        a pkg-config variable (prefix, includedir, libdir, pcfiledir, ...)
  --exists               print nothing; exit 0 when every image resolves, 1 otherwise
  --copy-runtime-files=DIR
                         copy the --runtime-files into DIR (beside the addon, where the rpath
                         of --libs finds them) and write DIR/ocipkg-runtime.stamp; prints the
                         copies (a node-gyp action's step: see the README)

Options:
  --static               link static builds where a library has both (the default)
  --shared               link shared builds where a library has both
  --target TRIPLE        target triple (default: npm_config_arch when node-gyp cross-builds
                         for another arch, then $OCIPKG_TARGET, then the host)
  --offline              use the store only, never the network (as OCIPKG_OFFLINE=1 does)
  --for-make             spell $ORIGIN as Make needs it ('$$ORIGIN'), for node-gyp's Makefiles
  --verbose              stack traces on errors
  -q, --quiet            no download progress on stderr
  -h, --help             this help
  -v, --version          ocipkg's version

A package already in the store is used from there, with no network (the warm path): a tag
fetched once is not looked up again here; ocipkg-lock.json pins win over tags.
`;

const OPTIONS = {
  cflags: { type: 'boolean' },
  'cflags-only-I': { type: 'boolean' },
  'cflags-only-other': { type: 'boolean' },
  libs: { type: 'boolean' },
  'libs-only-L': { type: 'boolean' },
  'libs-only-l': { type: 'boolean' },
  'libs-only-other': { type: 'boolean' },
  'include-dirs': { type: 'boolean' },
  'lib-dirs': { type: 'boolean' },
  'lib-files': { type: 'boolean' },
  'runtime-files': { type: 'boolean' },
  prefix: { type: 'boolean' },
  'pkg-config-path': { type: 'boolean' },
  'cmake-prefix-path': { type: 'boolean' },
  json: { type: 'boolean' },
  modversion: { type: 'boolean' },
  variable: { type: 'string' },
  exists: { type: 'boolean' },
  static: { type: 'boolean' },
  shared: { type: 'boolean' },
  target: { type: 'string' },
  offline: { type: 'boolean' },
  'for-make': { type: 'boolean' },
  'copy-runtime-files': { type: 'string' },
  version: { type: 'boolean', short: 'v' },
} as const;

/** Outputs that print a line of flags or paths, combinable, in this order. */
const LINE_OUTPUTS = [
  'cflags',
  'cflags-only-I',
  'cflags-only-other',
  'libs',
  'libs-only-L',
  'libs-only-l',
  'libs-only-other',
  'include-dirs',
  'lib-dirs',
  'lib-files',
  'runtime-files',
  'prefix',
] as const;
const ALONE_OUTPUTS = ['pkg-config-path', 'cmake-prefix-path', 'json', 'modversion', 'variable', 'exists', 'copy-runtime-files'] as const;

/** A package to link: named on the command line (`requested`) or pulled in by another's `requires`. */
interface LinkedPackage extends ResolvedPackage {
  image: string;
  requested: boolean;
}

/** Forward slashes everywhere: the output feeds Make, gyp and CMake, which all take them. */
const slashes = (path: string) => path.split(sep).join('/');

let shown = false;

/**
 * Before the cold path fetches: the process tuned and (unless --quiet) progress shown, both from
 * dist/ through cold.ts, the bundle's one way there (the bytes are counted by dist/'s modules).
 */
async function tuneTransfers(): Promise<void> {
  // Here, not at the start: the warm path makes no asynchronous call, and os costs it ~0.2 ms.
  sizeThreadPool(1);
  const cold = await coldPath();
  cold.tuneForTransfers();
  if (shown || isQuiet()) return;
  shown = true;
  setProgressLog((await cold.showTransfers('fetching')).log);
}

type ResolveAllOptions = { target: string; offline: boolean | undefined };

/** The images (or declared aliases) and what they require, in link order. */
async function resolveAll(images: string[], options: ResolveAllOptions): Promise<LinkedPackage[]> {
  return linked(await resolveWithRequirements(images.map((image) => resolveAlias(image)), { ...options, progress, beforeFetch: tuneTransfers }));
}

/** resolveAll from the store alone, synchronously; undefined when something would have to be fetched. */
function resolveStoredAll(images: string[], options: ResolveAllOptions): LinkedPackage[] | undefined {
  const walked = resolveStoredWithRequirements(images.map((image) => resolveAlias(image)), options);
  return walked && linked(walked);
}

function linked(walked: Walked<ResolvedPackage>[]): LinkedPackage[] {
  return walked.map(({ image, requested, value }) => ({ image, requested, ...value }));
}

/** The packages of a request: the store's when it has them all (the CommonJS API's path too), else fetching. */
async function packagesOf({ images, resolveOptions }: Request): Promise<LinkedPackage[]> {
  return resolveStoredAll(images, resolveOptions) ?? resolveAll(images, resolveOptions);
}

/** Whether package.json asks for shared builds: every image named is an alias declared with `"linkage": "shared"`. */
function declaredShared(images: string[]): boolean {
  return images.every((image) => declaredPackage(image)?.linkage === 'shared');
}

/** pkg-config variables of a package: the usual three and pcfiledir, then any from a shipped `.pc`. */
function variables(entry: LinkedPackage): Record<string, string> {
  const { dir, root } = entry.pkg;
  const desc = entry.description;
  const firstLib = desc.libraries[0];
  const shipped = Object.fromEntries(Object.entries(desc.variables).map(([key, value]) => [key, expandDir(dir, value)]));
  return {
    prefix: root,
    includedir: desc.includeDirs[0] !== undefined ? packagePath(dir, desc.includeDirs[0]) : join(root, 'include'),
    libdir: firstLib ? join(packagePath(dir, firstLib.file), '..') : join(root, 'lib'),
    pcfiledir: generatedPcDir(dir),
    ...shipped,
  };
}

/** Outputs that only make sense for a package with something to link. */
const LINK_OUTPUTS = new Set<string>(['libs', 'libs-only-l', 'lib-files']);

function lineOutput(output: (typeof LINE_OUTPUTS)[number], flags: LinkFlags, packages: LinkedPackage[]): string[] {
  switch (output) {
    case 'cflags':
      return flags.cflags;
    case 'cflags-only-I':
      return flags.cflags.filter(isIncludeFlag);
    case 'cflags-only-other':
      return flags.cflags.filter((flag) => !isIncludeFlag(flag));
    case 'libs':
      return flags.libs;
    case 'libs-only-L':
      return flags.libs.filter((flag) => libFlagKind(flag, flags) === 'L');
    case 'libs-only-l':
      return flags.libs.filter((flag) => libFlagKind(flag, flags) === 'l');
    case 'libs-only-other':
      return flags.libs.filter((flag) => libFlagKind(flag, flags) === 'other');
    case 'include-dirs':
      return flags.includeDirs;
    case 'lib-dirs':
      return flags.libDirs;
    case 'lib-files':
      return flags.libFiles;
    case 'runtime-files':
      return flags.runtimeFiles;
    case 'prefix':
      return packages.map((p) => slashes(p.pkg.dir));
  }
}

/**
 * The directories pkg-config and CMake search, over the whole closure in link order: the generated
 * files of every package, then (for CMake's Find modules, which look for headers and libraries
 * under each prefix) the package roots. Generated files first, so that a generated module or config
 * wins over anything of the same name a package ships in its root.
 */
function searchPaths(packages: LinkedPackage[]): { pkgConfigPath: string[]; cmakePrefixPath: string[] } {
  return {
    pkgConfigPath: packages.map((p) => slashes(generatedPcDir(p.pkg.dir))),
    cmakePrefixPath: [...packages.map((p) => slashes(p.pkg.dir)), ...packages.map((p) => slashes(p.pkg.root))],
  };
}

/** A search path as one string; a directory holding the separator would split in two, so it is refused. */
function joinPath(dirs: string[], separator: string, variable: string): string {
  const split = dirs.find((dir) => dir.includes(separator));
  if (split !== undefined) throw new OcipkgError('EINPUT', `${split} holds '${separator}', which ${variable} cannot carry: move the store (OCIPKG_DATA_DIR)`);
  return dirs.join(separator);
}

function jsonOutput(flags: LinkFlags, packages: LinkedPackage[]): string {
  return JSON.stringify({
    packages: packages.map(({ image, pkg, description }) => ({
      image,
      name: description.name,
      version: description.version ?? null,
      target: pkg.target ?? null,
      manifestDigest: pkg.manifestDigest,
      dir: slashes(pkg.dir),
      root: slashes(pkg.root),
    })),
    includeDirs: flags.includeDirs,
    defines: flags.defines,
    cflags: flags.cflags,
    libDirs: flags.libDirs,
    libFiles: flags.libFiles,
    libs: flags.libs,
    runtimeFiles: flags.runtimeFiles,
    prefix: packages.map((p) => slashes(p.pkg.dir)),
    ...searchPaths(packages),
    libraries: flags.libraries,
  });
}

/**
 * node-gyp has no step that copies a shared library beside the addon correctly: its `copies`
 * hard-links a symlink as the symlink (the store holds libgreet.so.1 -> libgreet.so.1.2.0), which
 * dangles there. Each file is copied by content, replacing a previous copy (read-only, as the
 * store's files are), and the stamp (the gyp action's declared output) lists them.
 */
function copyRuntimeFiles(files: string[], dir: string): string[] {
  if (dir === '') throw usageError('--copy-runtime-files needs a directory');
  mkdirSync(dir, { recursive: true });
  const copies = files.map((file) => {
    const copy = join(dir, basename(file));
    rmSync(copy, { force: true });
    copyFileSync(file, copy);
    return slashes(copy);
  });
  writeFileSync(join(dir, 'ocipkg-runtime.stamp'), `${files.join('\n')}\n`);
  return copies;
}

function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  return manifest.version;
}

type Values = ReturnType<typeof parseOptions<typeof OPTIONS>>['values'];

/** One ocipkg-link call, its options checked. */
interface Request {
  values: Values;
  images: string[];
  lines: (typeof LINE_OUTPUTS)[number][];
  target: string;
  resolveOptions: ResolveAllOptions;
}

/** The call `argv` makes, or the text of --help or --version. */
function parseRequest(argv: string[]): Request | string {
  const { values, positionals: images } = parseOptions(argv, OPTIONS);
  if (values.help) return USAGE.trimEnd();
  if (values.version) return packageVersion();

  const lines = LINE_OUTPUTS.filter((name) => values[name]);
  const alone = ALONE_OUTPUTS.filter((name) => values[name] !== undefined && values[name] !== false);
  if (images.length === 0) throw usageError('no image given (usage: ocipkg-link [options] IMAGE..., see --help)');
  if (lines.length + alone.length === 0) {
    throw usageError('no output requested: pass --cflags, --libs, --json or another output flag (see --help)');
  }
  if (alone.length > 0 && lines.length + alone.length > 1) {
    throw usageError(`--${alone[0]} cannot be combined with other output flags`);
  }
  if (values.static && values.shared) throw usageError('--static and --shared exclude each other');

  const target = selectTriple(values.target);
  // Unset, resolve.ts reads OCIPKG_OFFLINE.
  return { values, images, lines, target, resolveOptions: { target, offline: values.offline } };
}

/** What a request prints (one line, or one per image for --modversion), given its packages. */
function respond({ values, images, lines, target }: Request, packages: LinkedPackage[]): string {
  const requested = packages.filter((p) => p.requested);
  if (values.modversion) return requested.map((p) => p.description.version ?? '').join('\n');
  if (values.variable !== undefined) {
    return requested.map((p) => slashes(variables(p)[values.variable!] ?? '')).join(' ');
  }
  if (values['pkg-config-path']) return joinPath(searchPaths(packages).pkgConfigPath, delimiter, 'PKG_CONFIG_PATH');
  if (values['cmake-prefix-path']) return joinPath(searchPaths(packages).cmakePrefixPath, ';', 'CMAKE_PREFIX_PATH');

  // Asking to link a package that has nothing to link is a mistake (a wrong image, a headers-only
  // package): fail rather than print a line the build would take as complete.
  if (lines.some((name) => LINK_OUTPUTS.has(name))) {
    const empty = requested.find((p) => p.description.libraries.length === 0 && p.description.linkFlags.length === 0);
    if (empty) {
      throw new OcipkgError('ENOLIBS', `${empty.image} provides no libraries to link (headers only?); ask for --cflags alone`);
    }
  }

  const flags = computeLinkFlags(
    packages.map((p) => ({ dir: slashes(p.pkg.dir), description: p.description, image: p.image })),
    { shared: values.shared ?? (!values.static && declaredShared(images)), target, forMake: values['for-make'] ?? false },
  );
  if (values.json) return jsonOutput(flags, packages);
  if (values['copy-runtime-files'] !== undefined) return formatFlagLine(copyRuntimeFiles(flags.runtimeFiles, values['copy-runtime-files']));
  return formatFlagLine(lines.flatMap((name) => lineOutput(name, flags, packages)));
}

async function link(argv: string[]): Promise<void> {
  const request = parseRequest(argv);
  if (typeof request === 'string') return printLine(request);
  if (request.values.exists) {
    try {
      await packagesOf(request);
    } catch (err) {
      // pkg-config --exists is silent; the reason is there for whoever asks.
      if (debugEnabled(argv)) process.stderr.write(`ocipkg-link: ${escapeControls((err as Error).message)}\n`);
      process.exitCode = 1;
    }
    return;
  }
  printLine(respond(request, await packagesOf(request)));
}

/**
 * What `ocipkg-link ARGV` prints, when the store alone can answer, returned at once: the CommonJS
 * API (src/cjs/) runs the bundle in-process and calls this, and runs the CLI when it returns
 * undefined (a package to fetch; --exists, whose answer is an exit status). Failures throw, as they
 * reach runMain in the CLI.
 */
export function storedLinkOutput(argv: string[]): string | undefined {
  const request = parseRequest(argv);
  if (typeof request === 'string') return request;
  if (request.values.exists) return undefined;
  const packages = resolveStoredAll(request.images, request.resolveOptions);
  return packages && respond(request, packages);
}

export async function main(argv: string[]): Promise<void> {
  await runMain('ocipkg-link', argv, () => link(argv));
  // pkg-config exits 1 on every failure, usage errors included; build tools rely on nothing finer.
  if (process.exitCode) process.exitCode = 1;
}

import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, realpath, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { errno, OcipkgError } from '../errors.js';
import { ANNOTATION_VERSION } from '../oci/mediatypes.js';
import { gnuCxxForMsvc, inspectFile } from '../package/binary/index.js';
import { discoverIncludeDirs, discoverLibraries, importedDll } from '../package/discover.js';
import { frameworkOf, linkerFileNames } from '../package/library-name.js';
import type { LibraryKind, PackageMetadata } from '../artifact/config.js';
import { PACKAGE_ROOT_DIR } from '../store/paths.js';
import type { PackageInfo } from '../store/package.js';
import { formatCMakeConfig, formatCMakeConfigVersion } from './cmake.js';
import { LINK_FILE, expandDir, generatedPcDir, type LinkDescription, type LinkLibrary } from './description.js';
import { DIR_PLACEHOLDER, isName, isSafeValue, PackageDataChecker } from '../artifact/package-data.js';
import { computeLinkFlags } from './flags.js';
import { formatPcFile, parsePcFile, type PcFile } from '../pkgconfig.js';

/**
 * Works out a package's link description once, when it is installed, and writes it with a
 * generated `.pc` file and CMake package config beside the extracted files:
 *
 *   <dir>/link.json
 *   <dir>/lib/pkgconfig/<name>.pc                   PKG_CONFIG_PATH=<dir>/lib/pkgconfig
 *   <dir>/lib/pkgconfig/<module>.pc                 the same, per module the package ships a .pc for
 *   <dir>/lib/cmake/<name>/<name>Config.cmake       CMAKE_PREFIX_PATH=<dir>
 *   <dir>/lib/cmake/<name>/<name>ConfigVersion.cmake
 *
 * The description comes from, in order: the metadata `ocipkg pack` wrote; `.pc` files the package
 * ships; libraries discovered by file name (artifacts of the Rust ocipkg carry neither).
 */

const ROOT = PACKAGE_ROOT_DIR;
const ROOT_IN_DIR = `${DIR_PLACEHOLDER}/${ROOT}`;

/** `@dir@/root/x` -> `root/x` (relative to the package dir); anything else is kept. */
function fromPlaceholder(path: string): string {
  if (path === DIR_PLACEHOLDER) return '.';
  return path.startsWith(`${DIR_PLACEHOLDER}/`) ? posix.normalize(path.slice(DIR_PLACEHOLDER.length + 1)) : path;
}

/** Names usable as a file name, a pkg-config module and a CMake namespace. */
function safeName(name: string): string {
  return name.replace(/[^A-Za-z0-9_.+-]/g, '_') || 'package';
}

/** The file the loader will look for: the ELF SONAME (or Mach-O install name) beside the library. */
async function runtimeFile(dir: string, file: string, soname: string | undefined): Promise<string | undefined> {
  let name = soname;
  if (name === undefined) {
    try {
      name = (await inspectFile(join(dir, file)))[0]?.soname;
    } catch {
      // Not a binary ocipkg can read (a linker script, say): ship the file as named.
    }
  }
  if (name === undefined) return undefined;
  const candidate = posix.join(posix.dirname(file), posix.basename(name));
  return existsSync(join(dir, candidate)) ? candidate : undefined;
}

/**
 * The DLL an import library stands for, where metadata does not say (packed before it recorded
 * `runtime`, or discovered): the one its members name, beside it or in the package's `bin/`.
 */
async function dllOf(dir: string, importLibrary: string): Promise<string | undefined> {
  const dll = await importedDll(join(dir, importLibrary)).catch(() => undefined);
  if (dll === undefined || !isName(dll)) return undefined;
  const lower = dll.toLowerCase();
  for (const where of [posix.dirname(importLibrary), posix.join(ROOT, 'bin'), posix.join(posix.dirname(importLibrary), '..', 'bin')]) {
    const found = (await listDir(join(dir, where))).find((entry) => entry.toLowerCase() === lower);
    if (found !== undefined) return posix.normalize(posix.join(where, found));
  }
  return undefined;
}

/**
 * One library as the description records it. Shared ones get the file that loads at run time:
 * the ELF / Mach-O file under its SONAME or install name, the DLL of a Windows import library
 * (`importLibrary`, which is also `file`, what links), none for a `.tbd` stub whose dylib the
 * package does not ship (a library of the system, which macOS provides).
 */
async function linkLibrary(dir: string, name: string, kind: LibraryKind, file: string, soname?: string, recordedRuntime?: string): Promise<LinkLibrary> {
  if (kind === 'static') return { name, kind, file };
  if (/\.(lib|a)$/i.test(file)) {
    const runtime = recordedRuntime ?? (await dllOf(dir, file));
    return { name, kind, file, runtime: runtime ?? null, importLibrary: file };
  }
  // A framework ships whole (its binary, resources, the Versions/Current link): the `.framework` directory.
  const framework = frameworkOf(file);
  if (framework !== undefined) return { name, kind, file, runtime: /\.tbd$/.test(file) ? null : framework.bundle };
  const runtime = await runtimeFile(dir, file, soname);
  if (/\.tbd$/.test(file)) return { name, kind, file, runtime: runtime ?? null };
  return { name, kind, file, runtime: runtime ?? file };
}

async function fromMetadata(dir: string, meta: PackageMetadata, fallbackVersion: string | undefined): Promise<LinkDescription> {
  const version = meta.version ?? fallbackVersion;
  return {
    schema: 1,
    source: 'metadata',
    name: safeName(meta.name),
    ...(version !== undefined && { version }),
    includeDirs: meta.includeDirs.map((d) => posix.join(ROOT, d)),
    defines: meta.defines,
    cflags: [],
    libraries: await Promise.all(meta.libraries.map((lib) => linkLibrary(dir, lib.name, lib.kind, posix.join(ROOT, lib.file), lib.soname, lib.runtime && posix.join(ROOT, lib.runtime)))),
    linkFlags: meta.linkFlags,
    staticLinkFlags: meta.staticLinkFlags,
    requires: meta.requires,
    pkgconfigRequires: [],
    variables: {},
  };
}

async function listDir(path: string): Promise<string[]> {
  try {
    return await readdir(path);
  } catch (err) {
    if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return [];
    throw err;
  }
}

/** `.pc` files under the package root's usual pkgconfig dirs, relative to the root. */
async function findPcFiles(root: string): Promise<string[]> {
  const dirs = ['lib/pkgconfig', 'lib64/pkgconfig', 'share/pkgconfig'];
  for (const entry of await listDir(join(root, 'lib'))) {
    // Debian-style multiarch: lib/x86_64-linux-gnu/pkgconfig.
    if (entry.includes('-')) dirs.push(`lib/${entry}/pkgconfig`);
  }
  const found: string[] = [];
  for (const dir of dirs) {
    for (const entry of (await listDir(join(root, dir))).sort()) if (entry.endsWith('.pc')) found.push(`${dir}/${entry}`);
  }
  return found;
}

/**
 * The pkg-config modules the package ships a `.pc` for that get a generated `.pc` of their own:
 * those whose file name is a name, other than the package's own and those of the packages it
 * requires (a module of that name would require itself). Compared without case, as macOS and
 * Windows file systems do.
 */
async function shippedModules(dir: string, name: string, requiredNames: string[]): Promise<string[]> {
  const taken = new Set([name, ...requiredNames].map((n) => n.toLowerCase()));
  const modules = new Map<string, string>();
  for (const rel of await findPcFiles(join(dir, ROOT))) {
    const module = posix.basename(rel, '.pc');
    if (isName(module) && !taken.has(module.toLowerCase()) && !modules.has(module.toLowerCase())) modules.set(module.toLowerCase(), module);
  }
  return [...modules.values()];
}

/** One build of a library a `.pc` file names. */
interface LibraryBuild {
  kind: LibraryKind;
  /** Relative to the package dir. */
  file: string;
}

/** The builds of `-l<name>` in the package's library dirs, first dir that has any wins. */
async function findLibrary(dir: string, searchDirs: string[], name: string): Promise<LibraryBuild[]> {
  const names = linkerFileNames(name);
  for (const libDir of searchDirs) {
    const entries = await listDir(join(dir, libDir));
    const has = (file: string) => entries.includes(file);
    const builds: LibraryBuild[] = [];
    const archive = names.static.find(has);
    if (archive) builds.push({ kind: 'static', file: `${libDir}/${archive}` });
    // A package may ship only libfoo.so.1, which -lfoo would not find but its path links.
    const shared = names.shared.find(has) ?? entries.filter((e) => e.startsWith(`lib${name}.so.`)).sort((a, b) => a.length - b.length)[0];
    if (shared) builds.push({ kind: 'shared', file: `${libDir}/${shared}` });
    if (builds.length > 0) return builds;
  }
  return [];
}

/** Shipped modules ordered so that each comes before the shipped modules it requires. */
function linkOrder(modules: Map<string, PcFile>): string[] {
  const requiresOf = (name: string) =>
    [...modules.get(name)!.requires, ...modules.get(name)!.requiresPrivate].map((r) => r.name).filter((r) => modules.has(r));
  const required = new Set([...modules.keys()].flatMap(requiresOf));
  const done = new Set<string>();
  const postorder: string[] = [];
  const visit = (name: string) => {
    if (done.has(name)) return;
    done.add(name);
    for (const dep of requiresOf(name)) visit(dep);
    postorder.push(name);
  };
  // Modules nobody requires first, so a lone top-level module names the package.
  for (const name of [...modules.keys()].filter((n) => !required.has(n))) visit(name);
  for (const name of modules.keys()) visit(name);
  return postorder.reverse();
}

async function fromPcFiles(dir: string, pcFiles: string[], fallbackVersion: string | undefined): Promise<LinkDescription> {
  const modules = new Map<string, PcFile>();
  for (const rel of pcFiles) {
    const text = await readFile(join(dir, ROOT, rel), 'utf8');
    const pcfiledir = `${ROOT_IN_DIR}/${posix.dirname(rel)}`;
    modules.set(posix.basename(rel, '.pc'), parsePcFile(text, `${ROOT}/${rel}`, { pcfiledir, prefix: ROOT_IN_DIR }));
  }
  const order = linkOrder(modules);
  const top = modules.get(order[0]!)!;
  const desc: LinkDescription = {
    schema: 1,
    source: 'pkgconfig',
    name: safeName(order[0]!),
    ...((top.version ?? fallbackVersion) !== undefined && { version: top.version ?? fallbackVersion! }),
    includeDirs: [],
    defines: [],
    cflags: [],
    libraries: [],
    linkFlags: [],
    staticLinkFlags: [],
    requires: [],
    pkgconfigRequires: [],
    variables: Object.fromEntries(Object.entries(top.variables).filter(([key]) => key !== 'pcfiledir')),
  };
  const push = (list: string[], value: string) => list.includes(value) || list.push(value);

  for (const name of order) {
    const pc = modules.get(name)!;
    for (const flag of pc.cflags) {
      if (flag.startsWith('-I') && flag.length > 2) push(desc.includeDirs, fromPlaceholder(flag.slice(2)));
      else if (flag.startsWith('-D') && flag.length > 2) push(desc.defines, flag.slice(2));
      else push(desc.cflags, flag);
    }
    const searchDirs = pc.libs.filter((f) => f.startsWith(`-L${DIR_PLACEHOLDER}/`)).map((f) => fromPlaceholder(f.slice(2)));
    searchDirs.push(`${ROOT}/lib`);
    for (const flag of pc.libs) {
      if (flag.startsWith('-L')) continue;
      const builds = flag.startsWith('-l') ? await findLibrary(dir, searchDirs, flag.slice(2)) : [];
      if (builds.length > 0) {
        for (const build of builds) desc.libraries.push(await linkLibrary(dir, flag.slice(2), build.kind, build.file));
      } else {
        // A system library (`-lm`) or a flag (`-pthread`): passed on as written.
        desc.linkFlags.push(flag);
      }
    }
    for (const flag of pc.libsPrivate) if (!flag.startsWith('-L')) desc.staticLinkFlags.push(flag);
    for (const req of [...pc.requires, ...pc.requiresPrivate]) {
      if (!modules.has(req.name)) push(desc.pkgconfigRequires, req.name);
    }
  }
  return desc;
}

async function fromDiscovery(dir: string, pkg: PackageInfo, fallbackVersion: string | undefined): Promise<LinkDescription> {
  const libraries = await discoverLibraries(join(dir, ROOT));
  const includeDirs = (await discoverIncludeDirs(join(dir, ROOT))).map((d) => posix.join(ROOT, d));
  const name = pkg.manifest.annotations?.['org.opencontainers.image.title'] ?? libraries[0]?.name ?? 'package';
  return {
    schema: 1,
    source: 'discovery',
    name: safeName(name),
    ...(fallbackVersion !== undefined && { version: fallbackVersion }),
    includeDirs,
    defines: [],
    cflags: [],
    libraries: await Promise.all(libraries.map((lib) => linkLibrary(dir, lib.name, lib.kind, posix.join(ROOT, lib.file), lib.soname, lib.runtime && posix.join(ROOT, lib.runtime)))),
    linkFlags: [],
    staticLinkFlags: [],
    requires: [],
    pkgconfigRequires: [],
    variables: {},
  };
}

/**
 * The link description of the package whose files are in `dir` (`dir/root` holds the layers),
 * checked as package data: the metadata was checked when the config was read, but a shipped `.pc`,
 * the version annotation and file names found on disk are the package's too. `what` names the
 * package in messages.
 */
export async function describePackage(dir: string, pkg: PackageInfo, what: string = pkg.manifestDigest): Promise<LinkDescription> {
  const version = pkg.manifest.annotations?.[ANNOTATION_VERSION];
  const pcFiles = pkg.config.package ? [] : await findPcFiles(join(dir, ROOT));
  const desc = pkg.config.package
    ? await fromMetadata(dir, pkg.config.package, version)
    : pcFiles.length > 0
      ? await fromPcFiles(dir, pcFiles, version)
      : await fromDiscovery(dir, pkg, version);
  const checked = checkDescription(desc, what);
  await checkFilesInside(dir, checked, what);
  if (pkg.target?.endsWith('-windows-msvc')) await checkMsvcLinkable(dir, checked, pkg.target, what);
  return checked;
}

/**
 * A package installed for an MSVC triple must not hold GNU-ABI C++, whatever its metadata says (it
 * may predate the check `ocipkg pack` makes, or come from another tool): the build would fail at
 * link time with unresolved Itanium-mangled names, or worse, link C++ across two ABIs.
 */
async function checkMsvcLinkable(dir: string, desc: LinkDescription, target: string, what: string): Promise<void> {
  for (const lib of desc.libraries) {
    // Named as in the package (`lib/libgreet.dll.a(member.o)`), not by the staging path.
    const objects = (await inspectFile(join(dir, lib.file)).catch(() => [])).map((o) => ({ ...o, where: o.where.replace(`${join(dir, ROOT)}/`, '') }));
    const problem = gnuCxxForMsvc(objects, target);
    if (problem !== undefined) throw new OcipkgError('EMANIFEST', `${what}: ${problem}`);
  }
}

/** A path a flag gives into the package, anchored at the package's root where it is relative to it. */
function inPackageRoot(path: string): string {
  return path.startsWith(`${DIR_PLACEHOLDER}/`) ? path : `${ROOT_IN_DIR}/${path}`;
}

/**
 * Every value of a description through the package-data checks; fields named as the source names
 * them. Returned with the paths its flags give anchored at the package's root (inPackageRoot).
 */
function checkDescription(desc: LinkDescription, what: string): LinkDescription {
  const check = new PackageDataChecker(what);
  const from = desc.source === 'pkgconfig' ? '.pc ' : '';
  check.name(`${from}name`, desc.name);
  if (desc.version !== undefined) check.version(desc.source === 'metadata' ? 'package.version' : `${from}version (or ${ANNOTATION_VERSION})`, desc.version);
  for (const dir of desc.includeDirs) check.packagePath(`${from}include directory`, dir);
  for (const define of desc.defines) check.define(`${from}definition`, define);
  const cflags = check.compileFlags(`${from}Cflags`, desc.cflags, inPackageRoot);
  for (const lib of desc.libraries) {
    check.name(`${from}library name`, lib.name);
    for (const file of [lib.file, lib.runtime, lib.importLibrary]) if (typeof file === 'string') check.packagePath(`${from}library file`, file);
  }
  const linkFlags = check.linkFlags(`${from}Libs`, desc.linkFlags, inPackageRoot);
  const staticLinkFlags = check.linkFlags(`${from}Libs.private`, desc.staticLinkFlags, inPackageRoot);
  for (const module of desc.pkgconfigRequires) check.name('.pc Requires', module);
  for (const [key, value] of Object.entries(desc.variables)) {
    check.name('.pc variable name', key);
    check.packagePath(`.pc variable ${key}`, value);
  }
  return { ...desc, cflags, linkFlags, staticLinkFlags };
}

/**
 * The files a build links or ships must really be the package's: each resolved (symlinks followed)
 * inside the package's root, whatever its name says.
 */
async function checkFilesInside(dir: string, desc: LinkDescription, what: string): Promise<void> {
  const root = await realpath(join(dir, ROOT));
  // Library files a link flag names (anchored by checkDescription) as well as the libraries'.
  const flagFiles = [...desc.linkFlags, ...desc.staticLinkFlags].filter((flag) => flag.startsWith(`${DIR_PLACEHOLDER}/`)).map(fromPlaceholder);
  for (const file of [...desc.libraries.flatMap((lib) => [lib.file, lib.runtime, lib.importLibrary]), ...flagFiles]) {
    if (typeof file !== 'string') continue;
    const real = await realpath(join(dir, file)).catch((err: unknown) => {
      if (errno(err) === 'ENOENT') throw new OcipkgError('EMANIFEST', `${what}: library file ${file} is not in the package`);
      throw err;
    });
    if (!real.startsWith(`${root}/`)) throw new OcipkgError('EUNSAFE', `${what}: library file ${file} leads outside the package`);
  }
}

/**
 * The generated `.pc` of module `module` (the package's own name, or a module it ships): paths
 * relative to its own location, the default (static-first) selection.
 */
function generatedPc(desc: LinkDescription, target: string | undefined, requiredNames: string[], module: string = desc.name): string {
  // pkg-config expands `${...}` and its output lands in Makefiles and shells: whatever reaches this
  // point unchecked stops here, before the references below are added.
  const values = [module, desc.name, desc.version ?? '1', ...desc.includeDirs, ...desc.defines, ...desc.cflags, ...desc.linkFlags, ...desc.staticLinkFlags,
    ...desc.libraries.flatMap((lib) => [lib.file, lib.runtime ?? lib.file]), ...Object.values(desc.variables), ...requiredNames];
  const unsafe = values.find((value) => !isSafeValue(value));
  if (unsafe !== undefined) throw new OcipkgError('EUNSAFE', `generating a .pc file: refusing ${JSON.stringify(unsafe)}`);
  const base = '${pcfiledir}/../..';
  const flags = computeLinkFlags([{ dir: base, description: desc }], { ...(target !== undefined && { target }) });
  const inRoot = (path: string) => (path.startsWith(`${base}/${ROOT}/`) ? `\${prefix}/${path.slice(base.length + ROOT.length + 2)}` : path);
  const shipped = Object.entries(desc.variables)
    .filter(([key]) => !['prefix', 'includedir', 'libdir'].includes(key))
    .map(([key, value]): [string, string] => [key, expandDir(base, value)]);
  const libFile = desc.libraries[0]?.file;
  return formatPcFile({
    variables: [
      ['prefix', `${base}/${ROOT}`],
      ['includedir', inRoot(flags.includeDirs[0] ?? `${base}/${ROOT}/include`)],
      ['libdir', inRoot(libFile ? posix.dirname(`${base}/${libFile}`) : `${base}/${ROOT}/lib`)],
      ...shipped,
    ],
    name: module,
    description: module === desc.name ? `${desc.name}, installed by ocipkg` : `${module} of package ${desc.name}, installed by ocipkg`,
    version: desc.version ?? '',
    cflags: flags.cflags.map((flag) => (flag.startsWith('-I') ? `-I${inRoot(flag.slice(2))}` : flag)),
    libs: flags.libs.map((flag) => (flag.startsWith('-L') ? `-L${inRoot(flag.slice(2))}` : inRoot(flag))),
    requires: requiredNames,
  });
}

/**
 * The store installer's hook, run once in the staging directory before the package becomes
 * visible: writes link.json, the `.pc` file and the CMake package config. Nothing written holds
 * the staging path, which is about to be renamed.
 *
 * `requiredNames` are the package names of the images the package requires (installed first, see
 * src/fetch.ts). The generated files name them (`Requires:`, `find_dependency`) rather than point at
 * their store directories: which build of a requirement gets linked is decided at link time (a
 * lockfile pin, a moved tag), not when this package was installed, and `ocipkg-link
 * --pkg-config-path` and `--cmake-prefix-path` list the directories of the whole closure. Nothing
 * written depends on where the store is.
 */
export async function preparePackage(stagingDir: string, pkg: PackageInfo, requiredNames: string[], what: string): Promise<void> {
  const desc = await describePackage(stagingDir, pkg, what);
  await writeFile(join(stagingDir, LINK_FILE), `${JSON.stringify(desc, null, 2)}\n`);

  const pcDir = generatedPcDir(stagingDir);
  await mkdir(pcDir, { recursive: true });
  await writeFile(join(pcDir, `${desc.name}.pc`), generatedPc(desc, pkg.target, requiredNames));
  // Builds ask for the names the library's own install step wrote (`pkg-config libpng16`), which
  // would otherwise fall through to the system's copy. The shipped files are not put on the path
  // instead: they name the prefix the library was built in, and a packed package's were never checked.
  for (const module of await shippedModules(stagingDir, desc.name, requiredNames)) {
    await writeFile(join(pcDir, `${module}.pc`), generatedPc(desc, pkg.target, requiredNames, module));
  }

  const cmakeDir = join(stagingDir, 'lib', 'cmake', desc.name);
  await mkdir(cmakeDir, { recursive: true });
  // CMake refuses an imported target whose include directory does not exist.
  const includeDirs = desc.includeDirs.filter((d) => existsSync(d.startsWith('/') ? d : join(stagingDir, d)));
  await writeFile(join(cmakeDir, `${desc.name}Config.cmake`), formatCMakeConfig(desc, includeDirs, requiredNames));
  await writeFile(join(cmakeDir, `${desc.name}ConfigVersion.cmake`), formatCMakeConfigVersion(desc.version));
}

import { OcipkgError } from '../errors.js';

/**
 * What package data may hold. A package is data, never code: every value an artifact carries into
 * a consumer's build (metadata names, versions, paths and flags, a shipped `.pc`'s flags, the
 * version annotation) is checked here, once, when the package is installed, and a value a build
 * tool could read more into is refused, not escaped. node-gyp splits `<!@(...)` output with shlex
 * and writes it raw into Makefiles; CMake splits lists on `;` and evaluates `$<...>`; shells run
 * what follows `;`, `|`, `&` or a backtick. No escaping survives all of them, so none of their
 * special characters may appear at all, and flags come from an allowlist of what a library
 * legitimately needs: a flag such as `-B<dir>` or `-fplugin=` would make the toolchain run a file
 * the package ships, however it is quoted.
 *
 * The README's "What a package may carry" is this module in prose; keep the two together.
 */

/** Stands for the package directory in a link description's paths (see link/description.ts). */
export const DIR_PLACEHOLDER = '@dir@';

/** Characters a path or flag value may use: none of them means anything to a shell, Make, gyp or CMake. */
const SAFE = /^[A-Za-z0-9._+=,~/@-]+$/;
/** Package and library names: what a `-l` takes and a CMake target name can hold. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;
const VERSION = /^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$/;
const MACRO = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const MACRO_VALUE = /^[A-Za-z0-9_.+-]{0,256}$/;
/** `-Wl,` options a library may need: grouping, linkage mode and archive extraction, nothing that loads or runs a file. */
const LINKER_OPTIONS = new Set([
  '--as-needed', '--no-as-needed', '--push-state', '--pop-state', '-Bstatic', '-Bdynamic',
  '--start-group', '--end-group', '--whole-archive', '--no-whole-archive',
]);
/** Flags that stand alone. */
const BARE_FLAGS = new Set(['-pthread']);

/**
 * For the generators (`.pc`, CMake configs): whether a value from a link description can be
 * written into generated syntax at all. Descriptions are checked at install; a generator still
 * refuses what would break its syntax, should anything unchecked reach it.
 */
export function isSafeValue(value: string): boolean {
  return SAFE.test(value);
}

/** For values that are skipped rather than refused when they are not names (a shipped file's name). */
export function isName(value: string): boolean {
  return NAME.test(value);
}

export class PackageDataChecker {
  /**
   * `what` names the package in messages: its image, or where it was read from; `outcome` says
   * what a refusal means there.
   */
  constructor(
    private readonly what: string,
    private readonly outcome: string = 'the package is not installed',
  ) {}

  private refuse(field: string, value: string, why: string): never {
    throw new OcipkgError('EUNSAFE', `${this.what}: ${field} ${JSON.stringify(value)} ${why}; ${this.outcome}`);
  }

  name(field: string, value: string): string {
    if (!NAME.test(value)) this.refuse(field, value, 'is not a name (letters, digits, . _ + -, at most 128)');
    return value;
  }

  /**
   * An ELF SONAME (a name) or a Mach-O install name: `@rpath/libz.1.dylib`, `@loader_path/...`, or
   * an absolute path (`/usr/lib/libSystem.B.dylib`), with the characters a path may hold.
   */
  installName(field: string, value: string): string {
    if (NAME.test(value)) return value;
    if (!SAFE.test(value) || !/^(@rpath|@loader_path|@executable_path)?\/[^/]/.test(value) || value.split('/').includes('..')) {
      this.refuse(field, value, 'is neither a SONAME nor a Mach-O install name (@rpath/, @loader_path/ or an absolute path, with letters, digits, . _ + = , ~ @ - and /)');
    }
    return value;
  }

  version(field: string, value: string): string {
    if (!VERSION.test(value)) this.refuse(field, value, 'is not a version (letters, digits, . _ + ~ -, at most 128)');
    return value;
  }

  /**
   * A path inside the package, relative to its root: forward slashes, no `..`, nothing absolute,
   * and not starting with what the tools read more into: `@` (a response file of flags to
   * gcc, clang, ld and MSVC alike), `~` (a home directory, to the shell node-gyp's Makefiles run)
   * or `=` (the sysroot, to gcc's -I, -L and -isystem).
   */
  relativePath(field: string, value: string): string {
    if (!SAFE.test(value)) this.refuse(field, value, 'holds characters a path in a package may not (letters, digits, . _ + = , ~ @ - and /)');
    if (value.startsWith('/')) this.refuse(field, value, 'is an absolute path; paths in a package are relative to it');
    if (/^[@~=]/.test(value)) this.refuse(field, value, 'starts with @, ~ or =, which compilers and shells read as a file of flags, a home directory or the sysroot');
    if (value.split('/').includes('..')) this.refuse(field, value, "has a '..' component; paths in a package stay inside it");
    return value;
  }

  /** A path in a link description: `@dir@/<relative>` (the package directory) or relative to it. */
  packagePath(field: string, value: string): string {
    const inside = value.startsWith(`${DIR_PLACEHOLDER}/`) ? value.slice(DIR_PLACEHOLDER.length + 1) : value;
    if (inside.includes(DIR_PLACEHOLDER)) this.refuse(field, value, `uses ${DIR_PLACEHOLDER} other than at its start`);
    this.relativePath(field, inside);
    return value;
  }

  /** `NAME` or `NAME=VALUE`, with a plain value (no quotes, no spaces, nothing a shell or CMake expands). */
  define(field: string, value: string): string {
    const eq = value.indexOf('=');
    const [macro, macroValue] = eq < 0 ? [value, ''] : [value.slice(0, eq), value.slice(eq + 1)];
    if (!MACRO.test(macro) || !MACRO_VALUE.test(macroValue)) this.refuse(field, value, 'is not a definition NAME or NAME=VALUE with a plain value (letters, digits, _ . + -)');
    return value;
  }

  /**
   * Compile flags: `-I` and `-isystem` into the package, `-D`, `-U`, `-pthread`. Returned with the
   * paths into the package passed through `inPackage` (anchoring them: a relative path in a flag
   * would be relative to wherever the compiler runs).
   */
  compileFlags(field: string, flags: string[], inPackage: (path: string) => string = (path) => path): string[] {
    const checked = [...flags];
    const path = (i: number, prefix: string, value: string) => (checked[i] = `${prefix}${inPackage(this.packagePath(field, value))}`);
    for (let i = 0; i < flags.length; i++) {
      const flag = flags[i]!;
      if (BARE_FLAGS.has(flag)) continue;
      if (flag === '-isystem') {
        path(i + 1, '', this.next(field, flags, i));
        i++;
      } else if (flag.startsWith('-isystem')) {
        path(i, '-isystem', flag.slice('-isystem'.length));
      } else if (flag.startsWith('-I')) {
        path(i, '-I', flag.slice(2));
      } else if (flag.startsWith('-D')) {
        this.define(field, flag.slice(2));
      } else if (flag.startsWith('-U') && MACRO.test(flag.slice(2))) {
        continue;
      } else {
        this.refuse(field, flag, 'is not a compile flag a package may carry (-I and -isystem into the package, -D, -U, -pthread)');
      }
    }
    return checked;
  }

  /**
   * Link flags: `-l`, `-L` into the package, a library file in the package, `-pthread`,
   * `-framework NAME`, `NAME.lib` (MSVC's system libraries) and a few `-Wl,` options (LINKER_OPTIONS).
   * Returned with the paths into the package passed through `inPackage`, as compileFlags does.
   */
  linkFlags(field: string, flags: string[], inPackage: (path: string) => string = (path) => path): string[] {
    const checked = [...flags];
    for (let i = 0; i < flags.length; i++) {
      const flag = flags[i]!;
      if (BARE_FLAGS.has(flag)) continue;
      if (flag.startsWith('-l') && NAME.test(flag.slice(2))) continue;
      if (flag.startsWith('-Wl,') && LINKER_OPTIONS.has(flag.slice(4))) continue;
      if (flag === '-framework') {
        this.name(field, this.next(field, flags, i++));
      } else if (flag.startsWith('-L')) {
        checked[i] = `-L${inPackage(this.packagePath(field, flag.slice(2)))}`;
      } else if (/^[A-Za-z0-9_.+-]+\.lib$/i.test(flag) && !flag.startsWith('-')) {
        continue;
      } else if (!flag.startsWith('-') && /\.(a|so(\.\d+)*|dylib|lib|tbd)$/.test(flag)) {
        checked[i] = inPackage(this.packagePath(field, flag));
      } else {
        this.refuse(field, flag, 'is not a link flag a package may carry (-l, -L into the package, -pthread, -framework, a few -Wl, options)');
      }
    }
    return checked;
  }

  private next(field: string, flags: string[], i: number): string {
    const value = flags[i + 1];
    if (value === undefined) this.refuse(field, flags[i]!, 'lacks its argument');
    return value;
  }
}

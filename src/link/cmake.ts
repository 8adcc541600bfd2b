import { posix } from 'node:path';
import { expandDir, type LinkDescription } from './description.js';
import { DIR_PLACEHOLDER, isSafeValue } from '../artifact/package-data.js';
import { OcipkgError } from '../errors.js';
import { linkedLibraries, under, type LinkedLibrary } from './flags.js';

/**
 * A generated `<name>Config.cmake` and `<name>ConfigVersion.cmake` for `find_package(<name> CONFIG)`.
 *
 * The files live in `<package dir>/lib/cmake/<name>/`, so CMAKE_PREFIX_PATH=<package dir> finds
 * them, and every path is computed from CMAKE_CURRENT_LIST_DIR: the package directory is
 * renamed into place after these files are written, and stores can be moved.
 *
 * Targets, named as cmake/ocipkgConfig.cmake names them with `ocipkg::<name>` for the package:
 * `<name>::<name>`, an INTERFACE target carrying the include dirs, definitions and flags, and
 * `<name>::<name>::<lib>`, one IMPORTED target per library it links (`<lib>` is the link name). The
 * libraries are the ones `ocipkg-link --json` lists in `libraries[]`: the static builds, or the
 * shared ones when `<name>_USE_SHARED` is set (the module's SHARED).
 *
 * Required packages are found with `find_dependency(<required> CONFIG)` through CMAKE_PREFIX_PATH
 * (which `ocipkg-link --prefix` fills for the whole closure) and their `<required>::<required>`
 * targets linked after this package's own libraries and flags, so static archives come after the
 * archives that need them.
 */

const DIR_VAR = '_ocipkg_package_dir';

/**
 * A CMake quoted argument. Escaping is not enough: a property's value is split on `;` and its
 * `$<...>` evaluated when it is used, whatever the quoting was, so a value that holds anything
 * beyond the characters package data may use is refused (see artifact/package-data.ts).
 */
function quote(text: string): string {
  if (!isSafeValue(text)) throw new OcipkgError('EUNSAFE', `generating a CMake config: refusing ${JSON.stringify(text)}`);
  return `"${text}"`;
}

/** A name written bare: a target, a package name, part of a variable name. */
function word(name: string): string {
  if (!/^[A-Za-z0-9._+-]+$/.test(name)) throw new OcipkgError('EUNSAFE', `generating a CMake config: refusing the name ${JSON.stringify(name)}`);
  return name;
}

/**
 * A value from the description as a quoted argument, `@dir@` the package directory found from the
 * list dir. Quoting leaves `@dir@` alone, so the variable put in its place is all that expands.
 */
function located(value: string): string {
  return expandDir(`\${${DIR_VAR}}`, quote(value));
}

function list(values: string[]): string {
  return values.map((value) => located(value).slice(1, -1)).join(';');
}

/** The IMPORTED target of one library, with the properties cmake/ocipkgConfig.cmake gives it too. */
function importedLibrary(target: string, lib: LinkedLibrary): string[] {
  if (lib.importLibrary !== null) {
    // Windows: the import library links, the DLL is what runs (and what a bundling step copies).
    const location = lib.runtime !== null ? ` IMPORTED_LOCATION ${located(lib.runtime)}` : '';
    return [`add_library(${target} SHARED IMPORTED)`, `set_target_properties(${target} PROPERTIES IMPORTED_IMPLIB ${located(lib.importLibrary)}${location})`];
  }
  const imported = [
    `add_library(${target} ${lib.kind === 'static' ? 'STATIC' : 'SHARED'} IMPORTED)`,
    `set_target_properties(${target} PROPERTIES IMPORTED_LOCATION ${located(lib.file)})`,
  ];
  // A Mach-O install name cannot be told from a file name: left unset there.
  if (lib.runtime === null) return imported;
  return [...imported, 'if(NOT APPLE)', `  set_target_properties(${target} PROPERTIES IMPORTED_SONAME ${quote(posix.basename(lib.runtime))})`, 'endif()'];
}

/**
 * ELF: the archives' symbols are not exported from what links them (see link/flags.ts for why:
 * Node's own copies of zlib, OpenSSL... would be bound in their place).
 */
function hiddenArchives(packageTarget: string, libraries: LinkedLibrary[]): string[] {
  const archives = libraries.filter((lib) => lib.kind === 'static').map((lib) => word(posix.basename(lib.file)));
  if (archives.length === 0) return [];
  return ['if(NOT APPLE AND NOT WIN32)', ...archives.map((archive) => `  set_property(TARGET ${packageTarget} APPEND PROPERTY INTERFACE_LINK_OPTIONS "LINKER:--exclude-libs,${archive}")`), 'endif()'];
}

export function formatCMakeConfig(desc: LinkDescription, existingIncludeDirs: string[], requiredNames: string[] = []): string {
  const name = word(desc.name);
  const packageTarget = `${name}::${name}`;
  const libraryTarget = (lib: LinkedLibrary) => `${packageTarget}::${word(lib.name)}`;
  /** `staticLines`, or where the shared selection differs, both behind `<name>_USE_SHARED`. */
  const bySelection = (staticLines: string[], sharedLines: string[]): string[] => {
    if (staticLines.join('\n') === sharedLines.join('\n')) return staticLines;
    const indent = (lines: string[]) => lines.map((line) => `  ${line}`);
    return [`if(${name}_USE_SHARED)`, ...indent(sharedLines), 'else()', ...indent(staticLines), 'endif()'];
  };
  // Both selections hold the same library names in the same order, so the same targets.
  const staticLibraries = linkedLibraries(DIR_PLACEHOLDER, desc, false);
  const sharedLibraries = linkedLibraries(DIR_PLACEHOLDER, desc, true);
  // Target names are made here of checked words; only the flags come from the description.
  const links = (libraries: LinkedLibrary[]) => [
    `set_target_properties(${packageTarget} PROPERTIES INTERFACE_LINK_LIBRARIES "${[
      ...libraries.map(libraryTarget),
      list([...desc.linkFlags, ...(libraries.some((lib) => lib.kind === 'static') ? desc.staticLinkFlags : [])]),
      ...requiredNames.map((required) => `${word(required)}::${required}`),
    ].filter((part) => part !== '').join(';')}")`,
    // What ocipkg_bundle_runtime copies beside a target linking this one (the module's own property).
    `set_target_properties(${packageTarget} PROPERTIES OCIPKG_RUNTIME_FILES "${list(libraries.flatMap((lib) => (lib.runtime !== null ? [lib.runtime] : [])))}")`,
  ];
  const lines = [
    `# Generated by ocipkg for ${name}${desc.version ? ` ${quote(desc.version)}` : ''}; relocatable.`,
    `if(TARGET ${packageTarget})`,
    '  return()',
    'endif()',
    ...(requiredNames.length > 0 ? ['include(CMakeFindDependencyMacro)', ...requiredNames.flatMap((required) => [
      // Linkage follows the dependent: linked shared, this package takes its requirements shared too.
      ...(staticLibraries.some((lib) => lib.kind === 'shared') ? [`set(${word(required)}_USE_SHARED ON)`] : [`if(${name}_USE_SHARED)`, `  set(${word(required)}_USE_SHARED ON)`, 'endif()']),
      `find_dependency(${word(required)} CONFIG)`,
    ])] : []),
    `get_filename_component(${DIR_VAR} "\${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)`,
    '',
    ...staticLibraries.flatMap((lib, i) => bySelection(importedLibrary(libraryTarget(lib), lib), importedLibrary(libraryTarget(lib), sharedLibraries[i]!))),
    '',
    `add_library(${packageTarget} INTERFACE IMPORTED)`,
    `set_target_properties(${packageTarget} PROPERTIES`,
    `  INTERFACE_INCLUDE_DIRECTORIES "${list(existingIncludeDirs.map((dir) => under(DIR_PLACEHOLDER, dir)))}"`,
    `  INTERFACE_COMPILE_DEFINITIONS "${list(desc.defines)}"`,
    `  INTERFACE_COMPILE_OPTIONS "${list(desc.cflags)}")`,
    ...bySelection(links(staticLibraries), links(sharedLibraries)),
    ...bySelection(hiddenArchives(packageTarget, staticLibraries), hiddenArchives(packageTarget, sharedLibraries)),
    `set(${name}_FOUND TRUE)`,
    `unset(${DIR_VAR})`,
  ];
  return `${lines.join('\n')}\n`;
}

/** Any version asked for must be at most the package's, with the same major version. */
export function formatCMakeConfigVersion(version: string | undefined): string {
  if (version === undefined) {
    return [
      '# Generated by ocipkg: the package records no version, so only a find_package without one matches.',
      'set(PACKAGE_VERSION "")',
      'if(PACKAGE_FIND_VERSION)',
      '  set(PACKAGE_VERSION_UNSUITABLE TRUE)',
      'else()',
      '  set(PACKAGE_VERSION_COMPATIBLE TRUE)',
      'endif()',
      '',
    ].join('\n');
  }
  return [
    '# Generated by ocipkg: same major version, and at least the version asked for.',
    `set(PACKAGE_VERSION ${quote(version)})`,
    'string(REGEX MATCH "^[0-9]+" _ocipkg_major "${PACKAGE_VERSION}")',
    'if(PACKAGE_FIND_VERSION AND (PACKAGE_VERSION VERSION_LESS PACKAGE_FIND_VERSION OR NOT PACKAGE_FIND_VERSION_MAJOR STREQUAL _ocipkg_major))',
    '  set(PACKAGE_VERSION_COMPATIBLE FALSE)',
    'else()',
    '  set(PACKAGE_VERSION_COMPATIBLE TRUE)',
    '  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)',
    '    set(PACKAGE_VERSION_EXACT TRUE)',
    '  endif()',
    'endif()',
    'unset(_ocipkg_major)',
    '',
  ].join('\n');
}

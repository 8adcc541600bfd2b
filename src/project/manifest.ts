import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { errno, OcipkgError } from '../errors.js';
import { parseReference, repositoryOf, type ImageReference } from '../reference.js';
import { parseTrust, type DeclaredRule } from './trust.js';
import { didYouMean, nearest } from '../suggest.js';
import { isObject } from '../json-shape.js';

/**
 * The packages an addon declares in its `package.json`:
 *
 *   "ocipkg": { "packages": { "zstd": "ghcr.io/acme/zstd:1.5.6",
 *                             "sqlite3": { "image": "ghcr.io/acme/sqlite3:3.46", "linkage": "shared" } } }
 *
 * The project is the nearest `package.json`, looked for from `OCIPKG_PROJECT_DIR` when set, else
 * from the working directory, upwards. node-gyp runs `<!@(...)` in the directory of binding.gyp and
 * cmake-js configures in `build/` below it, so both find the addon's package.json. The nearest one
 * is the project whether or not it has an `ocipkg` section: one without declares nothing, and what
 * lies above it (a lockfile planted in a parent directory, another project's aliases) is never
 * adopted. Synchronous and import-light: every `ocipkg-link` call on the warm path reads this.
 */

export type Linkage = 'static' | 'shared';

export interface DeclaredPackage {
  /** The name used in place of an image: `zstd`. */
  alias: string;
  /** The image it stands for, as written. */
  image: string;
  linkage?: Linkage;
}

export interface Project {
  /** The directory holding the package.json (and the lockfile). */
  dir: string;
  /** Whether its package.json has an `ocipkg` section at all. */
  hasSection: boolean;
  packages: Record<string, DeclaredPackage>;
  /** Its trust policy (see trust.ts). */
  trust: DeclaredRule[];
}

/** Alias names are bare words, so that nothing that parses as a reference with a registry, tag or digest is ever taken for one. */
const ALIAS = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export const PROJECT_DIR_ENV = 'OCIPKG_PROJECT_DIR';

function invalid(file: string, why: string): OcipkgError {
  return new OcipkgError('EINPUT', `${file}: invalid "ocipkg" section: ${why}`);
}

/** The keys each object of the section may hold: a key nobody reads is a mistake, never ignored. */
const SECTION_KEYS = ['packages', 'trust'];
const PACKAGE_KEYS = ['image', 'linkage'];
const TRUST_RULE_KEYS = ['keys'];

/** Refuses a key of the object at `path` (`ocipkg`, `ocipkg.packages.zstd`) that is not in `known`, naming the nearest. */
function checkKeys(object: object, known: string[], path: string, file: string, misplaced?: (key: string, value: unknown) => string | undefined): void {
  for (const [key, value] of Object.entries(object)) {
    if (known.includes(key)) continue;
    const near = nearest(key, known);
    const hint = near !== undefined ? ` (did you mean "${path}.${near}"?)` : (misplaced?.(key, value) ?? ` (known: ${known.map((k) => `"${k}"`).join(', ')})`);
    throw new OcipkgError('EINPUT', `${file}: "${path}.${key}" is not a key ocipkg reads${hint}`);
  }
}

/** The section's own keys, and each trust rule's (trust.ts reads their values). */
function checkSection(section: unknown, file: string): asserts section is Record<string, unknown> {
  if (!isObject(section)) throw invalid(file, 'not an object');
  // `"ocipkg": { "zstd": "ghcr.io/acme/zstd:1" }`: a package declared one level too high.
  checkKeys(section, SECTION_KEYS, 'ocipkg', file, (key, value) => (typeof value === 'string' || isObject(value) ? ` (packages go under "ocipkg.packages": "ocipkg.packages.${key}")` : undefined));
  if (isObject(section.trust)) {
    for (const [prefix, rule] of Object.entries(section.trust)) if (isObject(rule)) checkKeys(rule, TRUST_RULE_KEYS, `ocipkg.trust.${prefix}`, file);
  }
}

function parsePackages(section: Record<string, unknown>, file: string): Record<string, DeclaredPackage> {
  const declared = section.packages ?? {};
  if (!isObject(declared)) throw invalid(file, '"packages" is not an object');
  const packages: Record<string, DeclaredPackage> = {};
  for (const [alias, value] of Object.entries(declared)) {
    if (!ALIAS.test(alias)) throw invalid(file, `"${alias}" is not a usable name (letters, digits, . _ -; no / : @)`);
    const spec = typeof value === 'string' ? { image: value } : (value as Record<string, unknown> | null);
    if (isObject(spec)) checkKeys(spec, PACKAGE_KEYS, `ocipkg.packages.${alias}`, file);
    if (typeof spec !== 'object' || spec === null || typeof spec.image !== 'string' || spec.image === '') {
      throw invalid(file, `"${alias}" needs an image reference (a string, or an object with "image")`);
    }
    if (spec.linkage !== undefined && spec.linkage !== 'static' && spec.linkage !== 'shared') {
      throw invalid(file, `"${alias}".linkage must be "static" or "shared"`);
    }
    packages[alias] = { alias, image: spec.image, ...(spec.linkage !== undefined && { linkage: spec.linkage as Linkage }) };
  }
  return packages;
}

/** Where the search starts: OCIPKG_PROJECT_DIR (CMake sets it to the source dir), else the working directory. */
export function projectStart(): string {
  return resolve(process.env[PROJECT_DIR_ENV] || process.cwd());
}

/** The nearest project at or above `start`, or undefined when there is no package.json up to the root. */
export function findProject(start: string = projectStart()): Project | undefined {
  for (let dir = start; ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    // A stat that reports absence costs far less than a read that throws ENOENT.
    if (statSync(file, { throwIfNoEntry: false })?.isFile()) {
      let manifest: Record<string, unknown>;
      try {
        manifest = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      } catch (err) {
        if (err instanceof SyntaxError) throw new OcipkgError('EINPUT', `${file}: not valid JSON`);
        if (errno(err) !== 'EACCES') throw err;
        manifest = {};
      }
      const section = manifest !== null && typeof manifest === 'object' ? manifest.ocipkg : undefined;
      if (section === undefined) return { dir, hasSection: false, packages: {}, trust: [] };
      checkSection(section, file);
      return { dir, hasSection: true, packages: parsePackages(section, file), trust: parseTrust(section.trust, file, dir) };
    }
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * The declared package an image argument names, if it is an alias. Declared aliases win over
 * Docker Hub's short names: in a project that declares `zstd`, `zstd` means that one, not
 * `docker.io/library/zstd`. Anything with a `/`, `:` or `@` is a reference and never an alias.
 */
export function declaredPackage(image: string, project?: Project): DeclaredPackage | undefined {
  // Only a bare word can be an alias: a full reference never costs a walk up the directories.
  if (!ALIAS.test(image)) return undefined;
  const packages = (project ?? findProject())?.packages;
  return packages && Object.hasOwn(packages, image) ? packages[image] : undefined;
}

/**
 * The image an argument stands for: the declared image of an alias, else the argument itself. In
 * a project that declares packages, a bare word it does not declare is refused rather than taken
 * for a Docker Hub image: a mistyped alias would otherwise fetch `docker.io/library/<typo>`.
 */
export function resolveAlias(image: string, project?: Project): string {
  if (!ALIAS.test(image)) return image;
  const found = project ?? findProject();
  const declared = found?.packages ?? {};
  if (Object.hasOwn(declared, image)) return declared[image]!.image;
  const names = Object.keys(declared);
  if (names.length === 0) return image;
  throw new OcipkgError(
    'EUSAGE',
    `"${image}" is not a package declared in ${join(found!.dir, 'package.json')}${didYouMean(image, names)} (declared: ${names.join(', ')})${image === image.toLowerCase() ? `; for Docker Hub's image write docker.io/library/${image}` : ''}`,
  );
}

/**
 * Where a reference to one of the project's declared images leads. A relative `oci:` path written in
 * package.json is relative to the project's directory, as npm's `file:` specs are, so a build running
 * in `build/` (cmake-js) finds the same layout as one in the addon's directory (node-gyp). Only the
 * location moves: lockfile keys keep the path as written, and so stay the same on every checkout.
 */
export function locateDeclared(ref: ImageReference, project: Project): ImageReference {
  if (ref.kind !== 'oci' || isAbsolute(ref.path)) return ref;
  const written = repositoryOf(ref);
  const declared = Object.values(project.packages).some((p) => p.image.startsWith('oci:') && repositoryOf(parseReference(p.image)) === written);
  return declared ? { ...ref, path: resolve(project.dir, ref.path) } : ref;
}

/**
 * The reference a command-line argument names: a declared alias's image (relative `oci:` paths
 * from the project's directory), else the argument. For the commands that take an image without
 * resolving it through a lockfile (`inspect`, `rm`), so an alias works there as it does elsewhere.
 */
export function commandLineReference(argument: string): ImageReference {
  const project = ALIAS.test(argument) ? findProject() : undefined;
  const ref = parseReference(resolveAlias(argument, project));
  return project ? locateDeclared(ref, project) : ref;
}

/**
 * `ocipkg add`: package.json's text with `alias` declared as `image` (with its linkage, when one is
 * asked for), replacing a declaration of that alias; the rest of the file as it was parsed, in the
 * file's own indentation. The text only: the caller writes it, and puts the old one back if the
 * install that follows fails.
 */
export function withDeclared(text: string, alias: string, image: string, linkage: Linkage | undefined, file: string): string {
  if (!ALIAS.test(alias)) throw new OcipkgError('EUSAGE', `"${alias}" is not a usable package name (letters, digits, . _ -; no / : @)`);
  parseReference(image);
  let manifest: unknown;
  try {
    manifest = JSON.parse(text);
  } catch {
    throw new OcipkgError('EINPUT', `${file}: not valid JSON`);
  }
  if (!isObject(manifest)) throw new OcipkgError('EINPUT', `${file}: not a JSON object`);
  const section = manifest.ocipkg ?? {};
  checkSection(section, file);
  const packages = section.packages ?? {};
  if (!isObject(packages)) throw invalid(file, '"packages" is not an object');
  const spec = linkage === undefined ? image : { image, linkage };
  const updated = { ...manifest, ocipkg: { ...section, packages: { ...packages, [alias]: spec } } };
  const indent = /^[ \t]+/m.exec(text)?.[0] ?? '  ';
  return `${JSON.stringify(updated, null, indent)}${text.endsWith('\n') ? '\n' : ''}`;
}

import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { errno, OcipkgError } from '../errors.js';
import { parseReference, repositoryOf, type ImageReference } from '../reference.js';
import { parseTrust, type DeclaredRule } from './trust.js';

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

function parsePackages(section: unknown, file: string): Record<string, DeclaredPackage> {
  if (typeof section !== 'object' || section === null || Array.isArray(section)) throw invalid(file, 'not an object');
  const declared = (section as Record<string, unknown>).packages ?? {};
  if (typeof declared !== 'object' || declared === null || Array.isArray(declared)) throw invalid(file, '"packages" is not an object');
  const packages: Record<string, DeclaredPackage> = {};
  for (const [alias, value] of Object.entries(declared)) {
    if (!ALIAS.test(alias)) throw invalid(file, `"${alias}" is not a usable name (letters, digits, . _ -; no / : @)`);
    const spec = typeof value === 'string' ? { image: value } : (value as Record<string, unknown> | null);
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
      return { dir, hasSection: true, packages: parsePackages(section, file), trust: parseTrust((section as { trust?: unknown }).trust, file, dir) };
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

/** The image an argument stands for: the declared image of an alias, else the argument itself. */
export function resolveAlias(image: string, project?: Project): string {
  return declaredPackage(image, project)?.image ?? image;
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

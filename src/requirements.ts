import { OcipkgError } from './errors.js';
import { canonicalReference, parseReference, repositoryOf } from './reference.js';

/**
 * The one walk over the requirement graph (a package's metadata lists the images it `requires`),
 * behind `ocipkg-link`, `ocipkg install` and the cold path that installs a package's requirements
 * before writing its generated files. It owns the four rules all of them follow:
 *
 * - a package that requires itself, directly or not, is an error naming the chain;
 * - requirements nest at most MAX_REQUIREMENT_DEPTH deep (an error naming the chain's ends);
 * - one version per repository: two references to one repository whose identities differ (what
 *   the caller says makes them the same: a manifest digest, a locked reference) are an error;
 * - link order: every package comes after all that need it, so a package needed twice is linked
 *   at its last position (static archives must follow the archives that use them).
 *
 * Each image is visited once per walk (once per run, with WalkOptions.answers), however often it
 * is required. Import-light: ocipkg-link's warm path runs it.
 */

export interface Visited<T> {
  value: T;
  /** The images the package requires, as its metadata writes them. */
  requires: string[];
  /** Two packages of one repository may both be needed only when these are equal. */
  identity: string;
}

/**
 * Visits one image (a canonical reference). `chain` is the path of requirements that led to it,
 * itself included: a visit that starts a nested walk (the cold path does) passes it on.
 */
export type Visit<T> = (image: string, chain: readonly string[]) => Promise<Visited<T>>;

/** A visit that answers at once: the warm path's, which reads the store and never fetches. */
export type VisitNow<T> = (image: string, chain: readonly string[]) => Visited<T>;

export interface Walked<T> {
  /** Canonical reference. */
  image: string;
  value: T;
  /** Named among the roots, not only pulled in by another package's requires. */
  requested: boolean;
}

export interface WalkOptions<T> {
  /** The requirements that led to the roots, when this walk runs inside another's visit. */
  chain?: readonly string[];
  /**
   * Visits already answered, shared by the walks of one run: the cold path starts a walk inside
   * each package it fetches, and without them every level of a chain would visit (re-resolve)
   * every package below it again. walkRequirements adds its answers here.
   */
  answers?: Map<string, Visited<T>>;
}

/**
 * How deep requirements may nest. A chain this long is a mistake, not a design; the walk (and the
 * cold path's walks nested in it) stays short of the stack and of a line of flags nobody can read.
 */
export const MAX_REQUIREMENT_DEPTH = 64;

/** A long chain shortened to its ends for a one-line error. */
function chainLine(chain: readonly string[]): string {
  return (chain.length <= 6 ? chain : [...chain.slice(0, 3), '...', ...chain.slice(-3)]).join(' -> ');
}

const canonical = (image: string) => canonicalReference(parseReference(image));

const MISSING = new Set(['ENOTFOUND', 'ENOTARGET']);

/**
 * A requirement that does not exist (or has no build for the target) says which package requires
 * it: the user never named it. Once, by the package nearest to it, however deep the walks nest.
 */
function requiredBy(err: unknown, chain: readonly string[]): unknown {
  const parent = chain.at(-1);
  if (parent === undefined || !(err instanceof OcipkgError) || !MISSING.has(err.code) || err.message.includes(' (required by ')) return err;
  return new OcipkgError(err.code, `${err.message} (required by ${parent})`, { cause: err.cause ?? err });
}

/**
 * The walk over visits that answer at once. The CommonJS API's warm path needs its answer
 * synchronously (gyp's `<!@(node -p ...)`), which is why the walk itself is synchronous.
 */
export function walkRequirementsNow<T>(roots: string[], visit: VisitNow<T>, options: WalkOptions<T> = {}): Walked<T>[] {
  const nodes = new Map<string, Node<T>>();
  const versions = new Map<string, { image: string; identity: string }>();

  /** Walks `image` and what it requires (once per image: a walked subtree is not walked again). */
  const walk = (image: string, chain: readonly string[]): Node<T> => {
    if (chain.includes(image)) {
      throw new OcipkgError('EMANIFEST', `${image} requires itself (through its requires: ${[...chain.slice(chain.indexOf(image)), image].join(' -> ')})`);
    }
    const walked = nodes.get(image);
    // Reached again by another path: only its depth can be new.
    if (walked) {
      tooDeep([...chain, ...walked.deepest]);
      return walked;
    }
    const path = [...chain, image];
    tooDeep(path);
    let found: Visited<T>;
    try {
      found = visit(image, path);
    } catch (err) {
      throw requiredBy(err, chain);
    }
    const repository = repositoryOf(parseReference(image));
    const seen = versions.get(repository);
    if (seen && seen.identity !== found.identity) {
      throw new OcipkgError('ECONFLICT', `conflicting versions of ${repository}: ${seen.image} and ${image} are both needed; declare or require one version`);
    }
    versions.set(repository, { image, identity: found.identity });
    const node: Node<T> = { repository, value: found.value, requires: found.requires.map(canonical), deepest: [image] };
    for (const required of node.requires) {
      const below = walk(required, path);
      if (below.deepest.length >= node.deepest.length) node.deepest = [image, ...below.deepest];
    }
    nodes.set(image, node);
    return node;
  };
  const tooDeep = (path: readonly string[]): void => {
    if (path.length <= MAX_REQUIREMENT_DEPTH) return;
    const shown = path.slice(0, MAX_REQUIREMENT_DEPTH + 1);
    throw new OcipkgError('EMANIFEST', `${shown[0]} has requirements nested more than ${MAX_REQUIREMENT_DEPTH} deep (${chainLine(shown)}, ${shown.length} packages)`);
  };

  const images = roots.map(canonical);
  for (const image of images) walk(image, options.chain ?? []);
  return linkOrder(images, nodes);
}

/** A walked package, with the longest chain of requirements below it (itself first). */
interface Node<T> {
  repository: string;
  value: T;
  requires: string[];
  deepest: string[];
}

/**
 * Every package after all that need it, each (one per repository) where it would land last if the
 * walk were written out path by path (roots in order, each followed by what it requires, and so on
 * down). That list read backwards is a depth-first walk taking requirements last to first and
 * listing a package after what it requires; the first time it meets a repository is the last time
 * the written-out list does. So the backward walk, which meets each subtree once, gives the order
 * without following every path (a graph of stacked diamonds has paths doubling at every level).
 */
function linkOrder<T>(roots: string[], nodes: Map<string, Node<T>>): Walked<T>[] {
  const requested = new Set(roots.map((image) => nodes.get(image)!.repository));
  const met = new Set<string>();
  const placed = new Set<string>();
  const backwards: Walked<T>[] = [];
  const place = (image: string): void => {
    if (met.has(image)) return;
    met.add(image);
    const node = nodes.get(image)!;
    for (const required of [...node.requires].reverse()) place(required);
    if (placed.has(node.repository)) return;
    placed.add(node.repository);
    backwards.push({ image, value: node.value, requested: requested.has(node.repository) });
  };
  for (const root of [...roots].reverse()) place(root);
  return backwards.reverse();
}

/** Thrown through walkRequirementsNow by walkRequirements' visit for an image it has no answer for yet. */
class Unanswered {
  constructor(readonly chain: readonly string[]) {}
}

/**
 * The walk over visits that must be awaited (fetching). It runs walkRequirementsNow over the
 * answers so far, which stops at the first image without one, in the order a recursive walk would
 * meet it; that visit is awaited, and the walk runs again. So visits run one at a time, each once,
 * in walk order, and the rules live in one walk. A walk is a handful of packages: walking again
 * costs nothing next to one visit.
 */
export async function walkRequirements<T>(roots: string[], visit: Visit<T>, options: WalkOptions<T> = {}): Promise<Walked<T>[]> {
  const answers = options.answers ?? new Map<string, Visited<T>>();
  const answered: VisitNow<T> = (image, chain) => {
    const answer = answers.get(image);
    if (answer === undefined) throw new Unanswered(chain);
    return answer;
  };
  for (;;) {
    try {
      return walkRequirementsNow(roots, answered, options);
    } catch (err) {
      if (!(err instanceof Unanswered)) throw err;
      const image = err.chain.at(-1)!;
      answers.set(image, await visit(image, err.chain).catch((failure: unknown) => {
        throw requiredBy(failure, err.chain.slice(0, -1));
      }));
    }
  }
}

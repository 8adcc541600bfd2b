/**
 * Shape checks for parsed JSON (manifests, configs, lockfiles, package.json): the one definition of
 * what counts as an object, a list of strings and a map of strings, for every reader to refuse
 * the same things.
 */

/** A JSON object: not null, not an array. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

/** An object whose every value is a string (annotations, a lockfile's target map). */
export function isStringMap(value: unknown): value is Record<string, string> {
  return isObject(value) && Object.values(value).every((v) => typeof v === 'string');
}

/**
 * The one way from the warm path into the cold one. The warm path (a package already in the store)
 * must load neither undici nor tar, so everything it may need when the store misses is loaded here,
 * on demand, as one module. scripts/bundle.mjs points this import at the cold-path entry of the
 * `ocipkg` CLI's bundle (dist/bundle/) when it bundles ocipkg-link, and fails the build if that
 * bundle holds any other.
 */
export type ColdPath = typeof import('./cold-path.js');

export function coldPath(): Promise<ColdPath> {
  return import('./cold-path.js');
}

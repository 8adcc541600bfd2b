/**
 * The one way from the warm path into the cold one. The warm path (a package already in the store)
 * must load neither undici nor tar, so everything it may need when the store misses is loaded here,
 * on demand, as one module. When scripts/bundle.mjs bundles ocipkg-link, this import becomes a call
 * of a loader that takes the cold path from the `ocipkg` CLI's bundle (src/cjs/bundles.cts), and
 * the build fails if that bundle holds any other import().
 */
export type ColdPath = typeof import('./cold-path.js');

export function coldPath(): Promise<ColdPath> {
  return import('./cold-path.js');
}

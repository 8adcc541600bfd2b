/**
 * What the warm path reaches for when the store misses, loaded only through cold.ts: fetching and
 * installing, describing a package installed before link descriptions were stored, and tuning the
 * process for transfers. It lives in the `ocipkg` CLI's bundle (dist/bundle/ocipkg.cjs), which
 * ocipkg-link loads it from, never copied into ocipkg-link's own: extraction reports buffer churn
 * to tuning.ts, and a second copy of it, tuned by nobody, would collect nothing.
 */
export { fetchPackage } from './fetch.js';
export { describePackage } from './link/generate.js';
export { tuneForTransfers } from './tuning.js';
export { showTransfers } from './progress.js';

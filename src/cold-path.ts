/**
 * What the warm path reaches for when the store misses, loaded only through cold.ts: fetching and
 * installing, describing a package installed before link descriptions were stored, and tuning the
 * process for transfers. Always the dist/ modules, never copies inside ocipkg-link's bundle:
 * extraction reports buffer churn to dist/tuning.js, and a second copy of it would tune nothing.
 */
export { fetchPackage } from './fetch.js';
export { describePackage } from './link/generate.js';
export { tuneForTransfers } from './tuning.js';
export { showTransfers } from './progress.js';

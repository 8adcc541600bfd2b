import { OcipkgError } from '../errors.js';
import type { ExtractLimits, Limit } from '../fs/extract.js';

/**
 * How much a package may unpack to. A registry decides what it sends; these caps keep a hostile
 * or broken package from filling the disk, exhausting memory or taking hours, with defaults no
 * real library reaches (each raised by its environment variable):
 *
 * - 64 layers: ocipkg packs one; Docker's own overlay limit is 127 for whole images.
 * - 100,000 entries: Boost's headers are ~15,000 files, a full Qt install ~60,000.
 * - 16 GiB: the largest library trees (CUDA's, LLVM's static libraries) are a few GiB.
 * - 100 to 1 expansion, past 64 MiB of output: static archives and headers compress 3-10 to 1,
 *   while a gzip bomb reaches 1000 to 1 (2 MB inflating to 2 GiB).
 */
const DEFAULTS = {
  layers: { max: 64, env: 'OCIPKG_MAX_LAYERS' },
  entries: { max: 100_000, env: 'OCIPKG_MAX_ENTRIES' },
  bytes: { max: 16 * 2 ** 30, env: 'OCIPKG_MAX_PACKAGE_BYTES' },
  expansion: { max: 100, env: 'OCIPKG_MAX_EXPANSION' },
} satisfies Record<string, Limit>;

function fromEnv(limit: Limit): Limit {
  const raw = process.env[limit.env];
  if (raw === undefined || raw === '') return limit;
  const max = Number(raw);
  if (!Number.isSafeInteger(max) || max <= 0) throw new OcipkgError('EUSAGE', `${limit.env}=${raw} is not a positive whole number`);
  return { ...limit, max };
}

export interface PackageLimits extends ExtractLimits {
  layers: Limit;
}

/** The limits in force: the defaults, as the environment raises (or lowers) them. */
export function packageLimits(): PackageLimits {
  return {
    layers: fromEnv(DEFAULTS.layers),
    entries: fromEnv(DEFAULTS.entries),
    bytes: fromEnv(DEFAULTS.bytes),
    expansion: fromEnv(DEFAULTS.expansion),
  };
}

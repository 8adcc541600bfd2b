/**
 * Names of work in progress: staging directories, sibling temp files. This module is the one owner
 * of their format, written by `uniqueName` and read back by `ownerOf`, so that `prune` can tell a
 * live process's staging from a dead one's.
 *
 *   <prefix><pid>-<sequence>-<random>      e.g. install-4711-0-k3j9x2ab, .1.json.tmp-4711-1-0fzq8m2c
 *
 * The pid tells live processes apart, the sequence (base 36) calls within one, the random part
 * (8 base-36 digits) a dead process's leftovers from a later process with the same pid. Prefixes
 * end in `-`. No node:crypto: this module is on the warm path (the refs index writes through it),
 * and loading crypto costs more than the whole lookup.
 */

const RANDOM_DIGITS = 8;
const FORMAT = /^(.*-)(\d+)-([0-9a-z]+)-([0-9a-z]{8})$/;
const SIBLING_PREFIX = '.';
const SIBLING_INFIX = '.tmp-';

let sequence = 0;

export function uniqueName(prefix: string): string {
  const random = Math.random().toString(36).slice(2, 2 + RANDOM_DIGITS).padEnd(RANDOM_DIGITS, '0');
  return `${prefix}${process.pid}-${(sequence++).toString(36)}-${random}`;
}

/** The pid of the process that made `name` with `uniqueName`, or undefined for any other name. */
export function ownerOf(name: string): number | undefined {
  const pid = FORMAT.exec(name)?.[2];
  return pid === undefined ? undefined : Number(pid);
}

/** Whether the process that made `name` with `uniqueName` is still running here (a name of another format: undefined). */
export function ownerRunning(name: string): boolean | undefined {
  const pid = ownerOf(name);
  if (pid === undefined) return undefined;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, it is just someone else's.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A temp name beside a file called `base`: hidden, and never taken for the file itself. */
export function siblingTempName(base: string): string {
  return uniqueName(`${SIBLING_PREFIX}${base}${SIBLING_INFIX}`);
}

/** Whether `name` is one `siblingTempName` made. */
export function isSiblingTemp(name: string): boolean {
  const prefix = FORMAT.exec(name)?.[1];
  return prefix !== undefined && prefix.startsWith(SIBLING_PREFIX) && prefix.endsWith(SIBLING_INFIX) && prefix.length > SIBLING_PREFIX.length + SIBLING_INFIX.length;
}

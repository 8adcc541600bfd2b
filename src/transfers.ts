/**
 * The one hook into the bytes a transfer moves: every blob fetched into the store or copied to a
 * registry passes one VerifyingStream (src/oci/verify.ts), which reports here. Nothing listens
 * unless a CLI asks (progress on stderr); a library caller pays one undefined check per chunk.
 */

export interface TransferSpan {
  /** More bytes went through. */
  moved(bytes: number): void;
  /** All bytes went through and matched the digest. */
  done(): void;
  /** The transfer stopped short (a failure, or a retry that starts a new span). */
  abandoned(): void;
}

export type TransferWatcher = (blob: { digest: string; size: number }) => TransferSpan;

let watcher: TransferWatcher | undefined;

/** Installs (or, given undefined, removes) the process's watcher. */
export function watchTransfers(next: TransferWatcher | undefined): void {
  watcher = next;
}

/** A span for one blob's bytes, when something watches. */
export function transferStarted(blob: { digest: string; size: number }): TransferSpan | undefined {
  return watcher?.(blob);
}

/** `1.5 MiB`: sizes and rates as people read them (binary units, as du -h and docker do). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

import { formatBytes } from '../transfers.js';
import { tuneForTransfers } from '../tuning.js';
import { isQuiet, setProgressLog } from './common.js';

let shown = false;

/**
 * Before anything moves: the process tuned for transfers, and (unless --quiet) their progress on
 * stderr. The rendering library loads here, so only commands that transfer pay for it. `verb` says
 * what happens to the bytes: `fetching`, `pushing`.
 */
export async function beforeTransfers(verb: string): Promise<void> {
  tuneForTransfers();
  if (shown || isQuiet()) return;
  shown = true;
  const { showTransfers } = await import('../progress.js');
  setProgressLog((await showTransfers(verb)).log);
}

/** A copied blob or manifest, in push's and publish's progress, with its size. */
export function copiedLine(desc: { digest: string; mediaType: string; size: number }, skipped: boolean): string {
  return `  ${skipped ? 'exists ' : 'pushed '} ${desc.digest} ${desc.mediaType} (${formatBytes(desc.size)})`;
}

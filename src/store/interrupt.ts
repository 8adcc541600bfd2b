/**
 * Work to undo when the process is told to stop (Ctrl-C, `kill`, a closed terminal) in the middle
 * of an install: keep what was downloaded, remove the rest of the staging. Listeners exist only
 * while some install is staging, so a process using ocipkg as a library keeps its own signal
 * handling otherwise; and the signal is raised again once cleaned up, so the process ends as it
 * would have (by the signal: 130 for SIGINT in a shell) unless someone else listens for it too.
 */

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const cleanups = new Set<() => void>();

function onSignal(signal: NodeJS.Signals): void {
  for (const cleanup of cleanups) {
    try {
      cleanup();
    } catch {
      // The next run's recovery handles whatever is left.
    }
  }
  cleanups.clear();
  for (const s of SIGNALS) process.removeListener(s, onSignal);
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

/** Runs `cleanup` (synchronous: the process ends right after) on SIGINT, SIGTERM or SIGHUP until the returned function is called. */
export function onInterrupt(cleanup: () => void): () => void {
  if (cleanups.size === 0) for (const s of SIGNALS) process.on(s, onSignal);
  cleanups.add(cleanup);
  return () => {
    if (!cleanups.delete(cleanup) || cleanups.size > 0) return;
    for (const s of SIGNALS) process.removeListener(s, onSignal);
  };
}

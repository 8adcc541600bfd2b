import type { SingleBar } from 'cli-progress';
import { formatBytes, watchTransfers, type TransferSpan } from './transfers.js';

/**
 * Progress of blob transfers on stderr, for the CLIs (never loaded on the warm path: the CLIs import
 * it once something is to be moved). On a terminal, a live line per blob in flight (bytes, total,
 * rate, ETA), drawn by cli-progress; elsewhere (CI logs, CMake's configure output) one line per
 * finished blob of at least LOGGED_BYTES, with its size and rate, so small blobs add no noise.
 * cli-progress (and the string-width and emoji tables it brings) loads only for a terminal.
 */

const LOGGED_BYTES = 4 << 20;

export interface ProgressDisplay {
  /** Writes a line of other progress without tearing the live lines. */
  log(line: string): void;
}

const short = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12);

/** `verb` says what the command does with the bytes: `fetching`, `pushing`. */
export async function showTransfers(verb: string, stream: NodeJS.WriteStream = process.stderr): Promise<ProgressDisplay> {
  if (!stream.isTTY) {
    watchTransfers(({ digest, size }) => {
      const started = Date.now();
      return {
        moved() {},
        done() {
          if (size < LOGGED_BYTES) return;
          const seconds = Math.max((Date.now() - started) / 1000, 0.001);
          stream.write(`${verb} ${digest}: ${formatBytes(size)} in ${seconds.toFixed(1)} s (${formatBytes(size / seconds)}/s)\n`);
        },
        abandoned() {},
      };
    });
    return { log: (line) => void stream.write(`${line}\n`) };
  }

  // A CommonJS module: its exports are properties of the default import.
  const { Format, MultiBar } = (await import('cli-progress')).default;
  const bars = new MultiBar({
    stream,
    fps: 8,
    barsize: 24,
    clearOnComplete: true,
    format: (options, params, payload: { name: string }) => {
      const seconds = Math.max((Date.now() - params.startTime) / 1000, 0.001);
      const eta = params.value >= params.total ? 0 : params.eta;
      return `${verb} ${payload.name} [${Format.BarFormat(params.progress, options)}] ${formatBytes(params.value)} / ${formatBytes(params.total)}  ${formatBytes(params.value / seconds)}/s  ETA ${Format.TimeFormat(eta, options, 1)}`;
    },
  });
  // Its redraw timer must not hold the process open: a command that fails with a line still drawn
  // exits all the same.
  const unref = () => (bars as unknown as { timer?: NodeJS.Timeout | null }).timer?.unref();
  bars.on('start', unref);
  bars.on('update-post', unref);
  let active = 0;
  const end = (bar: SingleBar) => {
    // Drawn once more as it ended, so every transfer is shown, however quick.
    bars.update();
    bars.remove(bar);
    // The last line gone, the display stops drawing (and lets the process exit).
    if (--active === 0) bars.stop();
  };
  watchTransfers(({ digest, size }): TransferSpan => {
    active++;
    const bar = bars.create(size, 0, { name: short(digest) });
    let moved = 0;
    return {
      moved(bytes) {
        moved += bytes;
        bar.update(moved);
      },
      done() {
        bar.update(size);
        end(bar);
      },
      abandoned: () => end(bar),
    };
  });
  return { log: (line) => (active > 0 ? bars.log(`${line}\n`) : void stream.write(`${line}\n`)) };
}

/**
 * Process-wide tuning for a CLI about to move blobs, and the hook extraction reports its buffers to.
 *
 * Only the CLIs call tuneForTransfers: a library must not change its host's V8 flags or collect its
 * garbage. Builtins are fetched with getBuiltinModule when tuning starts rather than imported: every
 * `ocipkg` command loads this module, and most never transfer anything.
 */

type Collect = (options: { type: 'minor' | 'major' }) => void;

/** Installed by tuneForTransfers; without it noteBufferChurn does nothing. */
let collect: Collect | undefined;
let sinceCheck = 0;
/** Bytes of buffers handled since the last collection noteBufferChurn asked for. */
let sinceCollection = 0;
let escalate = false;
/** The allowances of the transfers in flight, together: the buffer memory tolerated before a collection. */
let allowanceInFlight = 0;

/** Bytes of buffers handled between two looks at how much buffer memory the process holds. */
const CHECK_EVERY = 1 << 20;
/**
 * Buffer memory each transfer in flight may leave for V8 to collect in its own time. Extraction's
 * pipeline holds ~1 MiB at once (it inflates into 1 MiB chunks); an upload's, a few 64 KiB reads.
 * Measured on the peak of a 500 MiB get: 70 MiB at 8 MiB, 66 at 4, at no cost in time; below
 * ~2 MiB collections catch live buffers, promote them, and the peak doubles. An upload tolerates
 * less (a push's peak fell by 6 MiB at 2 MiB instead of 8, at no cost in speed). An install's
 * transfers side by side hold more alive between them, and tolerate the sum.
 */
export const BUFFER_ALLOWANCE = { extraction: 4 << 20, upload: 2 << 20 };

/** Adds a transfer's allowance (BUFFER_ALLOWANCE) until the function returned is called. */
export function transferHoldsBuffers(kind: keyof typeof BUFFER_ALLOWANCE): () => void {
  allowanceInFlight += BUFFER_ALLOWANCE[kind];
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    allowanceInFlight -= BUFFER_ALLOWANCE[kind];
  };
}

/** What tuneForTransfers sets (see there), and what restoreV8Defaults puts back. */
const TRANSFER_FLAGS = '--liftoff-only --no-opt';

/**
 * The builtins a transfer loads (undici's, tar's, the TLS probe's, fs/promises' readline), loaded
 * before any flag changes. Node compiles its builtins with a code cache of its own, which V8
 * rejects once its flags differ from the ones the cache was made under: loaded after
 * TRANSFER_FLAGS, these compiled from source (measured: 19 -> 49 ms). One missing here only
 * compiles slower; test/tuning.test.ts checks that a get and a push load none after the change.
 */
const TRANSFER_BUILTINS = ['node:crypto', 'node:zlib', 'node:net', 'node:tls', 'node:http', 'node:assert', 'node:readline', 'node:diagnostics_channel'] as const;

/**
 * - undici parses HTTP with llhttp compiled to WebAssembly, and V8 re-optimises that module with
 *   TurboFan in a background thread whose ~30 MiB stay allocated for the rest of a download; the
 *   baseline compiler parses a few headers and skips over bodies just as well.
 * - No TurboFan for JavaScript either: a transfer's time goes to inflating, hashing and I/O, in
 *   native code, and optimising its JavaScript cost ~6 MiB at the peak of a 500 MiB get (compile
 *   jobs' memory, the compiler's own pages) for no time measured (3.3 s either way).
 * - Every socket read and every inflated chunk is a fresh buffer, garbage a moment later, but V8
 *   counts memory outside its heap toward a collection only once tens of MiB have piled up: a
 *   500 MiB get held ~35 MiB of dead buffers at its peak. A handle on `gc` (exposed for a new
 *   context only) lets noteBufferChurn collect them as it goes.
 */
export function tuneForTransfers(): void {
  for (const name of TRANSFER_BUILTINS) process.getBuiltinModule(name);
  const v8 = process.getBuiltinModule('node:v8');
  v8.setFlagsFromString(TRANSFER_FLAGS);
  if (collect !== undefined) return;
  v8.setFlagsFromString('--expose-gc');
  collect = process.getBuiltinModule('node:vm').runInNewContext('gc') as Collect;
  v8.setFlagsFromString('--no-expose-gc');
}

/**
 * Called by extraction and uploads with the size of each buffer they handle. Every MiB it looks at
 * the process's buffer memory and, over the allowances of the transfers in flight
 * (transferHoldsBuffers), collects: the young generation first (cheap, and where buffers that
 * lived a moment are), the whole heap when that was not enough (buffers held across a young
 * collection were promoted and only a full one frees them).
 *
 * Not again before half the allowance has gone by since the last collection: several transfers at once
 * (an install) can hold more than their allowances alive between them, and collecting at every look
 * then freed next to nothing. Measured: an install of four packages spent 280 ms in 285 collections
 * (a get of the largest alone: 25 ms), now ~110 ms in ~100, 2.4 -> 1.8 s; the peak of a 500 MiB get
 * is unchanged (waiting for the whole allowance instead raised it by 6 MiB).
 */
export function noteBufferChurn(bytes: number): void {
  if (collect === undefined) return;
  sinceCheck += bytes;
  sinceCollection += bytes;
  if (sinceCheck < CHECK_EVERY) return;
  sinceCheck = 0;
  if (process.memoryUsage().arrayBuffers <= allowanceInFlight) {
    escalate = false;
    return;
  }
  if (sinceCollection < allowanceInFlight / 2) return;
  sinceCollection = 0;
  collect({ type: escalate ? 'major' : 'minor' });
  escalate = !escalate;
}

/**
 * Puts back V8's defaults for TRANSFER_FLAGS. V8 stamps a code cache with a hash of its flags and
 * rejects it under any others, and a run that transferred something is what the build makes the
 * `ocipkg` CLI's cache from (scripts/bundle.mjs). `--no-liftoff-only` alone is not enough:
 * `--liftoff-only` also turned off the tiering flags it implies. The build checks that V8 takes the
 * cache, so a Node whose flags imply more fails it there rather than every start compiling anew.
 */
export function restoreV8Defaults(): void {
  process.getBuiltinModule('node:v8').setFlagsFromString('--no-liftoff-only --wasm-tier-up --wasm-dynamic-tiering --opt');
}

import { writeSync } from 'node:fs';
import { errno, OcipkgError } from '../errors.js';
import { parseCommandLine, type Options, type Parsed } from './args.js';

/** Shared plumbing of the `ocipkg` and `ocipkg-link` entry points: usage errors, progress, exit. */

export function debugEnabled(argv: readonly string[]): boolean {
  return argv.includes('--verbose') || process.env.OCIPKG_DEBUG === '1';
}

/**
 * Prints one result line on stdout, synchronously through fd 1. Results are small, and touching
 * process.stdout would build a socket or TTY stream first: milliseconds that ocipkg-link's warm
 * path, run once per build step, does not have. A full pipe (EAGAIN) is waited out.
 */
export function printLine(text: string): void {
  const data = Buffer.from(`${text}\n`);
  let offset = 0;
  while (offset < data.length) {
    try {
      offset += writeSync(1, data, offset);
    } catch (err) {
      if (errno(err) !== 'EAGAIN') throw err;
    }
  }
}

/** A `--json` result: one JSON value on stdout, the only thing printed there. */
export function printJson(value: unknown): void {
  printLine(JSON.stringify(value, null, 2));
}

/** Progress goes to stderr, and only to a terminal (or when OCIPKG_PROGRESS=1 asks). */
export function progress(message: string): void {
  if (process.stderr.isTTY || process.env.OCIPKG_PROGRESS === '1') process.stderr.write(`${message}\n`);
}

export function usageError(message: string): OcipkgError {
  return new OcipkgError('EUSAGE', message);
}

/**
 * A command's options plus --verbose and -h/--help, with parse errors as one-line usage errors
 * naming `command` (a subcommand; a program's own name is already what runMain prefixes).
 */
type WithCommon<T extends Options> = T & { verbose: { type: 'boolean' }; help: { type: 'boolean'; short: 'h' } };

export function parseOptions<T extends Options>(args: string[], options: T, command?: string): Parsed<WithCommon<T>> {
  try {
    const all: WithCommon<T> = { ...options, verbose: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } };
    return parseCommandLine(args, all);
  } catch (err) {
    const message = (err as Error).message;
    throw usageError(command === undefined ? message : `${command}: ${message}`);
  }
}

/**
 * Runs a CLI body: on failure prints `<prog>: <message>` on stderr (the stack only with --verbose
 * or OCIPKG_DEBUG=1) and exits non-zero; usage errors exit 2, everything else 1.
 */
export async function runMain(prog: string, argv: string[], body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    const debug = debugEnabled(argv);
    if (err instanceof OcipkgError) {
      process.stderr.write(`${prog}: ${err.message}\n`);
      if (debug) process.stderr.write(`${err.stack ?? ''}\n${err.cause ? `cause: ${(err.cause as Error).stack ?? String(err.cause)}\n` : ''}`);
      process.exitCode = err.code === 'EUSAGE' ? 2 : 1;
    } else {
      const message = err instanceof Error ? err.message : String(err);
      process.stderr.write(`${prog}: unexpected error: ${message.split('\n')[0]}${debug ? '' : ' (run with --verbose for details)'}\n`);
      if (debug && err instanceof Error) process.stderr.write(`${err.stack}\n`);
      process.exitCode = 1;
    }
  }
}

/** Reads all of standard input as text (for --password-stdin). */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

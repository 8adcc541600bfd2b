import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '..', '..');
export const OCIPKG = join(REPO, 'bin', 'ocipkg.cjs');
export const OCIPKG_LINK = join(REPO, 'bin', 'ocipkg-link.cjs');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs one of the package's bins (built dist/) as a user would, with its own environment. */
export function run(bin: string, args: string[], env: NodeJS.ProcessEnv = {}, input?: string): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { ...process.env, OCIPKG_DEBUG: '', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise({ code, signal, stdout, stderr }));
    // A child that exits without reading its input closes the pipe: EPIPE here is no failure of the run.
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}

export const ocipkg = (args: string[], env?: NodeJS.ProcessEnv, input?: string) => run(OCIPKG, args, env, input);
export const ocipkgLink = (args: string[], env?: NodeJS.ProcessEnv) => run(OCIPKG_LINK, args, env);

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `ocipkg-${prefix}-`));
}

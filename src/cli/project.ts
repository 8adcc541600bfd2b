import { existsSync } from 'node:fs';
import { lockfilePath } from '../project/lockfile.js';
import { findProject } from '../project/manifest.js';
import { parseOptions, progress, usageError } from './common.js';
import { tuneForTransfers } from '../tuning.js';

/** `ocipkg install` and `ocipkg update [NAME...]`: the project's declared packages and its lockfile. */

const warn = (message: string) => void process.stderr.write(`ocipkg: ${message}\n`);

export const INSTALL_USAGE = 'ocipkg install [--frozen-lockfile] [--offline] [--target TRIPLE]';
export const INSTALL_SUMMARY = "fetch the packages package.json declares (and what they require) and pin them in ocipkg-lock.json";
export const INSTALL_OPTIONS = [
  '  --frozen-lockfile       fail instead of writing ocipkg-lock.json when it does not match package.json',
  '                          (the default when CI=true and a lockfile exists)',
  '  --no-frozen-lockfile    write the lockfile even when CI=true',
  '  --offline               use the lockfile and the store only, never the network',
  '  --target TRIPLE         the build to install (every target is locked)',
].join('\n');

export const UPDATE_USAGE = 'ocipkg update [NAME...] [--offline] [--target TRIPLE]';
export const UPDATE_SUMMARY = 'move the pins of the named packages (default: all) to what their tags point at now';
export const UPDATE_OPTIONS = [
  '  --offline               move pins to what the store last saw the tags point at, never the network',
  '  --target TRIPLE         the build to install (every target is locked)',
].join('\n');

/** Prints the lockfile's path when it was written, nothing when it already matched. */
function report(written: boolean, dir: string): void {
  if (written) process.stdout.write(`${lockfilePath(dir)}\n`);
}

export async function runInstall(args: string[]): Promise<void> {
  const { values, positionals } = parseOptions(args, {
    'frozen-lockfile': { type: 'boolean' }, 'no-frozen-lockfile': { type: 'boolean' }, offline: { type: 'boolean' }, target: { type: 'string' },
  }, 'install');
  if (positionals.length > 0) throw usageError(`install: unexpected argument "${positionals[0]}" (to add a package, declare it in package.json's "ocipkg.packages")`);
  if (values['frozen-lockfile'] && values['no-frozen-lockfile']) throw usageError('install: --frozen-lockfile and --no-frozen-lockfile exclude each other');
  // As pnpm does: on CI a lockfile that exists is the contract, one that does not is written.
  const project = findProject();
  const ciFrozen = process.env.CI === 'true' && !values['no-frozen-lockfile'] && project !== undefined && existsSync(lockfilePath(project.dir));
  tuneForTransfers();
  const { installProject } = await import('../install.js');
  const result = await installProject({
    frozen: values['frozen-lockfile'] ?? ciFrozen,
    offline: values.offline,
    warn,
    progress,
    ...(values.target !== undefined && { target: values.target }),
  });
  report(result.written, result.project.dir);
}

export async function runUpdate(args: string[]): Promise<void> {
  const { values, positionals } = parseOptions(args, { offline: { type: 'boolean' }, target: { type: 'string' } }, 'update');
  tuneForTransfers();
  const { installProject } = await import('../install.js');
  const result = await installProject({
    update: positionals.length > 0 ? positionals : true,
    offline: values.offline,
    warn,
    progress,
    ...(values.target !== undefined && { target: values.target }),
  });
  report(result.written, result.project.dir);
}

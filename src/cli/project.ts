import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { lockfilePath } from '../project/lockfile.js';
import { findProject, projectStart, withDeclared } from '../project/manifest.js';
import { OcipkgError } from '../errors.js';
import { writeFileAtomicSync } from '../fs/atomic.js';
import { JSON_HELP, JSON_OPTION, parseOptions, printJson, printLine, progress, usageError } from './common.js';
import type { InstallResult } from '../install.js';
import { beforeTransfers } from './transfers.js';
import { storeRoot } from '../store/paths.js';

/** `ocipkg install` and `ocipkg update [NAME...]`: the project's declared packages and its lockfile. */

const warn = (message: string) => void process.stderr.write(`ocipkg: ${message}\n`);

export const INSTALL_USAGE = 'ocipkg install [--frozen-lockfile] [--offline] [--target TRIPLE] [--json]';
export const INSTALL_SUMMARY = "fetch the packages package.json declares (and what they require) and pin them in ocipkg-lock.json";
export const INSTALL_OPTIONS = [
  '  --frozen-lockfile       fail instead of writing ocipkg-lock.json when it does not match package.json',
  '                          (the default when CI=true and a lockfile exists)',
  '  --no-frozen-lockfile    write the lockfile even when CI=true',
  '  --offline               use the lockfile and the store only, never the network',
  '  --target TRIPLE         the build to install (every target is locked)',
  JSON_HELP,
].join('\n');

export const UPDATE_USAGE = 'ocipkg update [NAME...] [--offline] [--target TRIPLE] [--json]';
export const UPDATE_SUMMARY = 'move the pins of the named packages (default: all) to what their tags point at now';
export const UPDATE_OPTIONS = [
  '  --offline               move pins to what the store last saw the tags point at, never the network',
  '  --target TRIPLE         the build to install (every target is locked)',
  JSON_HELP,
].join('\n');

/**
 * Whether this runs on a CI service: `CI` set to anything but `false` or `0`, as ci-info (pnpm's,
 * yarn's) reads it (AppVeyor sets `True`, some set `1`).
 */
function onCi(): boolean {
  const ci = process.env.CI?.trim().toLowerCase();
  return ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0';
}

/**
 * Prints the lockfile's path when it was written, nothing when it already matched; under --json,
 * the lockfile's path, whether it was written, the pins, and the images whose tags drifted.
 */
function report(result: InstallResult, json: boolean | undefined): void {
  const path = lockfilePath(result.project.dir);
  if (json) printJson({ lockfile: path, written: result.written, packages: result.lockfile.packages, drifted: result.drifted, moved: result.moved });
  else if (result.written) printLine(path);
}

export async function runInstall(args: string[]): Promise<void> {
  const { values, positionals } = parseOptions(args, {
    'frozen-lockfile': { type: 'boolean' }, 'no-frozen-lockfile': { type: 'boolean' }, offline: { type: 'boolean' }, target: { type: 'string' }, ...JSON_OPTION,
  }, 'install');
  if (positionals.length > 0) throw usageError(`install: unexpected argument "${positionals[0]}" (to add a package, declare it in package.json's "ocipkg.packages")`);
  if (values['frozen-lockfile'] && values['no-frozen-lockfile']) throw usageError('install: --frozen-lockfile and --no-frozen-lockfile exclude each other');
  // As pnpm does: on CI a lockfile that exists is the contract, one that does not is written.
  const project = findProject();
  const ciFrozen = onCi() && !values['no-frozen-lockfile'] && project !== undefined && existsSync(lockfilePath(project.dir));
  await beforeTransfers('fetching');
  const { installProject } = await import('../install.js');
  const result = await inProjectTurn(project?.dir, () => installProject({
    frozen: values['frozen-lockfile'] ?? ciFrozen,
    offline: values.offline,
    warn,
    progress,
    ...(values.target !== undefined && { target: values.target }),
  }));
  report(result, values.json);
}

/** Runs `fn` holding the project's lock (withProjectLock), when there is a project to lock. */
async function inProjectTurn<T>(dir: string | undefined, fn: () => Promise<T>): Promise<T> {
  if (dir === undefined) return fn();
  const { withProjectLock } = await import('../store/projects.js');
  return withProjectLock(storeRoot(), dir, () => progress(`waiting for another ocipkg command in ${dir}`), fn);
}

export async function runUpdate(args: string[]): Promise<void> {
  const { values, positionals } = parseOptions(args, { offline: { type: 'boolean' }, target: { type: 'string' }, ...JSON_OPTION }, 'update');
  await beforeTransfers('fetching');
  const { installProject } = await import('../install.js');
  const result = await inProjectTurn(findProject()?.dir, () => installProject({
    update: positionals.length > 0 ? positionals : true,
    offline: values.offline,
    warn,
    progress,
    ...(values.target !== undefined && { target: values.target }),
  }));
  // What moved, from what to what: the pins the lockfile now holds instead.
  if (!values.json) {
    for (const move of result.moved) printLine(`moved ${move.image} from ${move.from} to ${move.to}`);
    if (result.moved.length === 0) progress('nothing moved: every tag points where the lockfile pins it');
  }
  report(result, values.json);
}

export const ADD_USAGE = 'ocipkg add NAME IMAGE [--shared | --static] [--target TRIPLE] [--json]';
export const ADD_SUMMARY = 'declare IMAGE as NAME in package.json\'s "ocipkg.packages", then install it and pin it in ocipkg-lock.json';
export const ADD_OPTIONS = [
  '  --shared, --static      the linkage to declare (default: none, ocipkg-link\'s own default)',
  '  --target TRIPLE         the build to install (every target is locked)',
  JSON_HELP,
].join('\n');

/**
 * `ocipkg add NAME IMAGE`, as `npm install PKG` edits package.json and the lockfile together: the
 * declaration is written, the package installed and locked; if that fails, package.json is put back
 * as it was, so a failed add leaves nothing behind.
 */
export async function runAdd(args: string[]): Promise<void> {
  const { values, positionals } = parseOptions(args, { shared: { type: 'boolean' }, static: { type: 'boolean' }, target: { type: 'string' }, ...JSON_OPTION }, 'add');
  if (positionals.length !== 2) throw usageError(`add: expected NAME and IMAGE (usage: ${ADD_USAGE})`);
  if (values.shared && values.static) throw usageError('add: --shared and --static exclude each other');
  const [alias, image] = positionals as [string, string];
  const project = findProject();
  if (!project) throw new OcipkgError('EINPUT', `no package.json in ${projectStart()} or above (run \`npm init\` first)`);
  const file = join(project.dir, 'package.json');
  const linkage = values.shared ? 'shared' : values.static ? 'static' : undefined;
  await beforeTransfers('fetching');
  const { installProject } = await import('../install.js');
  // package.json read, edited, installed from and put back within one turn of the project's lock.
  const result = await inProjectTurn(project.dir, async () => {
    const before = readFileSync(file, 'utf8');
    writeFileAtomicSync(file, withDeclared(before, alias, image, linkage, file));
    try {
      return await installProject({ start: project.dir, update: [alias], warn, progress, ...(values.target !== undefined && { target: values.target }) });
    } catch (err) {
      writeFileAtomicSync(file, before);
      throw err;
    }
  });
  report(result, values.json);
}

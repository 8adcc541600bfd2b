import { OcipkgError } from '../errors.js';
import { pruneStore, verifyStore } from '../store/maintenance.js';
import { storeRoot } from '../store/paths.js';
import { parseOptions, printJson, printLine, progress, usageError } from './common.js';

/** `ocipkg store prune` (also `ocipkg prune`) and `ocipkg store verify`: parse, run the store maintenance, print what was done. */

const out = printLine;

function noPositionals(values: string[], command: string): void {
  if (values.length > 0) throw usageError(`${command}: unexpected argument "${values[0]}"`);
}

export async function runPrune(args: string[], command: string): Promise<void> {
  const { values, positionals } = parseOptions(args, { 'dry-run': { type: 'boolean' }, 'min-age': { type: 'string' }, json: { type: 'boolean' } }, command);
  noPositionals(positionals, command);
  let graceMs: number | undefined;
  if (values['min-age'] !== undefined) {
    const minutes = Number(values['min-age']);
    if (values['min-age'] === '' || !Number.isFinite(minutes) || minutes < 0) {
      throw usageError(`${command}: --min-age must be a number of minutes, got "${values['min-age']}"`);
    }
    graceMs = minutes * 60_000;
  }
  const root = storeRoot();
  const dryRun = values['dry-run'] ?? false;
  const result = await pruneStore(root, { dryRun, ...(graceMs !== undefined && { graceMs }) });
  if (values.json) {
    printJson({ dryRun, ...result });
    return;
  }
  const verb = dryRun ? 'would remove' : 'removed';
  for (const digest of result.packages) out(`${verb} package ${digest}`);
  for (const digest of result.blobs) out(`${verb} blob ${digest}`);
  for (const path of result.staging) out(`${verb} staging ${path}`);
  progress(`${verb} ${result.packages.length} package(s), ${result.blobs.length} blob(s), ${result.staging.length} staging entries in ${root}`);
}

export async function runVerify(args: string[], command: string): Promise<void> {
  const { values, positionals } = parseOptions(args, { fix: { type: 'boolean' }, json: { type: 'boolean' } }, command);
  noPositionals(positionals, command);
  const root = storeRoot();
  const fix = values.fix ?? false;
  const result = await verifyStore(root, { fix });
  if (values.json) printJson({ fixed: fix, ...result });
  else {
    for (const p of result.problems) out(`${fix ? 'removed' : 'corrupt'} ${p.kind} ${p.digest}: ${p.reason}`);
    for (const ref of result.removedRefs) out(`removed ref ${ref}`);
  }
  progress(`verified ${result.blobs} blob(s) and ${result.packages} package(s) in ${root}: ${result.problems.length} problem(s)`);
  if (result.problems.length > 0 && !fix) {
    throw new OcipkgError('EINTEGRITY', `store ${root} has ${result.problems.length} corrupt item(s); run \`ocipkg store verify --fix\` to remove them`);
  }
}

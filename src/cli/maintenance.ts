import { OcipkgError } from '../errors.js';
import { listStore } from '../store/listing.js';
import { pruneStore, removeImages, verifyStore } from '../store/maintenance.js';
import { storeRoot } from '../store/paths.js';
import { formatBytes } from '../transfers.js';
import { parseOptions, printJson, printLine, progress, usageError } from './common.js';
import { commandLineReference } from '../project/manifest.js';

/**
 * `ocipkg store list` (also `list`), `ocipkg rm`, `ocipkg store prune` (also `prune`) and
 * `ocipkg store verify`: parse, run the store maintenance, print what was done.
 */

const out = printLine;

function noPositionals(values: string[], command: string): void {
  if (values.length > 0) throw usageError(`${command}: unexpected argument "${values[0]}"`);
}

/** An ISO time to the second, as the text output shows it. */
const shortTime = (iso: string | null) => (iso === null ? '-' : `${iso.slice(0, 19)}Z`);

const AGE_UNITS: Record<string, number> = { '': 60_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `--min-age`: minutes, or a number with `m`, `h` or `d` (`30d`). */
function parseAge(value: string, command: string): number {
  const match = /^(\d+(?:\.\d+)?)([mhd]?)$/.exec(value);
  if (!match) throw usageError(`${command}: --min-age must be a number of minutes, or a number with m, h or d (30d), got "${value}"`);
  return Number(match[1]) * AGE_UNITS[match[2]!]!;
}

export async function runList(args: string[], command: string): Promise<void> {
  const { values, positionals } = parseOptions(args, { json: { type: 'boolean' } }, command);
  noPositionals(positionals, command);
  const root = storeRoot();
  const rows = await listStore(root);
  if (values.json) {
    printJson(rows);
    return;
  }
  for (const row of rows) {
    out([row.reference ?? '-', row.target ?? '-', row.manifest, formatBytes(row.size), shortTime(row.fetched), shortTime(row.lastUsed)].join('\t'));
  }
  const total = new Map(rows.map((row) => [row.manifest, row.size]));
  progress(`${total.size} package(s), ${formatBytes([...total.values()].reduce((a, b) => a + b, 0))} in ${root}`);
}

export async function runRemove(args: string[], command: string): Promise<void> {
  const { values, positionals } = parseOptions(args, { json: { type: 'boolean' } }, command);
  if (positionals.length === 0) throw usageError(`${command}: missing argument (usage: ocipkg rm IMAGE...)`);
  const root = storeRoot();
  const result = await removeImages(root, positionals.map((image) => commandLineReference(image)));
  if (values.json) {
    printJson(result);
    return;
  }
  for (const reference of result.untagged) out(`untagged ${reference}`);
  for (const digest of result.packages) out(`removed package ${digest}`);
  progress(`freed ${formatBytes(result.bytes)} (${result.packages.length} package(s), ${result.blobs.length} blob(s)) in ${root}`);
}

export async function runPrune(args: string[], command: string): Promise<void> {
  const { values, positionals } = parseOptions(args, { 'dry-run': { type: 'boolean' }, 'min-age': { type: 'string' }, json: { type: 'boolean' } }, command);
  noPositionals(positionals, command);
  const graceMs = values['min-age'] === undefined ? undefined : parseAge(values['min-age'], command);
  const root = storeRoot();
  const dryRun = values['dry-run'] ?? false;
  const result = await pruneStore(root, { dryRun, ...(graceMs !== undefined && { graceMs }) });
  if (values.json) {
    printJson({ dryRun, ...result });
    return;
  }
  const verb = dryRun ? 'would remove' : 'removed';
  for (const digest of result.packages) out(`${verb} package ${digest}`);
  for (const reference of result.refs) out(`${verb} ref ${reference}`);
  for (const digest of result.blobs) out(`${verb} blob ${digest}`);
  for (const path of result.staging) out(`${verb} staging ${path}`);
  for (const dir of result.forgottenProjects) out(`${dryRun ? 'would forget' : 'forgot'} project ${dir} (its ocipkg-lock.json is gone)`);
  progress(`${verb} ${result.packages.length} package(s), ${result.refs.length} ref(s), ${result.blobs.length} blob(s), ${result.staging.length} staging entries in ${root}: ${formatBytes(result.bytes)}`);
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
    for (const digest of result.unchecked) out(`unchecked package ${digest}: its layers were not kept (OCIPKG_KEEP_LAYERS=0), so its files were not compared`);
  }
  progress(`verified ${result.blobs} blob(s) and ${result.packages} package(s) in ${root}: ${result.problems.length} problem(s)`);
  if (result.problems.length > 0 && !fix) {
    throw new OcipkgError('EINTEGRITY', `store ${root} has ${result.problems.length} corrupt item(s); run \`ocipkg store verify --fix\` to remove them`);
  }
}

import { OcipkgError } from '../errors.js';
import { escapeControls, parseOptions, printJson, printLine, progress } from './common.js';

/** `ocipkg outdated [IMAGE...]`: the tags whose registry digest moved; exit 1 when there are any, as `npm outdated` does. */

export const OUTDATED_USAGE = 'ocipkg outdated [IMAGE...] [--json]';
export const OUTDATED_SUMMARY = "list tags whose registry digest moved from the lockfile's pin or the store's record (exit 1 when any did)";
export const OUTDATED_OPTIONS = [
  '  IMAGE...                images or aliases to check (default: the packages package.json declares,',
  '                          outside a project every tag in the store)',
  '  --json                  one JSON array of {image, from, to, where} instead of lines',
].join('\n');

export async function runOutdated(args: string[]): Promise<void> {
  const { values, positionals } = parseOptions(args, { json: { type: 'boolean' } }, 'outdated');
  const { findOutdated } = await import('../outdated.js');
  const result = await findOutdated({ images: positionals });
  if (values.json) printJson(result.outdated);
  else for (const row of result.outdated) printLine([row.image, row.from ?? '-', row.to, row.where].join('\t'));
  progress(`checked ${result.checked} tag(s): ${result.outdated.length} moved`);
  for (const failure of result.failures.slice(1)) process.stderr.write(`ocipkg: could not check ${failure.image}: ${escapeControls(failure.message)}\n`);
  const [first] = result.failures;
  if (first) throw new OcipkgError(first.code, `could not check ${first.image}: ${first.message}`);
  if (result.outdated.length > 0) process.exitCode = 1;
}

import { parseArgs } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseCommandLine } from '../src/cli/args.js';

const OPTIONS = {
  cflags: { type: 'boolean' },
  force: { type: 'boolean', short: 'f' },
  verbose: { type: 'boolean', short: 'v' },
  tag: { type: 'string', short: 't' },
  target: { type: 'string' },
  requires: { type: 'string', multiple: true },
} as const;

/** What util.parseArgs makes of `args` in strict mode with positionals: the result, or that it refuses. */
function reference(args: string[]): unknown {
  try {
    const { values, positionals } = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
    return { values: { ...values }, positionals };
  } catch {
    return 'refused';
  }
}

function ours(args: string[]): unknown {
  try {
    const { values, positionals } = parseCommandLine(args, OPTIONS);
    return { values: { ...values }, positionals };
  } catch {
    return 'refused';
  }
}

const CASES: string[][] = [
  [], ['img'], ['--cflags', 'img'], ['img', '--cflags'], ['--target', 'x86_64-unknown-linux-gnu', 'img'],
  ['--target=x86_64-unknown-linux-gnu'], ['--target='], ['--target=-weird'], ['--target'], ['--target', '-x'],
  ['--target', '--'], ['--cflags=1'], ['--frobnicate'], ['--constructor'], ['---cflags'], ['-f'], ['-fv', 'img'],
  ['-ft', 'img'], ['-timg'], ['-t', 'img', '-f'], ['-fx'], ['-x'], ['-1'], ['-'], ['--', '--cflags', '-f'],
  ['a', '--', 'b'], ['--requires', 'a', '--requires=b', 'c'], ['--tag', 'a', '--tag', 'b'], ['-t'],
];

describe('command-line parsing', () => {
  it.each(CASES.map((args) => [args.join(' ') || '(nothing)', args]))('treats %s as util.parseArgs does', (_name, args) => {
    expect(ours(args)).toEqual(reference(args));
  });

  it('names the problem in its refusals', () => {
    expect(() => parseCommandLine(['--frobnicate'], OPTIONS)).toThrow("Unknown option '--frobnicate'");
    expect(() => parseCommandLine(['-x'], OPTIONS)).toThrow("Unknown option '-x'");
    expect(() => parseCommandLine(['--target'], OPTIONS)).toThrow("Option '--target <value>' argument missing");
    expect(() => parseCommandLine(['--cflags=yes'], OPTIONS)).toThrow("Option '--cflags' does not take an argument");
    expect(() => parseCommandLine(['-t', '-f'], OPTIONS)).toThrow('write --tag=VALUE');
  });
});

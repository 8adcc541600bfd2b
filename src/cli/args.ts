import type { parseArgs, ParseArgsConfig } from 'node:util';
import { didYouMean } from '../suggest.js';

/**
 * Strict command-line parsing for options declared as util.parseArgs declares them (long names,
 * `short` letters, boolean or string, `multiple`), with positionals and `--`. Not util.parseArgs
 * itself: loading and first running it costs ~1.5 ms, a tenth of what ocipkg-link's warm path may
 * spend beyond Node's own start. It accepts and refuses what parseArgs does in strict mode, and an
 * unknown long option's refusal names the declared one nearest to it.
 */
export type Options = NonNullable<ParseArgsConfig['options']>;
export type Parsed<T extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>>;

export function parseCommandLine<T extends Options>(args: string[], options: T): Parsed<T> {
  const values: Record<string, string | boolean | (string | boolean)[]> = {};
  const positionals: string[] = [];
  const shorts = new Map<string, string>();
  for (const [name, option] of Object.entries(options)) if (option.short) shorts.set(option.short, name);
  const declared = (name: string | undefined) => name !== undefined && Object.hasOwn(options, name);
  const set = (name: string, value: string | boolean) => {
    if (!options[name]!.multiple) values[name] = value;
    else ((values[name] ??= []) as (string | boolean)[]).push(value);
  };
  /** The value of string option `name` (spelled `spelled`) from the next argument. */
  const next = (index: number, spelled: string, name: string): string => {
    const value = args[index];
    if (value === undefined) throw new Error(`Option '${spelled} <value>' argument missing`);
    if (value.startsWith('-')) throw new Error(`Option '${spelled}' argument is ambiguous: to give a value starting with '-', write --${name}=VALUE`);
    return value;
  };

  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
    } else if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const spelled = eq === -1 ? arg : arg.slice(0, eq);
      const name = spelled.slice(2);
      if (!declared(name)) throw new Error(`Unknown option '${spelled}'${didYouMean(name, Object.keys(options), (n) => `'--${n}'`)}`);
      if (options[name]!.type === 'boolean') {
        if (eq !== -1) throw new Error(`Option '${spelled}' does not take an argument`);
        set(name, true);
      } else {
        set(name, eq !== -1 ? arg.slice(eq + 1) : next(++i, spelled, name));
      }
    } else {
      // `-f`, grouped booleans `-fv`, and a string option's value attached (`-tIMAGE`) or next.
      for (let j = 1; j < arg.length; j++) {
        const name = shorts.get(arg[j]!);
        if (!declared(name)) throw new Error(`Unknown option '-${arg[j]}'`);
        if (options[name!]!.type === 'boolean') {
          set(name!, true);
          continue;
        }
        set(name!, j + 1 < arg.length ? arg.slice(j + 1) : next(++i, `-${arg[j]}`, name!));
        break;
      }
    }
  }
  return { values, positionals } as unknown as Parsed<T>;
}

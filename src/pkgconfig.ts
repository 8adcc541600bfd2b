import { OcipkgError } from './errors.js';

/**
 * Reading and writing pkg-config `.pc` files without a pkg-config binary, following pkgconf's
 * rules: `name=value` lines define variables, `Key: value` lines define fields, `${name}`
 * expands a variable (any other `$` is literal, as pkgconf keeps `$ORIGIN`), `#` starts a comment
 * and a trailing `\` continues a line. Variables are expanded when they are defined, so later redefinitions do not leak backwards.
 */

/**
 * Where a package's own `.pc` files are, relative to its root: `lib/`, `lib64/` and `share/`
 * pkgconfig dirs, and Debian's multiarch `lib/<triple>/pkgconfig`.
 */
export const SHIPPED_PC_FILE = /^(?:lib|lib64|share|lib\/[^/]*-[^/]*)\/pkgconfig\/[^/]+\.pc$/;

export interface PcRequirement {
  name: string;
  /** `>= 1.2` and the like, when the file constrains the version. */
  version?: string;
}

export interface PcFile {
  variables: Record<string, string>;
  name?: string;
  version?: string;
  description?: string;
  cflags: string[];
  libs: string[];
  libsPrivate: string[];
  requires: PcRequirement[];
  requiresPrivate: PcRequirement[];
}

const VERSION_OPERATORS = new Set(['=', '==', '!=', '<', '<=', '>', '>=']);

/** Expands `${name}` references; an undefined variable is an error, as it is for pkgconf. */
function expand(value: string, variables: Record<string, string>, where: string): string {
  return value.replace(/\$\{([^}]*)\}/g, (_match, name: string) => {
    const found = variables[name];
    if (found === undefined) throw new OcipkgError('EINPUT', `${where}: variable "${name}" is not defined`);
    return found;
  });
}

/** Physical lines joined at trailing backslashes, with `#` comments removed (`\#` keeps a `#`). */
function logicalLines(text: string): string[] {
  const joined = text.replace(/\r\n?/g, '\n').replace(/\\\n/g, '');
  return joined.split('\n').map((line) => {
    let out = '';
    for (let i = 0; i < line.length; i++) {
      if (line[i] === '\\' && line[i + 1] === '#') {
        out += '#';
        i++;
      } else if (line[i] === '#') {
        break;
      } else {
        out += line[i];
      }
    }
    return out.trim();
  });
}

/**
 * Splits a flags field the way pkgconf does (a small subset of the shell): whitespace separates
 * arguments, single and double quotes group, a backslash escapes the next character.
 */
export function splitFlags(value: string): string[] {
  const args: string[] = [];
  let current = '';
  let inArg = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < value.length) current += value[++i];
      else current += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inArg = true;
    } else if (c === '\\' && i + 1 < value.length) {
      current += value[++i];
      inArg = true;
    } else if (/\s/.test(c)) {
      if (inArg) args.push(current);
      current = '';
      inArg = false;
    } else {
      current += c;
      inArg = true;
    }
  }
  if (inArg) args.push(current);
  return args;
}

/** `a >= 1.0, b c` -> a (>= 1.0), b, c. */
function parseRequires(value: string): PcRequirement[] {
  const words = value.split(/[\s,]+/).filter(Boolean);
  const out: PcRequirement[] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    if (VERSION_OPERATORS.has(word) && out.length > 0 && i + 1 < words.length) {
      out[out.length - 1]!.version = `${word} ${words[++i]}`;
    } else {
      out.push({ name: word });
    }
  }
  return out;
}

export interface PcLocation {
  /** The directory of the file, as `${pcfiledir}` expands. */
  pcfiledir: string;
  /**
   * Replaces the file's own `prefix` (pkgconf's --define-prefix); later variables whose value
   * starts with the original prefix (`libdir=/usr/lib`) are moved along with it.
   */
  prefix?: string;
}

/** Parses a `.pc` file; `where` names it in errors. */
export function parsePcFile(text: string, where: string, location: PcLocation): PcFile {
  const variables: Record<string, string> = { pcfiledir: location.pcfiledir };
  const fields: Record<string, string> = {};
  let originalPrefix: string | undefined;
  for (const line of logicalLines(text)) {
    if (line === '') continue;
    const m = /^([A-Za-z0-9_.]+)\s*([:=])\s*(.*)$/.exec(line);
    if (!m) throw new OcipkgError('EINPUT', `${where}: cannot parse line "${line}"`);
    const [, key, separator, raw] = m as unknown as [string, string, string, string];
    if (separator === ':') {
      // Field names are case-insensitive in practice (`CFlags`, `Cflags`).
      fields[key.toLowerCase()] = expand(raw, variables, where);
      continue;
    }
    let value = expand(raw, variables, where);
    if (location.prefix !== undefined) {
      if (key === 'prefix') {
        originalPrefix = value;
        value = location.prefix;
      } else if (originalPrefix && (value === originalPrefix || value.startsWith(`${originalPrefix}/`))) {
        value = location.prefix + value.slice(originalPrefix.length);
      }
    }
    variables[key] = value;
  }
  const flags = (key: string) => (fields[key] === undefined ? [] : splitFlags(fields[key]));
  return {
    variables,
    ...(fields.name !== undefined && { name: fields.name }),
    ...(fields.version !== undefined && { version: fields.version }),
    ...(fields.description !== undefined && { description: fields.description }),
    cflags: flags('cflags'),
    libs: flags('libs'),
    libsPrivate: flags('libs.private'),
    requires: parseRequires(fields.requires ?? ''),
    requiresPrivate: parseRequires(fields['requires.private'] ?? ''),
  };
}

/** Quotes one argument for a `.pc` field: a backslash before anything pkgconf would split on. */
function pcQuote(arg: string): string {
  return arg.replace(/([\s"'\\#])/g, '\\$1');
}

export interface PcOutput {
  /** Variables in definition order; values may refer to earlier ones with `${name}`. */
  variables: [string, string][];
  name: string;
  description: string;
  version: string;
  /** Arguments, quoted here; `${name}` references in them are left for pkg-config. */
  cflags: string[];
  libs: string[];
  /** Modules whose flags follow these (`Requires:`), in link order. */
  requires?: string[];
}

/** Renders a `.pc` file; `${name}` in values and arguments is left for pkg-config to expand. */
export function formatPcFile(pc: PcOutput): string {
  // A line break would start a new line of the file, a `#` a comment: no value may hold either.
  const values = [...pc.variables.flat(), pc.name, pc.description, pc.version, ...(pc.requires ?? []), ...pc.cflags, ...pc.libs];
  const broken = values.find((value) => /[\n\r#]/.test(value));
  if (broken !== undefined) throw new OcipkgError('EUNSAFE', `generating a .pc file: refusing ${JSON.stringify(broken)}`);
  const lines = [
    '# Generated by ocipkg; relocatable: every path is relative to ${pcfiledir}.',
    ...pc.variables.map(([name, value]) => `${name}=${value}`),
    '',
    `Name: ${pc.name}`,
    `Description: ${pc.description}`,
    `Version: ${pc.version}`,
    ...(pc.requires?.length ? [`Requires: ${pc.requires.join(', ')}`] : []),
    `Cflags: ${pc.cflags.map(pcQuote).join(' ')}`,
    `Libs: ${pc.libs.map(pcQuote).join(' ')}`,
  ];
  return `${lines.join('\n')}\n`;
}

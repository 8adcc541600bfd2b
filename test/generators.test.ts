import { describe, expect, it } from 'vitest';
import { formatCMakeConfig, formatCMakeConfigVersion } from '../src/link/cmake.js';
import type { LinkDescription } from '../src/link/description.js';
import { formatPcFile } from '../src/pkgconfig.js';
import { codeOfSync } from './helpers/errors.js';

/**
 * The generated .pc and CMake files refuse values that would break their syntax, even though every
 * description is checked at install: a generator is the last place where data becomes code.
 */
const description = (change: Partial<LinkDescription>): LinkDescription => ({
  schema: 1, source: 'metadata', name: 'demo', version: '1.0', includeDirs: ['root/include'], defines: ['DEMO=1'], cflags: [],
  libraries: [{ name: 'demo', kind: 'static', file: 'root/lib/libdemo.a' }], linkFlags: ['-lm'], staticLinkFlags: [], requires: [],
  pkgconfigRequires: [], variables: {}, ...change,
});

describe('generated CMake configs', () => {
  it('are written for a well-behaved description', () => {
    expect(formatCMakeConfig(description({}), ['root/include'])).toContain('add_library(demo::demo INTERFACE IMPORTED)');
  });

  it('are written for every version the package data allows (a ~ pre-release too)', () => {
    expect(formatCMakeConfig(description({ version: '1.0~rc1' }), ['root/include'])).toContain('for demo "1.0~rc1"');
    expect(formatCMakeConfigVersion('1.0~rc1')).toContain('set(PACKAGE_VERSION "1.0~rc1")');
  });

  it.each([
    ['a version that ends the comment line', { version: '1.0\nexecute_process(COMMAND id)' }],
    ['a name that closes add_library', { name: 'demo) execute_process(COMMAND id' }],
    ['a definition that splits the list', { defines: ['A;B'] }],
    ['a link flag with a generator expression', { linkFlags: ['$<1:-lm>'] }],
    ['a library name with a space', { libraries: [{ name: 'a b', kind: 'static' as const, file: 'root/lib/libdemo.a' }] }],
    ['an include directory with a quote', { includeDirs: ['root/"include'] }],
  ])('refuse %s', (_what, change) => {
    const desc = description(change);
    expect(codeOfSync(() => formatCMakeConfig(desc, desc.includeDirs))).toBe('EUNSAFE');
  });

  it('refuse a version file for a version that is not a word', () => {
    expect(codeOfSync(() => formatCMakeConfigVersion('1")\nexecute_process(COMMAND id)#'))).toBe('EUNSAFE');
  });
});

describe('generated CMake configs, linkage', () => {
  it('take required packages shared when the package links shared', () => {
    const sharedOnly = description({ libraries: [{ name: 'png16', kind: 'shared', file: 'root/lib/libpng16.so.16', runtime: 'root/lib/libpng16.so.16' }] });
    const config = formatCMakeConfig(sharedOnly, sharedOnly.includeDirs, ['zlib']);
    expect(config).toMatch(/set\(zlib_USE_SHARED ON\)\nfind_dependency\(zlib CONFIG\)/);

    const both = description({ libraries: [{ name: 'demo', kind: 'static', file: 'root/lib/libdemo.a' }, { name: 'demo', kind: 'shared', file: 'root/lib/libdemo.so', runtime: 'root/lib/libdemo.so.1' }] });
    expect(formatCMakeConfig(both, both.includeDirs, ['zlib'])).toMatch(/if\(demo_USE_SHARED\)\n  set\(zlib_USE_SHARED ON\)\nendif\(\)\nfind_dependency\(zlib CONFIG\)/);
  });

  it('keep static archives out of the exports on ELF', () => {
    expect(formatCMakeConfig(description({}), ['root/include'])).toContain('INTERFACE_LINK_OPTIONS "LINKER:--exclude-libs,libdemo.a"');
  });
});

describe('generated .pc files', () => {
  const pc = { variables: [['prefix', '${pcfiledir}/../..']] as [string, string][], name: 'demo', description: 'demo', version: '1.0', cflags: ['-I${prefix}/include'], libs: ['-lm'] };
  it('are written for well-behaved values', () => {
    expect(formatPcFile(pc)).toContain('Version: 1.0\n');
  });

  it.each([
    ['a version with a newline', { version: '1.0\nLibs: -levil' }],
    ['a variable with a comment', { variables: [['prefix', '/x#']] as [string, string][] }],
    ['a name with a carriage return', { name: 'demo\rLibs: -lx' }],
  ])('refuse %s', (_what, change) => {
    expect(codeOfSync(() => formatPcFile({ ...pc, ...change }))).toBe('EUNSAFE');
  });
});

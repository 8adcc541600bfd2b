import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isOcipkgError } from '../src/errors.js';
import { extractStream, type ExtractOptions } from '../src/fs/extract.js';
import { gzipLayer, tarBytes, type TarEntry } from './helpers/layers.js';

let work: string;
let dest: string;

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocipkg-extract-'));
  // The extraction root sits one level down so that escapes into `work` can be detected.
  dest = join(work, 'root');
  await mkdir(dest);
});

afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

const layer: ExtractOptions = { gzip: false, label: 'test layer', invalidCode: 'EMANIFEST' };

async function extract(entries: TarEntry[], options: ExtractOptions = layer): Promise<void> {
  await extractStream(Readable.from([tarBytes(entries)]), dest, options);
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(isOcipkgError(err) ? err.code : err).toBe(code);
}

describe('extractStream', () => {
  it('extracts files, directories and links that stay inside the root', async () => {
    await extract([
      { path: 'include/', type: 'Directory' },
      { path: 'include/zstd.h', body: '#define ZSTD 1\n' },
      { path: 'lib/libzstd.so.1', body: 'ELF' },
      { path: 'lib/libzstd.so', type: 'SymbolicLink', linkpath: 'libzstd.so.1' },
      { path: 'lib/sub/up', type: 'SymbolicLink', linkpath: '../libzstd.so.1' },
      { path: 'lib/copy.so', type: 'Link', linkpath: 'lib/libzstd.so.1' },
    ]);
    expect(readFileSync(join(dest, 'include/zstd.h'), 'utf8')).toBe('#define ZSTD 1\n');
    expect(readlinkSync(join(dest, 'lib/libzstd.so'))).toBe('libzstd.so.1');
    expect(readFileSync(join(dest, 'lib/sub/up'), 'utf8')).toBe('ELF');
    expect(statSync(join(dest, 'lib/copy.so')).ino).toBe(statSync(join(dest, 'lib/libzstd.so.1')).ino);
  });

  it('extracts a shared-library symlink chain in GNU tar order (real file first, then links to links)', async () => {
    await extract([
      { path: 'lib/libgreet.so.1.2.0', body: 'ELF' },
      { path: 'lib/libgreet.so.1', type: 'SymbolicLink', linkpath: 'libgreet.so.1.2.0' },
      { path: 'lib/libgreet.so', type: 'SymbolicLink', linkpath: 'libgreet.so.1' },
    ]);
    expect(readFileSync(join(dest, 'lib/libgreet.so'), 'utf8')).toBe('ELF');
    expect(readlinkSync(join(dest, 'lib/libgreet.so'))).toBe('libgreet.so.1');
  });

  it('extracts a hard link to a symlink, as GNU tar archives one, as that symlink again', async () => {
    // ln makes hard links to the symlink itself; tar then stores the second name as a Link entry.
    const tree = join(work, 'tree');
    await mkdir(join(tree, 'lib'), { recursive: true });
    execFileSync('sh', ['-c', 'echo ELF > lib/libz.so.1 && ln -s libz.so.1 lib/libz.so && ln -P lib/libz.so lib/libz-alias.so'], { cwd: tree });
    const archive = execFileSync('tar', ['-c', '-C', tree, 'lib/libz.so.1', 'lib/libz.so', 'lib/libz-alias.so']);
    expect(execFileSync('tar', ['-tvf', '-'], { input: archive, encoding: 'utf8' })).toContain('lib/libz-alias.so link to lib/libz.so\n');
    await extractStream(Readable.from([archive]), dest, layer);
    expect(readlinkSync(join(dest, 'lib/libz-alias.so'))).toBe('libz.so.1');
    expect(readFileSync(join(dest, 'lib/libz-alias.so'), 'utf8')).toBe('ELF\n');
  });

  it('extracts a gzip-compressed stream', async () => {
    await extractStream(Readable.from([gzipLayer([{ path: 'a.txt', body: 'hello' }])]), dest, { ...layer, gzip: true });
    expect(readFileSync(join(dest, 'a.txt'), 'utf8')).toBe('hello');
  });

  it('drops set-uid, set-gid and sticky bits but keeps execute bits', async () => {
    await extract([
      { path: 'bin/tool', body: '#!/bin/sh\n', mode: 0o6755 },
      { path: 'shared/', type: 'Directory', mode: 0o1777 },
    ]);
    const tool = statSync(join(dest, 'bin/tool')).mode;
    expect(tool & 0o7000).toBe(0);
    expect(tool & 0o111).toBe(0o111);
    expect(statSync(join(dest, 'shared')).mode & 0o7000).toBe(0);
  });

  const hostile: [string, TarEntry[]][] = [
    ['an absolute path', [{ path: '/tmp/ocipkg-absolute-escape', body: 'x' }]],
    ['a .. component', [{ path: 'lib/../../escaped', body: 'x' }]],
    ['a symlink escaping the root', [{ path: 'lib/evil', type: 'SymbolicLink', linkpath: '../../escaped' }]],
    ['a symlink to an absolute path', [{ path: 'evil', type: 'SymbolicLink', linkpath: '/etc' }]],
    ['a hard link escaping the root', [{ path: 'evil', type: 'Link', linkpath: '../escaped' }]],
    ['a hard link to an absolute path', [{ path: 'evil', type: 'Link', linkpath: '/etc/passwd' }]],
    ['a hard link to no entry', [{ path: 'hard', type: 'Link', linkpath: 'missing' }]],
    ['a hard link to itself', [{ path: 'hard', type: 'Link', linkpath: 'hard' }]],
    ['a hard link to itself over a file', [{ path: 'hard', body: 'x' }, { path: 'hard', type: 'Link', linkpath: './hard' }]],
    [
      'a hard link to a symlink whose text leads outside from where the hard link stands',
      [
        { path: 'lib/up', type: 'SymbolicLink', linkpath: '../x' },
        { path: 'hard', type: 'Link', linkpath: 'lib/up' },
      ],
    ],
    ['a hard link to a directory', [{ path: 'dir/', type: 'Directory' }, { path: 'hard', type: 'Link', linkpath: 'dir' }]],
    ['a character device', [{ path: 'null', type: 'CharacterDevice' }]],
    ['a block device', [{ path: 'disk', type: 'BlockDevice' }]],
    ['a FIFO', [{ path: 'pipe', type: 'FIFO' }]],
    [
      'a symlink chain that climbs out through another symlink',
      [
        { path: 'a/b/d', type: 'SymbolicLink', linkpath: '../..' },
        { path: 'a/b/e', type: 'SymbolicLink', linkpath: 'd/../escaped' },
      ],
    ],
    [
      'a file written through a symlink',
      [
        { path: 'dir', type: 'SymbolicLink', linkpath: '.' },
        { path: 'dir/x', body: 'x' },
      ],
    ],
  ];

  for (const [what, entries] of hostile) {
    it(`refuses ${what} with EUNSAFE and writes nothing outside the root`, async () => {
      await expectCode(extract([{ path: 'ok.txt', body: 'fine' }, ...entries]), 'EUNSAFE');
      expect(await readdir(work)).toEqual(['root']);
      expect(existsSync('/tmp/ocipkg-absolute-escape')).toBe(false);
    });
  }

  it('fails the whole extraction on a refused entry, not only that entry', async () => {
    await expectCode(
      extract([
        { path: 'evil', type: 'SymbolicLink', linkpath: '../../x' },
        { path: 'after.txt', body: 'later entry' },
      ]),
      'EUNSAFE',
    );
    expect(existsSync(join(dest, 'after.txt'))).toBe(false);
    expect(() => lstatSync(join(dest, 'evil'))).toThrow();
  });

  it('reports input that is not a tar with the code the caller chose', async () => {
    const junk = Buffer.alloc(4096, 0x5a);
    await expectCode(extractStream(Readable.from([junk]), dest, layer), 'EMANIFEST');
    await expectCode(extractStream(Readable.from([junk]), dest, { ...layer, invalidCode: 'EINPUT' }), 'EINPUT');
    await expectCode(extractStream(Readable.from([junk]), dest, { ...layer, gzip: true }), 'EMANIFEST');
  });
});

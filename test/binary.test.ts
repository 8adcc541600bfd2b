import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectFile, nonPicObjects, tripleOf } from '../src/package/binary/index.js';
import { minimalElf } from './helpers/elf.js';

const LIBDIR = '/usr/lib/x86_64-linux-gnu';
const ARCHIVES = ['libzstd.a', 'liblz4.a', 'libsqlite3.a', 'libz.a'];

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ocipkg-binary-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function run(cmd: string, args: string[], cwd?: string): { status: number | null; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...(cwd && { cwd }) });
  if (r.error) throw r.error;
  return { status: r.status, stderr: r.stderr };
}

describe('inspectFile on Debian x86_64 libraries', () => {
  it('reads a shared object: amd64, 64-bit little-endian ELF, its SONAME, glibc, x86_64-unknown-linux-gnu', async () => {
    const [info, ...rest] = await inspectFile(join(LIBDIR, 'libzstd.so.1.5.4'));
    expect(rest).toEqual([]);
    expect(info).toMatchObject({ format: 'elf', architecture: 'amd64', os: 'linux', bits: 64, endian: 'little', type: 'shared', soname: 'libzstd.so.1', libc: 'gnu' });
    expect(tripleOf(info!)).toBe('x86_64-unknown-linux-gnu');
  });

  it('follows a symlink to the shared object it names', async () => {
    const [info] = await inspectFile(join(LIBDIR, 'liblz4.so'));
    expect(info?.soname).toBe('liblz4.so.1');
  });

  it('lists every object member of a static archive (GNU ar), each a relocatable amd64 ELF object', async () => {
    const names = spawnSync('ar', ['t', join(LIBDIR, 'libsqlite3.a')], { encoding: 'utf8' }).stdout.trim().split('\n');
    const infos = await inspectFile(join(LIBDIR, 'libsqlite3.a'));
    expect(infos).toHaveLength(names.length);
    for (const info of infos) {
      expect(info).toMatchObject({ format: 'elf', architecture: 'amd64', type: 'relocatable', bits: 64 });
      expect(tripleOf(info)).toBe('x86_64-unknown-linux-gnu');
    }
    expect(infos.map((i) => i.where)).toContain(join(LIBDIR, 'libsqlite3.a') + `(${names[0]})`);
  });

  it('refuses a file that is not a binary with EINPUT', async () => {
    const text = join(work, 'notes.txt');
    await writeFile(text, 'not a library\n');
    await expect(inspectFile(text)).rejects.toMatchObject({ code: 'EINPUT' });
    await expect(nonPicObjects(join(LIBDIR, 'libzstd.so.1.5.4'))).rejects.toMatchObject({ code: 'EINPUT' });
  });

  it('reads a BSD-style archive (long names after the header) as well as a GNU one', async () => {
    // Built by hand (GNU ar cannot write the BSD variant): a "#1/<len>" name, stored before the data.
    const obj = join(work, 'bsd-src');
    await rm(obj, { recursive: true, force: true });
    await mkdir(obj);
    expect(run('ar', ['x', join(LIBDIR, 'liblz4.a'), 'lz4.o'], obj).status).toBe(0);
    const data = await readFile(join(obj, 'lz4.o'));
    const name = Buffer.from('a_rather_long_member_name_lz4.o\0');
    const header = (s: string, width: number) => s.padEnd(width, ' ');
    const size = name.length + data.length;
    const hdr = header(`#1/${name.length}`, 16) + header('0', 12) + header('0', 6) + header('0', 6) + header('100644', 8) + header(String(size), 10) + '`\n';
    const body = Buffer.concat([Buffer.from('!<arch>\n'), Buffer.from(hdr, 'latin1'), name, data, size % 2 ? Buffer.from('\n') : Buffer.alloc(0)]);
    const archive = join(work, 'libbsd.a');
    await writeFile(archive, body);
    const infos = await inspectFile(archive);
    expect(infos).toHaveLength(1);
    expect(infos[0]).toMatchObject({ where: `${archive}(a_rather_long_member_name_lz4.o)`, architecture: 'amd64', type: 'relocatable' });
  });

  it('reads a minimal aarch64 ELF header as arm64, aarch64-unknown-linux-gnu', async () => {
    const path = join(work, 'arm64.o');
    await writeFile(path, minimalElf(183));
    const [info] = await inspectFile(path);
    expect(info).toMatchObject({ architecture: 'arm64', bits: 64, type: 'relocatable' });
    expect(tripleOf(info!)).toBe('aarch64-unknown-linux-gnu');
  });
});

describe('nonPicObjects agrees with the real linker (gcc -shared)', () => {
  for (const archive of ARCHIVES) {
    it(`${archive}: the whole archive links into a shared object exactly when no member is reported`, async () => {
      const path = join(LIBDIR, archive);
      const reported = await nonPicObjects(path);
      const link = run('gcc', ['-shared', '-o', join(work, `${archive}.so`), '-Wl,--whole-archive', path, '-Wl,--no-whole-archive']);
      expect(reported.length === 0).toBe(link.status === 0);
    });

    it(`${archive}: each member is reported exactly when ld -shared refuses that member alone`, async () => {
      const dir = join(work, `${archive}.d`);
      await mkdir(dir, { recursive: true });
      const path = join(dir, archive);
      await copyFile(join(LIBDIR, archive), path);
      expect(run('ar', ['x', archive], dir).status).toBe(0);
      const members = (await readdir(dir)).filter((f) => f.endsWith('.o')).sort();
      const refused: string[] = [];
      for (const m of members) if (!(await linksAlone(dir, m))) refused.push(m);
      expect((await nonPicObjects(path)).sort()).toEqual(refused);
    });
  }

  it('matches the expected verdicts for Debian: zstd, z and sqlite3 are not PIC, lz4 is', async () => {
    expect((await nonPicObjects(join(LIBDIR, 'libzstd.a'))).length).toBeGreaterThan(0);
    expect((await nonPicObjects(join(LIBDIR, 'libz.a'))).length).toBeGreaterThan(0);
    expect((await nonPicObjects(join(LIBDIR, 'libsqlite3.a'))).length).toBeGreaterThan(0);
    expect(await nonPicObjects(join(LIBDIR, 'liblz4.a'))).toEqual([]);
  });
});

/**
 * Whether `ld -shared` accepts one member on its own. A member may reference hidden symbols that
 * another member of the archive defines; linked alone those would be undefined and ld would refuse
 * them for that reason alone, so a stub object defines them (hidden, as in the archive). Undefined
 * default-visibility symbols stay undefined, as they may in a shared object.
 */
async function linksAlone(dir: string, member: string): Promise<boolean> {
  const symbols = spawnSync('readelf', ['-sW', join(dir, member)], { encoding: 'utf8' }).stdout;
  const hidden = new Set<string>();
  for (const line of symbols.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[5] === 'HIDDEN' && f[6] === 'UND' && f[7]) hidden.add(f[7]);
  }
  const stub = join(dir, `${member}.stub.c`);
  await writeFile(stub, [...hidden].map((name) => `__attribute__((visibility("hidden"))) char ${name}[1];\n`).join(''));
  expect(run('gcc', ['-c', '-o', `${stub}.o`, stub]).status).toBe(0);
  return run('gcc', ['-shared', '-o', join(dir, `${member}.so`), join(dir, member), `${stub}.o`]).status === 0;
}

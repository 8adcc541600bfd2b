import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OCIPKG, ocipkg, ocipkgLink, tempDir } from './helpers/cli.js';
import { LayoutDirectory } from '../src/layout/directory.js';
import { buildImage, writeImage, type TarEntry } from './helpers/layers.js';
import { debianPrefix } from './helpers/prefix.js';
import { freePort, startRegistry, type TestRegistry } from './helpers/registry.js';

/** The CLI as users meet it: bad input, refused content, concurrency, kills. All against a real registry. */
let registry: TestRegistry;
let work: string;
let archive: string;

beforeAll(async () => {
  registry = await startRegistry();
  work = await tempDir('cli');
  archive = join(work, 'lz4.tar');
  const prefix = await debianPrefix(join(work, 'prefix'), 'lz4', ['lz4.h']);
  const packed = await ocipkg(['pack', prefix, archive, '-t', `${registry.host}/acme/lz4:1`]);
  expect(packed.code, packed.stderr).toBe(0);
  expect((await ocipkg(['push', archive])).code).toBe(0);
});

afterAll(async () => {
  await registry?.stop();
});

/** Packages and blobs present in a store: what a later run could trust. */
function storeContents(store: string): { packages: string[]; blobs: string[]; tmp: string[] } {
  const list = (...p: string[]) => (existsSync(join(store, ...p)) ? readdirSync(join(store, ...p)) : []);
  return { packages: list('packages', 'sha256'), blobs: list('blobs', 'sha256'), tmp: list('tmp') };
}

function expectOneLineError(result: { code: number | null; stdout: string; stderr: string }, pattern: RegExp): void {
  expect(result.code).not.toBe(0);
  expect(result.stdout).toBe('');
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toMatch(pattern);
  expect(result.stderr).not.toMatch(/\n\s+at /);
}

/** Pushes a hand-made layout through skopeo (an independent client) so ocipkg meets it only as a consumer. */
async function publishLayout(name: string, entries: TarEntry[], options: { rust?: boolean; metadata?: Record<string, unknown> } = {}): Promise<string> {
  const dir = await tempDir('layout');
  await writeImage(new LayoutDirectory(dir), buildImage([entries], options), 'v1');
  const image = `${registry.host}/hostile/${name}:v1`;
  execFileSync('skopeo', ['copy', '--dest-tls-verify=false', `oci:${dir}:v1`, `docker://${image}`], { stdio: 'ignore' });
  return image;
}

describe('bad input', () => {
  it('an unknown tag is one line naming the image', async () => {
    const store = await tempDir('store');
    const result = await ocipkg(['get', `${registry.host}/acme/lz4:nope`], { OCIPKG_DATA_DIR: store });
    expectOneLineError(result, /acme\/lz4:nope/);
    expect(storeContents(store).packages).toEqual([]);
  });

  it('a malformed reference is a usage error that says what is wrong', async () => {
    const result = await ocipkg(['get', 'Acme/ZSTD:1'], { OCIPKG_DATA_DIR: await tempDir('store') });
    expectOneLineError(result, /invalid image reference "Acme\/ZSTD:1": repository names must be lowercase/);
  });

  it('an unreachable registry fails within seconds', async () => {
    const port = await freePort();
    const started = Date.now();
    const result = await ocipkg(['get', `127.0.0.1:${port}/acme/lz4:1`], { OCIPKG_DATA_DIR: await tempDir('store') });
    expectOneLineError(result, new RegExp(`127\\.0\\.0\\.1:${port}`));
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('an unknown command or option is a usage error with exit 2', async () => {
    expectOneLineError(await ocipkg(['fetch', 'x']), /unknown command "fetch"/);
    const result = await ocipkg(['get', '--bogus', 'x']);
    expectOneLineError(result, /--bogus/);
    expect(result.code).toBe(2);
  });

  it('--verbose adds the stack trace', async () => {
    const result = await ocipkg(['get', '--verbose', `${registry.host}/acme/lz4:nope`], { OCIPKG_DATA_DIR: await tempDir('store') });
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/\n\s+at /);
  });

  it('every command answers --help on stdout', async () => {
    for (const command of ['pack', 'compose', 'push', 'publish', 'get', 'load', 'image-directory', 'list', 'inspect', 'login', 'logout']) {
      const result = await ocipkg([command, '--help']);
      expect(result.code, command).toBe(0);
      expect(result.stdout, command).toMatch(new RegExp(`^usage: ocipkg ${command}`));
    }
  });
});

describe('refused content installs nothing', () => {
  it('a blob whose bytes do not match its digest', async () => {
    // A registry of its own: it shares blobs between repositories, and this test corrupts one.
    const own = await startRegistry();
    try {
      const image = `${own.host}/acme/tampered:1`;
      expect((await ocipkg(['push', archive, image])).code).toBe(0);
      const inspected = JSON.parse((await ocipkg(['inspect', image])).stdout) as { manifest: { layers: { digest: string }[] } };
      const hex = inspected.manifest.layers[0]!.digest.slice(7);
      // Corrupt the layer inside the real registry's storage, keeping its size.
      const blob = join(own.root, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
      const bytes = await readFile(blob);
      bytes[bytes.length >> 1] ^= 0xff;
      await writeFile(blob, bytes);
      const store = await tempDir('store');
      const result = await ocipkg(['get', image], { OCIPKG_DATA_DIR: store });
      expectOneLineError(result, new RegExp(hex));
      const contents = storeContents(store);
      expect(contents.packages).toEqual([]);
      expect(contents.blobs).not.toContain(hex);
      expect(contents.tmp).toEqual([]);
    } finally {
      await own.stop();
    }
  });

  const hostile: [string, TarEntry[]][] = [
    ['absolute-path', [{ path: '/tmp/ocipkg-owned', body: 'x' }]],
    ['dot-dot', [{ path: 'lib/../../escape.txt', body: 'x' }]],
    ['symlink-out', [{ path: 'lib/evil', type: 'SymbolicLink', linkpath: '../../../etc/passwd' }]],
    ['hardlink-out', [{ path: 'lib/hard', type: 'Link', linkpath: '../outside' }]],
    ['device', [{ path: 'dev/null', type: 'CharacterDevice' }]],
    ['hardlink-missing', [{ path: 'lib/hard', type: 'Link', linkpath: 'lib/nothing' }]],
    ['hardlink-self', [{ path: 'lib/hard', type: 'Link', linkpath: 'lib/hard' }]],
  ];
  for (const [name, entries] of hostile) {
    it(`a layer with ${name}`, async () => {
      const image = await publishLayout(name, [{ path: 'include/ok.h', body: '// ok\n' }, ...entries]);
      const store = await tempDir('store');
      const result = await ocipkg(['get', image], { OCIPKG_DATA_DIR: store });
      expectOneLineError(result, /refus|unsafe|outside|device|absolute|\.\.|hard link/i);
      expect(result.code).toBe(6);
      expect(result.stderr).toContain(entries[0]!.path);
      expect(storeContents(store).packages).toEqual([]);
      expect(storeContents(store).tmp).toEqual([]);
    });
  }

  // Each library file a symlink that never reaches a file: named in the metadata, or found by name in an artifact without it.
  const loops: [string, TarEntry[], boolean][] = [
    ['a library file linking to itself', [{ path: 'lib/libx.a', type: 'SymbolicLink', linkpath: 'libx.a' }], false],
    ['a library file in a two-link cycle', [{ path: 'lib/libx.a', type: 'SymbolicLink', linkpath: 'liby.a' }, { path: 'lib/liby.a', type: 'SymbolicLink', linkpath: 'libx.a' }], false],
    ['a library file linking to itself, found by name', [{ path: 'lib/libx.a', type: 'SymbolicLink', linkpath: 'libx.a' }], true],
  ];
  for (const [what, entries, rust] of loops) {
    it(`a package with ${what}`, async () => {
      const metadata = { libraries: [{ name: 'x', kind: 'static', file: 'lib/libx.a' }] };
      const image = await publishLayout(`loop-${loops.findIndex(([w]) => w === what)}`, [{ path: 'include/ok.h', body: '// ok\n' }, ...entries], rust ? { rust } : { metadata });
      const store = await tempDir('store');
      const result = await ocipkg(['get', image], { OCIPKG_DATA_DIR: store });
      expectOneLineError(result, /"lib\/lib[xy]\.a" is a symlink that loops/);
      expect(result.code).toBe(6);
      expect(result.stderr).toContain(image.slice(0, image.lastIndexOf(':')));
      expect(result.stderr).not.toContain('/tmp/');
      expect(storeContents(store).packages).toEqual([]);
      expect(storeContents(store).tmp).toEqual([]);
    });
  }
});

describe('artifacts written by the Rust ocipkg', () => {
  it('files at the layer root and a config holding only `layers` are fetched and their libraries found', async () => {
    const lib = await readFile('/usr/lib/x86_64-linux-gnu/liblz4.a');
    const image = await publishLayout('rust-style', [{ path: 'liblz4.a', body: lib }, { path: 'lz4.h', body: await readFile('/usr/include/lz4.h') }], { rust: true });
    const store = await tempDir('store');
    const result = await ocipkg(['get', image], { OCIPKG_DATA_DIR: store });
    expect(result.code, result.stderr).toBe(0);
    const root = result.stdout.trim();
    expect(readdirSync(root).sort()).toEqual(['liblz4.a', 'lz4.h']);
    const libs = await ocipkgLink(['--libs', image], { OCIPKG_DATA_DIR: store });
    expect(libs.code, libs.stderr).toBe(0);
    expect(libs.stdout.trim()).toBe(`${root}/liblz4.a -Wl,--exclude-libs,liblz4.a`);
  });
});

describe('archives without a registry', () => {
  it('load puts an archive into the store under the name it records; loading it again succeeds', async () => {
    const store = await tempDir('store');
    const loaded = await ocipkg(['load', archive], { OCIPKG_DATA_DIR: store });
    expect(loaded.code, loaded.stderr).toBe(0);
    const offline = await ocipkg(['image-directory', '--offline', `${registry.host}/acme/lz4:1`], { OCIPKG_DATA_DIR: store });
    expect(offline.stdout).toBe(loaded.stdout);
    const again = await ocipkg(['load', archive], { OCIPKG_DATA_DIR: store });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/already in the store/);
    expect((await ocipkg(['load', '-f', archive], { OCIPKG_DATA_DIR: store })).code).toBe(0);
  });

  it('load records a name that pins a digest only when the archive holds those bytes, and says what it recorded', async () => {
    // The same archive, its index.json claiming to be another image's digest.
    const claimed = `${registry.host}/acme/lz4@sha256:${'0'.repeat(64)}`;
    const lying = join(work, 'lying.tar');
    execFileSync('python3', ['-c', `
import io, json, sys, tarfile
src, dst, name = sys.argv[1:]
with tarfile.open(src) as inp, tarfile.open(dst, 'w') as out:
    for member in inp.getmembers():
        data = inp.extractfile(member).read() if member.isfile() else None
        if member.name == 'index.json':
            index = json.loads(data)
            index['manifests'][0]['annotations']['org.opencontainers.image.ref.name'] = name
            data = json.dumps(index).encode()
            member.size = len(data)
        out.addfile(member, io.BytesIO(data) if data is not None else None)
`, archive, lying, claimed]);
    const store = await tempDir('store');
    const refused = await ocipkg(['load', lying], { OCIPKG_DATA_DIR: store });
    expectOneLineError(refused, /names digest sha256:0{64}, but .* holds sha256:/);
    expect(storeContents(store).packages).toEqual([]);
    expect((await ocipkg(['list', '--json'], { OCIPKG_DATA_DIR: store })).stdout.trim()).toBe('[]');

    const loaded = await ocipkg(['load', archive], { OCIPKG_DATA_DIR: store });
    expect(loaded.code, loaded.stderr).toBe(0);
    expect(loaded.stderr).toMatch(new RegExp(`^ocipkg: loaded ${registry.host}/acme/lz4:1 \\(sha256:[0-9a-f]{64}\\)\n$`));
  });

  it('compose packs loose files at the package root', async () => {
    const out = join(work, 'composed.tar');
    const composed = await ocipkg(['compose', '/usr/lib/x86_64-linux-gnu/liblz4.a', '/usr/include/lz4.h', '-o', out, '-t', 'example.com/acme/lz4:composed']);
    expect(composed.code, composed.stderr).toBe(0);
    const store = await tempDir('store');
    const loaded = await ocipkg(['load', out], { OCIPKG_DATA_DIR: store });
    expect(readdirSync(loaded.stdout.trim()).sort()).toEqual(['liblz4.a', 'lz4.h']);
  });
});

describe('concurrency and kills', () => {
  it('eight processes fetching one image at once all succeed and leave one intact copy', async () => {
    const store = await tempDir('store');
    const image = `${registry.host}/acme/lz4:1`;
    const results = await Promise.all(Array.from({ length: 8 }, () => ocipkg(['get', image], { OCIPKG_DATA_DIR: store })));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    expect(new Set(results.map((r) => r.stdout)).size).toBe(1);
    const contents = storeContents(store);
    expect(contents.packages).toHaveLength(1);
    expect(contents.tmp).toEqual([]);
    expect(readdirSync(join(results[0]!.stdout.trim(), 'lib'))).toEqual(['liblz4.a']);
  });

  it('a get killed at any point leaves nothing a later run trusts, and the next run completes', async () => {
    const store = await tempDir('store');
    const image = `${registry.host}/acme/lz4:1`;
    for (const delay of [5, 40, 80, 120, 160, 200, 260, 320]) {
      const child = spawn(process.execPath, [OCIPKG, 'get', '-f', image], { env: { ...process.env, OCIPKG_DATA_DIR: store }, stdio: 'ignore' });
      // Listening from the start: a get that finishes before its kill must not leave this waiting.
      const closed = new Promise((r) => child.once('close', r));
      await new Promise((r) => setTimeout(r, delay));
      child.kill('SIGKILL');
      await closed;
      // Whatever the kill left, an offline lookup either finds a complete package or nothing.
      const offline = await ocipkg(['image-directory', '--offline', image], { OCIPKG_DATA_DIR: store });
      if (offline.code === 0) expect(readdirSync(join(offline.stdout.trim(), 'lib'))).toEqual(['liblz4.a']);
      else expect(offline.stderr).toMatch(/not in the store/);
    }
    const finished = await ocipkg(['get', image], { OCIPKG_DATA_DIR: store });
    expect(finished.code, finished.stderr).toBe(0);
    expect(storeContents(store).packages).toHaveLength(1);
  });
});

import { execFileSync } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePackageConfig } from '../src/artifact/config.js';
import { OCIPKG_CONFIG } from '../src/oci/mediatypes.js';
import { gnuCxxForMsvc, inspectFile, tripleOf } from '../src/package/binary/index.js';
import { nodeToTriple, platformToTriples } from '../src/triple.js';
import { describeLibraries } from '../src/package/discover.js';
import { classifyLibraryName } from '../src/package/library-name.js';
import { tempDir } from './helpers/cli.js';

/**
 * The PE/COFF, Mach-O and `.tbd` readers against files the real toolchains write here: lld-link's
 * and GNU ld's import libraries, MSVC-target clang and MinGW gcc objects and DLLs, ld64.lld dylibs,
 * llvm-lipo universal archives.
 */
let work: string;

/** Debian names LLVM 14's Mach-O tools with their version; newer packages also without. */
const tool = (name: string) => [name, `${name}-14`].find((candidate) => execFileSync('sh', ['-c', `command -v ${candidate} || true`], { encoding: 'utf8' }).trim() !== '') ?? name;

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
}

beforeAll(async () => {
  work = await tempDir('pe-macho-binary');
  await writeFile(join(work, 'greet.c'), '__declspec(dllexport) const char *greet(void) { return "hello"; }\n');
  await writeFile(join(work, 'greet.cc'), '__declspec(dllexport) const char *greet_cpp() { return "hi"; }\n');
  sh('clang', ['--target=x86_64-pc-windows-msvc', '-c', 'greet.c', '-o', 'greet.obj']);
  sh('lld-link', ['-dll', '-noentry', '-nodefaultlib', 'greet.obj', '-out:greet.dll', '-implib:greet.lib']);
  sh('clang++', ['--target=x86_64-pc-windows-msvc', '-c', 'greet.cc', '-o', 'greet-cpp.obj']);
  sh('llvm-lib', ['-out:greet-cpp.lib', 'greet-cpp.obj']);
  sh('x86_64-w64-mingw32-gcc', ['-shared', 'greet.c', '-o', 'libgreet.dll', '-Wl,--out-implib,libgreet.dll.a']);
  sh('x86_64-w64-mingw32-gcc', ['-c', 'greet.c', '-o', 'greet-mingw.o']);
  sh('x86_64-w64-mingw32-ar', ['rc', 'libgreet-mingw.a', 'greet-mingw.o']);
  sh('x86_64-w64-mingw32-g++', ['-shared', 'greet.cc', '-o', 'libgreetpp.dll', '-Wl,--out-implib,libgreetpp.dll.a']);
  for (const arch of ['arm64', 'x86_64']) {
    sh('clang', ['-target', `${arch}-apple-macos11`, '-D__declspec(x)=', '-c', 'greet.c', '-o', `greet-${arch}.o`]);
    sh('llvm-ar', ['rc', `libgreet-${arch}.a`, `greet-${arch}.o`]);
  }
  sh(tool('llvm-lipo'), ['-create', 'libgreet-arm64.a', 'libgreet-x86_64.a', '-output', 'libgreet-universal.a']);
  sh(tool('ld64.lld'), ['-arch', 'arm64', '-platform_version', 'macos', '11.0', '11.0', '-dylib', '-install_name', '@rpath/libgreet.1.dylib', '-o', 'libgreet.1.dylib', 'greet-arm64.o']);
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('Windows import libraries, told by content', () => {
  it("lld-link's import library: import objects naming greet.dll, no toolchain shown, so x86_64-pc-windows-msvc", async () => {
    const objects = await inspectFile(join(work, 'greet.lib'));
    expect(objects.every((o) => o.type === 'import' && o.format === 'coff' && o.architecture === 'amd64')).toBe(true);
    expect(new Set(objects.map((o) => o.importsFrom).filter(Boolean))).toEqual(new Set(['greet.dll']));
    expect(objects.some((o) => o.abi !== undefined)).toBe(false);
    expect(tripleOf(objects[0]!)).toBe('x86_64-pc-windows-msvc');
  });

  it("GNU ld's libgreet.dll.a: long-form import objects, the DLL named in .idata$7, MinGW's", async () => {
    const objects = await inspectFile(join(work, 'libgreet.dll.a'));
    expect(objects.every((o) => o.type === 'import')).toBe(true);
    expect(objects.map((o) => o.importsFrom).filter(Boolean)).toEqual(['libgreet.dll']);
    expect(tripleOf(objects[0]!)).toBe('x86_64-pc-windows-gnu');
  });

  it('a static archive of the same code is not an import library, whatever its name', async () => {
    const msvc = await inspectFile(join(work, 'greet-cpp.lib'));
    expect(msvc.map((o) => o.type)).toEqual(['relocatable']);
    const mingw = await inspectFile(join(work, 'libgreet-mingw.a'));
    expect(mingw.map((o) => [o.type, o.abi])).toEqual([['relocatable', 'gnu']]);
  });

  it('describeLibraries pairs each import library with the DLL it names and kinds archives by content', async () => {
    const at = (name: string) => join(work, name);
    const libraries = await describeLibraries([
      { path: 'bin/greet.dll', source: at('greet.dll') },
      { path: 'lib/greet.dll.lib', source: at('greet.lib') },
      { path: 'lib/greet.lib', source: at('greet-cpp.lib') },
      { path: 'bin/libgreet.dll', source: at('libgreet.dll') },
      { path: 'lib/libgreet.dll.a', source: at('libgreet.dll.a') },
      { path: 'bin/lonely.dll', source: at('libgreetpp.dll') },
    ]);
    expect(libraries).toEqual([
      { name: 'lonely', kind: 'shared', file: 'bin/lonely.dll' },
      { name: 'greet', kind: 'shared', file: 'lib/greet.dll.lib', runtime: 'bin/greet.dll' },
      { name: 'greet', kind: 'static', file: 'lib/greet.lib' },
      { name: 'greet', kind: 'shared', file: 'lib/libgreet.dll.a', runtime: 'bin/libgreet.dll' },
    ]);
  });
});

describe('which Windows toolchain built a PE/COFF file', () => {
  it("a DLL lld-link made from MSVC-target objects shows nothing of MinGW's: MSVC", async () => {
    const [dll] = await inspectFile(join(work, 'greet.dll'));
    expect(dll).toMatchObject({ format: 'pe', type: 'shared', architecture: 'amd64' });
    expect(dll!.abi).toBeUndefined();
    expect(tripleOf(dll!)).toBe('x86_64-pc-windows-msvc');
  });

  it("MinGW's DLL imports msvcrt.dll: GNU", async () => {
    const [dll] = await inspectFile(join(work, 'libgreet.dll'));
    expect(dll!.imports).toEqual(expect.arrayContaining(['KERNEL32.dll', 'msvcrt.dll']));
    expect(dll!.abi).toBe('gnu');
    expect(tripleOf(dll!)).toBe('x86_64-pc-windows-gnu');
  });

  it("g++'s C++ exports are Itanium-mangled, MSVC-target clang++'s are not, and only the first is refused for MSVC", async () => {
    const gnu = await inspectFile(join(work, 'libgreetpp.dll.a'));
    expect(gnu.find((o) => o.itaniumSymbol)?.itaniumSymbol).toMatch(/^_Z9greet_cppv$/);
    expect(gnuCxxForMsvc(gnu, 'x86_64-pc-windows-msvc')).toMatch(/is GNU-ABI C\+\+ \(_Z9greet_cppv is Itanium-mangled\), which an MSVC build \(x86_64-pc-windows-msvc\) cannot link; .* x86_64-pc-windows-gnu$/);
    expect(gnuCxxForMsvc(gnu, 'x86_64-pc-windows-gnu')).toBeUndefined();
    const [dll] = await inspectFile(join(work, 'libgreetpp.dll'));
    expect(dll!.itaniumSymbol).toBe('_Z9greet_cppv');
    const msvc = await inspectFile(join(work, 'greet-cpp.lib'));
    expect(msvc[0]).toMatchObject({ abi: 'msvc' });
    expect(gnuCxxForMsvc(msvc, 'x86_64-pc-windows-msvc')).toBeUndefined();
  });
});

describe('Mach-O: install names, universal slices, .tbd stubs', () => {
  it('reads the install name of a dylib', async () => {
    const [info] = await inspectFile(join(work, 'libgreet.1.dylib'));
    expect(info).toMatchObject({ format: 'macho', type: 'shared', soname: '@rpath/libgreet.1.dylib' });
    expect(tripleOf(info!)).toBe('aarch64-apple-darwin');
  });

  it('reads a universal archive whole, or only the slice of the architecture asked for', async () => {
    const all = await inspectFile(join(work, 'libgreet-universal.a'));
    expect(all.map((o) => o.architecture).sort()).toEqual(['amd64', 'arm64']);
    expect(all.every((o) => o.universal)).toBe(true);
    const arm64 = await inspectFile(join(work, 'libgreet-universal.a'), { architecture: 'arm64' });
    expect(arm64.map((o) => o.architecture)).toEqual(['arm64']);
  });

  it('reads the install name and targets of tbd v4, v3 and v5 stubs', async () => {
    const stubs: Record<string, string> = {
      v4: "--- !tapi-tbd\ntbd-version: 4\ntargets: [ x86_64-macos, arm64-macos, arm64-maccatalyst ]\ninstall-name: '/usr/lib/libz.1.dylib'\nexports:\n  - targets: [ arm64-macos ]\n    symbols: [ _zlibVersion ]\n...\n",
      v3: '--- !tapi-tbd-v3\narchs: [ x86_64, arm64 ]\nplatform: macosx\ninstall-name: /usr/lib/libz.1.dylib\n...\n',
      v5: JSON.stringify({ tapi_tbd_version: 5, main_library: { install_names: [{ name: '/usr/lib/libz.1.dylib' }], target_info: [{ target: 'x86_64-macos' }, { target: 'arm64-macos' }] } }),
    };
    for (const [version, text] of Object.entries(stubs)) {
      await writeFile(join(work, `libz-${version}.tbd`), text);
      const objects = await inspectFile(join(work, `libz-${version}.tbd`));
      expect(objects.map((o) => o.architecture).sort(), version).toEqual(['amd64', 'arm64']);
      expect(objects.every((o) => o.soname === '/usr/lib/libz.1.dylib' && o.os === 'darwin' && o.type === 'shared'), version).toBe(true);
      expect((await inspectFile(join(work, `libz-${version}.tbd`), { architecture: 'arm64' })).map((o) => tripleOf(o))).toEqual(['aarch64-apple-darwin']);
    }
  });

  it('a .tbd of a dylib the package ships is left out for the dylib', async () => {
    await writeFile(join(work, 'libgreet.tbd'), "--- !tapi-tbd\ntbd-version: 4\ntargets: [ arm64-macos ]\ninstall-name: '@rpath/libgreet.1.dylib'\n...\n");
    const libraries = await describeLibraries([
      { path: 'lib/libgreet.1.dylib', source: join(work, 'libgreet.1.dylib') },
      { path: 'lib/libgreet.tbd', source: join(work, 'libgreet.tbd') },
    ]);
    expect(libraries).toEqual([{ name: 'greet', kind: 'shared', file: 'lib/libgreet.1.dylib', soname: '@rpath/libgreet.1.dylib' }]);
  });
});

describe('library file names', () => {
  it.each([
    ['libgreet.dll.a', 'greet', 'shared'],
    ['greet.dll.lib', 'greet', 'shared'],
    ['greet.lib', 'greet', 'static'],
    ['libgreet.tbd', 'greet', 'shared'],
    ['libgreet.a', 'greet', 'static'],
  ])('%s is %s, %s by its name (content decides for archives)', (file, name, kind) => {
    expect(classifyLibraryName(file)).toEqual({ name, kind });
  });
});

describe('hostile or broken input', () => {
  it('a truncated DLL, a PE whose export table points nowhere and an oversized or malformed stub are refused with EINPUT', async () => {
    const dll = await readFile(join(work, 'libgreet.dll'));
    await writeFile(join(work, 'truncated.dll'), dll.subarray(0, 400));
    await expect(inspectFile(join(work, 'truncated.dll'))).rejects.toMatchObject({ code: 'EINPUT' });
    const bent = Buffer.from(dll);
    const lfanew = bent.readUInt32LE(0x3c);
    bent.writeUInt32LE(0x7fff0000, lfanew + 24 + 112); // the export directory's RVA, PE32+
    await writeFile(join(work, 'bent.dll'), bent);
    await expect(inspectFile(join(work, 'bent.dll'))).rejects.toMatchObject({ code: 'EINPUT' });
    await writeFile(join(work, 'bad.tbd'), '{"tapi_tbd_version": 5, ');
    await expect(inspectFile(join(work, 'bad.tbd'))).rejects.toMatchObject({ code: 'EINPUT' });
  });

  it('install names are checked as package data: @rpath/, @loader_path/ and absolute paths pass, .. and shell syntax do not', () => {
    const config = (soname: string) => {
      const bytes = Buffer.from(JSON.stringify({ layers: {}, package: { schema: 1, name: 'greet', libraries: [{ name: 'greet', kind: 'shared', file: 'lib/libgreet.dylib', soname }] } }));
      return () => parsePackageConfig({ mediaType: OCIPKG_CONFIG, digest: `sha256:${'0'.repeat(64)}`, size: bytes.length }, bytes, 'test');
    };
    for (const good of ['libz.so.1', '@rpath/libgreet.1.dylib', '@loader_path/Frameworks/Greet.framework/Versions/A/Greet', '/usr/lib/libSystem.B.dylib']) expect(config(good)).not.toThrow();
    for (const bad of ['@rpath/../../etc/x.dylib', '@rpath/$(id).dylib', 'lib/libz.dylib', '/Users/John Smith/libz.dylib']) expect(config(bad)).toThrow(/is neither a SONAME nor a Mach-O install name/);
  });
});

describe('Windows triples', () => {
  it("Node's own Windows builds are MSVC's: the host triple there is MSVC, and a windows/amd64 platform is MSVC first", () => {
    expect(nodeToTriple('win32', 'x64')).toBe('x86_64-pc-windows-msvc');
    expect(nodeToTriple('win32', 'ia32')).toBe('i686-pc-windows-msvc');
    expect(platformToTriples({ os: 'windows', architecture: 'amd64' })).toEqual(['x86_64-pc-windows-msvc', 'x86_64-pc-windows-gnu']);
  });
});

import { OcipkgError } from '../../errors.js';
import { cString, Fields, type ByteRange, type ObjectFormat, type ObjectInfo, type ObjectType, type WindowsAbi } from './range.js';

const IMAGE_FILE_DLL = 0x2000;
const PE32_PLUS = 0x20b;
const COFF_SYMBOL = 18;
const IMAGE_SYM_CLASS_EXTERNAL = 2;
/** Bounds on what a hostile file can make us read: far above any real DLL's imports and exports. */
const MAX_IMPORTED_DLLS = 4096;
const MAX_NAMES = 1 << 20;
const MAX_NAME = 1024;

/** An MZ executable, which inspectPe expects to carry a PE header. */
export function isPe(head: Buffer): boolean {
  return head.length >= 64 && head.toString('latin1', 0, 2) === 'MZ';
}

function coffArchitecture(machine: number): string | undefined {
  switch (machine) {
    case 0x8664:
      return 'amd64';
    case 0x14c:
      return '386';
    case 0xaa64:
    case 0xa641: // ARM64EC
      return 'arm64';
    case 0x1c4: // ARMNT (Thumb-2)
      return 'arm';
    default:
      return undefined;
  }
}

function windowsObject(where: string, format: ObjectFormat, architecture: string, type: ObjectType): ObjectInfo {
  return { where, format, architecture, os: 'windows', bits: architecture === 'amd64' || architecture === 'arm64' ? 64 : 32, endian: 'little', type };
}

/**
 * What a symbol's spelling says: Itanium C++ mangling (`_Z...`, `__Z...` on 32-bit x86, where C
 * names get a leading underscore) is GCC's and clang's for GNU targets, `?...` is MSVC's. C names
 * say nothing. An MSVC build cannot link the Itanium ones: that is the one hard incompatibility
 * between the two Windows ABIs (C functions of a MinGW DLL link from MSVC through its import library).
 */
function symbolAbi(name: string): WindowsAbi | undefined {
  const bare = name.startsWith('__imp_') ? name.slice(6) : name;
  if (/^_{1,2}Z/.test(bare)) return 'gnu';
  if (bare.startsWith('?')) return 'msvc';
  return undefined;
}

function noteSymbol(info: ObjectInfo, name: string): void {
  const abi = symbolAbi(name);
  if (abi === undefined) return;
  if (abi === 'gnu') info.itaniumSymbol ??= name;
  info.abi ??= abi;
}

/**
 * The DLLs a PE image imports that tell its toolchain: MinGW's runtime (GCC's, libstdc++, winpthreads,
 * and msvcrt.dll, which MSVC stopped linking in 2015) or MSVC's (vcruntime, msvcp).
 */
function dllAbi(dll: string): WindowsAbi | undefined {
  if (/^(libgcc_s|libstdc\+\+|libwinpthread|libgfortran|libssp|libgomp)[-_.]/i.test(dll) || /^msvcrt\.dll$/i.test(dll)) return 'gnu';
  if (/^(vcruntime|msvcp)\d/i.test(dll)) return 'msvc';
  return undefined;
}

interface Section {
  name: string;
  virtualAddress: number;
  virtualSize: number;
  rawSize: number;
  rawOffset: number;
}

async function sections(range: ByteRange, offset: number, count: number): Promise<Section[]> {
  return range.table(offset, Math.min(count, 96), 40, true, (t, o) => ({
    name: cString(t.buf.subarray(o, o + 8), 0),
    virtualSize: t.u32(o + 8),
    virtualAddress: t.u32(o + 12),
    rawSize: t.u32(o + 16),
    rawOffset: t.u32(o + 20),
  }));
}

/** A NUL-terminated string at a file offset, read in one bounded piece. */
async function stringAt(range: ByteRange, offset: number): Promise<string> {
  if (offset < 0 || offset >= range.size) throw new OcipkgError('EINPUT', `${range.where}: name outside the file`);
  return cString(await range.read(offset, Math.min(MAX_NAME, range.size - offset)), 0);
}

export async function inspectPe(range: ByteRange): Promise<ObjectInfo> {
  const lfanew = (await range.read(0x3c, 4)).readUInt32LE(0);
  const header = await range.read(lfanew, 24);
  if (header.toString('latin1', 0, 4) !== 'PE\0\0') throw new OcipkgError('EINPUT', `${range.where}: MZ file without a PE header`);
  const machine = header.readUInt16LE(4);
  const architecture = coffArchitecture(machine);
  if (!architecture) throw new OcipkgError('EINPUT', `${range.where}: PE machine type 0x${machine.toString(16)} is not supported`);
  const dll = (header.readUInt16LE(22) & IMAGE_FILE_DLL) !== 0;
  const info = windowsObject(range.where, 'pe', architecture, dll ? 'shared' : 'executable');

  const optionalSize = header.readUInt16LE(20);
  if (optionalSize < 96) return info;
  const optional = new Fields(await range.read(lfanew + 24, optionalSize), true);
  const directories = optional.u16(0) === PE32_PLUS ? 112 : 96;
  const table = await sections(range, lfanew + 24 + optionalSize, header.readUInt16LE(6));
  const fileOffset = (rva: number): number => {
    const s = table.find((t) => rva >= t.virtualAddress && rva < t.virtualAddress + Math.max(t.virtualSize, t.rawSize));
    if (!s) throw new OcipkgError('EINPUT', `${range.where}: address 0x${rva.toString(16)} is in no section`);
    return rva - s.virtualAddress + s.rawOffset;
  };
  const directory = (i: number): { rva: number; size: number } | undefined => {
    const at = directories + i * 8;
    if (i >= optional.u32(directories - 4) || at + 8 > optionalSize) return undefined;
    const rva = optional.u32(at);
    return rva === 0 ? undefined : { rva, size: optional.u32(at + 4) };
  };

  const exports = directory(0);
  if (exports) {
    const dir = new Fields(await range.read(fileOffset(exports.rva), 40), true);
    const count = Math.min(dir.u32(24), MAX_NAMES);
    const names = await range.table(fileOffset(dir.u32(32)), count, 4, true, (t, o) => t.u32(o));
    // One C++ export is enough to tell; the first characters of each name say whether it is one.
    for (const rva of names) {
      const at = fileOffset(rva);
      const start = (await range.read(at, Math.min(3, range.size - at))).toString('latin1');
      if (symbolAbi(start) === undefined) continue;
      noteSymbol(info, await stringAt(range, at));
      break;
    }
  }
  const imports = directory(1);
  if (imports) {
    const dlls: string[] = [];
    for (let at = fileOffset(imports.rva); dlls.length < MAX_IMPORTED_DLLS; at += 20) {
      const entry = new Fields(await range.read(at, 20), true);
      const nameRva = entry.u32(12);
      if (nameRva === 0) break;
      dlls.push(await stringAt(range, fileOffset(nameRva)));
    }
    info.imports = dlls;
    for (const name of dlls) info.abi ??= dllAbi(name);
  }
  return info;
}

/**
 * A COFF object as found in `.lib` and `.a` files: a plain object (machine first), a /bigobj
 * object, or a short import object of an import library (both start 0x0000 0xFFFF, machine at
 * offset 6). Import libraries come in two shapes, both recognised by content: MSVC's (and
 * llvm-lib's, lld-link's /implib) short import objects, each naming its symbol and DLL, and the
 * long form GNU ld's --out-implib and dlltool write for MinGW (`libfoo.dll.a`): plain objects
 * whose sections are `.idata$N`, the DLL name in the `.idata$7` of one of them.
 */
export async function inspectCoff(range: ByteRange, head: Buffer): Promise<ObjectInfo | undefined> {
  if (head.length < 20) return undefined;
  if (head.readUInt16LE(0) === 0 && head.readUInt16LE(2) === 0xffff) {
    const architecture = coffArchitecture(head.readUInt16LE(6));
    if (!architecture) return undefined;
    if (head.readUInt16LE(4) !== 0) return windowsObject(range.where, 'coff', architecture, 'relocatable'); // /bigobj
    const info = windowsObject(range.where, 'coff', architecture, 'import');
    const names = await range.read(20, Math.min(range.size - 20, 2 * MAX_NAME));
    const symbol = cString(names, 0);
    info.importsFrom = cString(names, symbol.length + 1);
    noteSymbol(info, symbol);
    return info;
  }
  const architecture = coffArchitecture(head.readUInt16LE(0));
  // An optional header would make it an image, not an object; a zero size rules out most non-COFF data.
  if (!architecture || head.readUInt16LE(16) !== 0) return undefined;
  const info = windowsObject(range.where, 'coff', architecture, 'relocatable');
  const table = await sections(range, 20, head.readUInt16LE(2));
  for (const s of table) {
    // Names over 8 bytes (`.rdata$zzz`) are `/<offset>` into the string table after the symbols.
    if (/^\/\d+$/.test(s.name)) s.name = await stringAt(range, head.readUInt32LE(8) + head.readUInt32LE(12) * COFF_SYMBOL + Number(s.name.slice(1))).catch(() => s.name);
    if (s.name.startsWith('.idata$')) info.type = 'import';
    // GNU ld and dlltool write `.idata$7` (the DLL name, or a pointer to it); MSVC's import objects are short ones.
    if (s.name === '.idata$7') info.abi = 'gnu';
    if (s.name === '.idata$7' && s.rawSize > 4 && s.rawSize <= MAX_NAME) {
      const name = cString(await range.read(s.rawOffset, s.rawSize), 0);
      if (/\.(dll|exe)$/i.test(name)) info.importsFrom = name;
    }
    // GCC's identification string ("GCC: (GNU) 12-win32").
    if (s.name === '.rdata$zzz') info.abi ??= 'gnu';
  }
  await noteCoffSymbols(range, head, info);
  return info;
}

/** The external symbols a COFF object defines, for the C++ mangling they show. */
async function noteCoffSymbols(range: ByteRange, head: Buffer, info: ObjectInfo): Promise<void> {
  const offset = head.readUInt32LE(8);
  const count = Math.min(head.readUInt32LE(12), MAX_NAMES);
  if (offset === 0 || count === 0 || offset + count * COFF_SYMBOL > range.size) return;
  const symbols = await range.read(offset, count * COFF_SYMBOL);
  const stringsAt = offset + count * COFF_SYMBOL;
  const strings = stringsAt + 4 <= range.size ? await range.read(stringsAt, Math.min(range.size - stringsAt, (await range.read(stringsAt, 4)).readUInt32LE(0))) : Buffer.alloc(0);
  for (let i = 0; i < count; i += 1 + symbols[i * COFF_SYMBOL + 17]!) {
    const o = i * COFF_SYMBOL;
    if (symbols[o + 16] !== IMAGE_SYM_CLASS_EXTERNAL || symbols.readInt16LE(o + 12) <= 0) continue;
    const name = symbols.readUInt32LE(o) === 0 ? cString(strings, symbols.readUInt32LE(o + 4)) : cString(symbols.subarray(o, o + 8), 0);
    noteSymbol(info, name);
    if (symbolAbi(name) !== undefined) return;
  }
}

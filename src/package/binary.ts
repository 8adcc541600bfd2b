import { open, type FileHandle } from 'node:fs/promises';
import { OcipkgError } from '../errors.js';
import { platformToTriples } from '../triple.js';

/**
 * Just enough of ELF, Mach-O (thin and universal), PE/COFF and `ar` to tell what a library was built
 * for: architecture, OS, word size, byte order, the SONAME of an ELF shared object, and whether the
 * objects of an ELF static archive can be linked into a shared object (a Node addon is one).
 *
 * Everything is read with positional reads from an open file: an archive member or a universal
 * slice is a byte range of the file, never copied out whole.
 */

export type ObjectFormat = 'elf' | 'macho' | 'pe' | 'coff';
export type ObjectType = 'relocatable' | 'shared' | 'executable' | 'import' | 'other';

export interface ObjectInfo {
  /** Where it came from: the file, `file(member.o)` inside an archive, `file[arm64]` for a universal slice. */
  where: string;
  format: ObjectFormat;
  /** OCI / Go architecture name: amd64, arm64, arm, 386, ppc64le, s390x, riscv64, loong64, ... */
  architecture: string;
  /** linux, darwin, windows or freebsd (ELF objects that do not say otherwise are taken as linux). */
  os: string;
  bits: 32 | 64;
  endian: 'little' | 'big';
  type: ObjectType;
  /** ELF DT_SONAME, or the Mach-O install name (LC_ID_DYLIB) of a dylib. */
  soname?: string;
  /** Only when the binary shows it: a musl interpreter or libc in DT_NEEDED, or a glibc one. */
  libc?: 'gnu' | 'musl';
  /** ELF ARM: built for the hard-float ABI (EF_ARM_ABI_FLOAT_HARD). */
  hardFloat?: boolean;
}

/** A byte range of an open file: the whole file, an archive member or a universal-binary slice. */
class ByteRange {
  constructor(
    private readonly fh: FileHandle,
    readonly base: number,
    readonly size: number,
    readonly where: string,
  ) {}

  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new OcipkgError('EINPUT', `${this.where}: truncated or malformed binary (read of ${length} bytes at ${offset} past its ${this.size} bytes)`);
    }
    const buf = Buffer.alloc(length);
    const { bytesRead } = await this.fh.read(buf, 0, length, this.base + offset);
    if (bytesRead !== length) throw new OcipkgError('EINPUT', `${this.where}: file changed or truncated while reading`);
    return buf;
  }

  /** Up to `length` bytes from the start, fewer if the range is shorter. */
  head(length: number): Promise<Buffer> {
    return this.read(0, Math.min(length, this.size));
  }

  sub(offset: number, size: number, where: string): ByteRange {
    if (offset < 0 || size < 0 || offset + size > this.size) {
      throw new OcipkgError('EINPUT', `${where}: extends past the end of ${this.where}`);
    }
    return new ByteRange(this.fh, this.base + offset, size, where);
  }
}

/** Endian-aware integer reads on a buffer; 64-bit values are returned as numbers (file offsets fit). */
class Fields {
  constructor(
    readonly buf: Buffer,
    readonly little: boolean,
  ) {}
  u8(off: number): number {
    return this.buf.readUInt8(off);
  }
  u16(off: number): number {
    return this.little ? this.buf.readUInt16LE(off) : this.buf.readUInt16BE(off);
  }
  u32(off: number): number {
    return this.little ? this.buf.readUInt32LE(off) : this.buf.readUInt32BE(off);
  }
  u64(off: number): number {
    return Number(this.little ? this.buf.readBigUInt64LE(off) : this.buf.readBigUInt64BE(off));
  }
  /** A 32- or 64-bit address/offset field depending on the ELF class. */
  word(off: number, bits: 32 | 64): number {
    return bits === 64 ? this.u64(off) : this.u32(off);
  }
}

function cString(buf: Buffer, off: number): string {
  const end = buf.indexOf(0, off);
  return buf.toString('utf8', off, end < 0 ? buf.length : end);
}

// ---------------------------------------------------------------------------------------------- ELF

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
const ET_REL = 1;
const ET_EXEC = 2;
const ET_DYN = 3;
const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_SONAME = 14;
const DT_FLAGS_1 = 0x6ffffffb;
const DF_1_PIE = 0x08000000;
const ELFOSABI_FREEBSD = 9;
const EF_ARM_ABI_FLOAT_HARD = 0x400;

/** e_machine -> OCI architecture; the 64-bit-only ones only make sense with ELFCLASS64. */
function elfArchitecture(machine: number, bits: 32 | 64, little: boolean): string | undefined {
  switch (machine) {
    case 62:
      return 'amd64';
    case 3:
      return '386';
    case 183:
      return 'arm64';
    case 40:
      return 'arm';
    case 21:
      return little ? 'ppc64le' : 'ppc64';
    case 22:
      return bits === 64 ? 's390x' : 's390';
    case 243:
      return bits === 64 ? 'riscv64' : 'riscv32';
    case 258:
      return 'loong64';
    case 8:
      // EM_MIPS covers both widths; the ELF class tells mips64 from mips.
      if (bits === 64) return little ? 'mips64le' : 'mips64';
      return little ? 'mipsle' : 'mips';
    default:
      return undefined;
  }
}

interface ElfHeader {
  f: Fields;
  bits: 32 | 64;
  type: number;
  machine: number;
  osabi: number;
  flags: number;
  phoff: number;
  phentsize: number;
  phnum: number;
  shoff: number;
  shentsize: number;
  shnum: number;
}

async function elfHeader(range: ByteRange): Promise<ElfHeader> {
  const ident = await range.read(0, 16);
  const cls = ident[4];
  const data = ident[5];
  if ((cls !== 1 && cls !== 2) || (data !== 1 && data !== 2)) {
    throw new OcipkgError('EINPUT', `${range.where}: ELF file with an unknown class or byte order`);
  }
  const bits = cls === 2 ? 64 : 32;
  const f = new Fields(await range.read(0, bits === 64 ? 64 : 52), data === 1);
  return {
    f,
    bits,
    type: f.u16(16),
    machine: f.u16(18),
    osabi: ident[7]!,
    flags: f.u32(bits === 64 ? 48 : 36),
    phoff: f.word(bits === 64 ? 32 : 28, bits),
    phentsize: f.u16(bits === 64 ? 54 : 42),
    phnum: f.u16(bits === 64 ? 56 : 44),
    shoff: f.word(bits === 64 ? 40 : 32, bits),
    shentsize: f.u16(bits === 64 ? 58 : 46),
    shnum: f.u16(bits === 64 ? 60 : 48),
  };
}

interface Segment {
  type: number;
  offset: number;
  vaddr: number;
  filesz: number;
}

async function elfSegments(range: ByteRange, h: ElfHeader): Promise<Segment[]> {
  if (h.phnum === 0) return [];
  const table = new Fields(await range.read(h.phoff, h.phnum * h.phentsize), h.f.little);
  const segments: Segment[] = [];
  for (let i = 0; i < h.phnum; i++) {
    const o = i * h.phentsize;
    segments.push(
      h.bits === 64
        ? { type: table.u32(o), offset: table.u64(o + 8), vaddr: table.u64(o + 16), filesz: table.u64(o + 32) }
        : { type: table.u32(o), offset: table.u32(o + 4), vaddr: table.u32(o + 8), filesz: table.u32(o + 16) },
    );
  }
  return segments;
}

/** What the dynamic segment says: SONAME, DT_NEEDED and whether it is a PIE executable. */
async function elfDynamic(range: ByteRange, h: ElfHeader, segments: Segment[]): Promise<{ soname?: string; needed: string[]; pie: boolean }> {
  const dyn = segments.find((s) => s.type === PT_DYNAMIC);
  if (!dyn) return { needed: [], pie: false };
  const entry = h.bits === 64 ? 16 : 8;
  const table = new Fields(await range.read(dyn.offset, dyn.filesz), h.f.little);
  let strtab: number | undefined;
  let soname: number | undefined;
  let flags1 = 0;
  const needed: number[] = [];
  for (let o = 0; o + entry <= dyn.filesz; o += entry) {
    const tag = table.word(o, h.bits);
    const val = table.word(o + entry / 2, h.bits);
    if (tag === DT_NULL) break;
    if (tag === DT_STRTAB) strtab = val;
    else if (tag === DT_SONAME) soname = val;
    else if (tag === DT_NEEDED) needed.push(val);
    else if (tag === DT_FLAGS_1) flags1 = val;
  }
  const pie = (flags1 & DF_1_PIE) !== 0;
  if (strtab === undefined) return { needed: [], pie };
  // DT_STRTAB is an address: map it to a file offset through the PT_LOAD segment that holds it
  // (section headers may be stripped; program headers never are).
  const load = segments.find((s) => s.type === PT_LOAD && strtab! >= s.vaddr && strtab! < s.vaddr + s.filesz);
  if (!load) return { needed: [], pie };
  const strOffset = load.offset + (strtab - load.vaddr);
  const strings = await range.read(strOffset, Math.min(load.offset + load.filesz - strOffset, range.size - strOffset));
  return {
    ...(soname !== undefined && { soname: cString(strings, soname) }),
    needed: needed.map((n) => cString(strings, n)),
    pie,
  };
}

/**
 * musl shows in a PT_INTERP of `ld-musl-*` (executables) or a DT_NEEDED of musl's `libc.so` (no
 * version suffix, unlike glibc's `libc.so.6`) or Alpine's `libc.musl-*`.
 */
function elfLibc(interp: string | undefined, needed: string[]): 'gnu' | 'musl' | undefined {
  if (interp?.includes('ld-musl') || needed.some((n) => n === 'libc.so' || n.startsWith('libc.musl-') || n.startsWith('ld-musl'))) return 'musl';
  if ((interp?.startsWith('/lib') && interp.includes('ld-linux')) || needed.some((n) => n === 'libc.so.6')) return 'gnu';
  return undefined;
}

async function inspectElf(range: ByteRange): Promise<ObjectInfo> {
  const h = await elfHeader(range);
  const architecture = elfArchitecture(h.machine, h.bits, h.f.little);
  if (!architecture) throw new OcipkgError('EINPUT', `${range.where}: ELF machine type ${h.machine} is not supported`);
  const info: ObjectInfo = {
    where: range.where,
    format: 'elf',
    architecture,
    os: h.osabi === ELFOSABI_FREEBSD ? 'freebsd' : 'linux',
    bits: h.bits,
    endian: h.f.little ? 'little' : 'big',
    type: h.type === ET_REL ? 'relocatable' : h.type === ET_EXEC ? 'executable' : h.type === ET_DYN ? 'shared' : 'other',
    ...(architecture === 'arm' && { hardFloat: (h.flags & EF_ARM_ABI_FLOAT_HARD) !== 0 }),
  };
  if (h.type === ET_EXEC || h.type === ET_DYN) {
    const segments = await elfSegments(range, h);
    const interpSeg = segments.find((s) => s.type === PT_INTERP);
    const interp = interpSeg ? cString(await range.read(interpSeg.offset, interpSeg.filesz), 0) : undefined;
    const dynamic = await elfDynamic(range, h, segments);
    if (dynamic.pie) info.type = 'executable';
    if (dynamic.soname !== undefined) info.soname = dynamic.soname;
    const libc = elfLibc(interp, dynamic.needed);
    if (libc) info.libc = libc;
  }
  return info;
}

// ------------------------------------------------------------------------------------------ Mach-O

const MH_MAGIC = 0xfeedface;
const MH_MAGIC_64 = 0xfeedfacf;
const MH_CIGAM = 0xcefaedfe;
const MH_CIGAM_64 = 0xcffaedfe;
const FAT_MAGIC = 0xcafebabe;
const FAT_MAGIC_64 = 0xcafebabf;
const MH_OBJECT = 1;
const MH_EXECUTE = 2;
const MH_DYLIB = 6;
const MH_BUNDLE = 8;
const LC_ID_DYLIB = 0xd;
const CPU_ARCH_ABI64 = 0x01000000;

function machoArchitecture(cputype: number): string | undefined {
  switch (cputype) {
    case 7:
      return '386';
    case 7 | CPU_ARCH_ABI64:
      return 'amd64';
    case 12:
      return 'arm';
    case 12 | CPU_ARCH_ABI64:
      return 'arm64';
    case 18 | CPU_ARCH_ABI64:
      return 'ppc64';
    default:
      return undefined;
  }
}

async function inspectMachO(range: ByteRange): Promise<ObjectInfo> {
  const magic = (await range.read(0, 4)).readUInt32LE(0);
  const little = magic === MH_MAGIC || magic === MH_MAGIC_64;
  const bits = magic === MH_MAGIC_64 || magic === MH_CIGAM_64 ? 64 : 32;
  const headerSize = bits === 64 ? 32 : 28;
  const f = new Fields(await range.read(0, headerSize), little);
  const cputype = f.u32(4);
  const architecture = machoArchitecture(cputype);
  if (!architecture) throw new OcipkgError('EINPUT', `${range.where}: Mach-O CPU type ${cputype} is not supported`);
  const filetype = f.u32(12);
  const info: ObjectInfo = {
    where: range.where,
    format: 'macho',
    architecture,
    os: 'darwin',
    bits,
    endian: little ? 'little' : 'big',
    type: filetype === MH_OBJECT ? 'relocatable' : filetype === MH_DYLIB || filetype === MH_BUNDLE ? 'shared' : filetype === MH_EXECUTE ? 'executable' : 'other',
  };
  if (filetype === MH_DYLIB) {
    const ncmds = f.u32(16);
    const cmds = new Fields(await range.read(headerSize, f.u32(20)), little);
    for (let i = 0, o = 0; i < ncmds && o + 8 <= cmds.buf.length; i++) {
      const cmd = cmds.u32(o);
      const size = cmds.u32(o + 4);
      if (cmd === LC_ID_DYLIB) {
        info.soname = cString(cmds.buf.subarray(o, o + size), cmds.u32(o + 8));
        break;
      }
      if (size < 8) break;
      o += size;
    }
  }
  return info;
}

/** The slices of a universal binary; each may itself be a thin Mach-O or an `ar` archive. */
async function fatSlices(range: ByteRange): Promise<ByteRange[]> {
  const head = new Fields(await range.read(0, 8), false);
  const wide = head.u32(0) === FAT_MAGIC_64;
  const count = head.u32(4);
  const entry = wide ? 32 : 20;
  const table = new Fields(await range.read(8, count * entry), false);
  const slices: ByteRange[] = [];
  for (let i = 0; i < count; i++) {
    const o = i * entry;
    const cputype = table.u32(o);
    const offset = wide ? table.u64(o + 8) : table.u32(o + 8);
    const size = wide ? table.u64(o + 16) : table.u32(o + 12);
    slices.push(range.sub(offset, size, `${range.where}[${machoArchitecture(cputype) ?? cputype}]`));
  }
  return slices;
}

// ---------------------------------------------------------------------------------------- PE/COFF

const IMAGE_FILE_DLL = 0x2000;

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

async function inspectPe(range: ByteRange): Promise<ObjectInfo> {
  const lfanew = (await range.read(0x3c, 4)).readUInt32LE(0);
  const header = await range.read(lfanew, 24);
  if (header.toString('latin1', 0, 4) !== 'PE\0\0') throw new OcipkgError('EINPUT', `${range.where}: MZ file without a PE header`);
  const machine = header.readUInt16LE(4);
  const architecture = coffArchitecture(machine);
  if (!architecture) throw new OcipkgError('EINPUT', `${range.where}: PE machine type 0x${machine.toString(16)} is not supported`);
  const dll = (header.readUInt16LE(22) & IMAGE_FILE_DLL) !== 0;
  return windowsObject(range.where, 'pe', architecture, dll ? 'shared' : 'executable');
}

/**
 * A COFF object as found in MSVC `.lib` files: a plain object (machine first), a /bigobj object, or
 * a short import object of an import library (both start 0x0000 0xFFFF, machine at offset 6).
 */
function coffObject(where: string, head: Buffer): ObjectInfo | undefined {
  if (head.length < 20) return undefined;
  if (head.readUInt16LE(0) === 0 && head.readUInt16LE(2) === 0xffff) {
    const architecture = coffArchitecture(head.readUInt16LE(6));
    if (!architecture) return undefined;
    return windowsObject(where, 'coff', architecture, head.readUInt16LE(4) === 0 ? 'import' : 'relocatable');
  }
  const architecture = coffArchitecture(head.readUInt16LE(0));
  // An optional header would make it an image, not an object; a zero size rules out most non-COFF data.
  if (!architecture || head.readUInt16LE(16) !== 0) return undefined;
  return windowsObject(where, 'coff', architecture, 'relocatable');
}

// ---------------------------------------------------------------------------------------------- ar

const AR_MAGIC = '!<arch>\n';
const AR_HEADER = 60;

interface ArchiveMember {
  name: string;
  range: ByteRange;
}

/**
 * Members of a GNU / System V or BSD `ar` archive (static libraries everywhere, MSVC `.lib` too),
 * without the symbol tables (`/`, `/SYM64/`, `__.SYMDEF*`) and the GNU long-name table (`//`).
 */
async function archiveMembers(range: ByteRange): Promise<ArchiveMember[]> {
  const members: ArchiveMember[] = [];
  let longNames: Buffer | undefined;
  let off = AR_MAGIC.length;
  while (off + AR_HEADER <= range.size) {
    const header = (await range.read(off, AR_HEADER)).toString('latin1');
    if (header.slice(58, 60) !== '`\n') throw new OcipkgError('EINPUT', `${range.where}: malformed ar member header at offset ${off}`);
    const rawName = header.slice(0, 16).trimEnd();
    const size = Number.parseInt(header.slice(48, 58).trim(), 10);
    if (!Number.isSafeInteger(size) || size < 0) throw new OcipkgError('EINPUT', `${range.where}: malformed ar member size at offset ${off}`);
    let dataOff = off + AR_HEADER;
    let dataSize = size;
    let name: string;
    if (rawName.startsWith('#1/')) {
      // BSD: the name follows the header and counts towards the member size.
      const length = Number.parseInt(rawName.slice(3), 10);
      name = cString(await range.read(dataOff, length), 0);
      dataOff += length;
      dataSize -= length;
    } else if (rawName === '//') {
      longNames = await range.read(dataOff, size);
      name = rawName;
    } else if (/^\/\d+$/.test(rawName) && longNames) {
      // GNU: "/<offset>" into the long-name table, names end with "/\n".
      const start = Number.parseInt(rawName.slice(1), 10);
      const end = longNames.indexOf('\n', start);
      name = longNames.toString('utf8', start, end < 0 ? longNames.length : end).replace(/\/$/, '');
    } else {
      name = rawName === '/' || rawName === '/SYM64/' ? rawName : rawName.replace(/\/$/, '');
    }
    const isIndex = name === '/' || name === '//' || name === '/SYM64/' || name.startsWith('__.SYMDEF');
    if (!isIndex) members.push({ name, range: range.sub(dataOff, dataSize, `${range.where}(${name})`) });
    off += AR_HEADER + size + (size % 2);
  }
  return members;
}

// ------------------------------------------------------------------------------------- dispatch

type Kind = 'elf' | 'macho' | 'fat' | 'pe' | 'ar' | 'thin-ar' | undefined;

function sniff(head: Buffer): Kind {
  if (head.length >= 4 && head.subarray(0, 4).equals(ELF_MAGIC)) return 'elf';
  if (head.toString('latin1', 0, 8) === AR_MAGIC) return 'ar';
  if (head.toString('latin1', 0, 8) === '!<thin>\n') return 'thin-ar';
  if (head.length >= 4) {
    const le = head.readUInt32LE(0);
    if (le === MH_MAGIC || le === MH_MAGIC_64 || le === MH_CIGAM || le === MH_CIGAM_64) return 'macho';
    const be = head.readUInt32BE(0);
    // Java class files share 0xCAFEBABE; their next word (the class version) is far above any slice count.
    if ((be === FAT_MAGIC || be === FAT_MAGIC_64) && head.length >= 8 && head.readUInt32BE(4) < 32) return 'fat';
  }
  if (head.length >= 64 && head.toString('latin1', 0, 2) === 'MZ') return 'pe';
  return undefined;
}

async function inspectRange(range: ByteRange, inArchive: boolean): Promise<ObjectInfo[]> {
  const head = await range.head(64);
  switch (sniff(head)) {
    case 'elf':
      return [await inspectElf(range)];
    case 'macho':
      return [await inspectMachO(range)];
    case 'pe':
      return [await inspectPe(range)];
    case 'fat': {
      const slices = await fatSlices(range);
      return (await Promise.all(slices.map((s) => inspectRange(s, inArchive)))).flat();
    }
    case 'ar': {
      if (inArchive) return [];
      const out: ObjectInfo[] = [];
      for (const member of await archiveMembers(range)) out.push(...(await inspectRange(member.range, true)));
      return out;
    }
    case 'thin-ar':
      throw new OcipkgError('EINPUT', `${range.where}: thin archive (members are not inside it); repack it with "ar rc" without T`);
    default: {
      // Inside archives, anything that is not an object (LLVM bitcode, a text file) is not ours to judge.
      const coff = inArchive ? coffObject(range.where, head) : undefined;
      return coff ? [coff] : [];
    }
  }
}

async function withFile<T>(path: string, use: (range: ByteRange) => Promise<T>): Promise<T> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw new OcipkgError('EINPUT', `cannot open ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const { size } = await fh.stat();
    return await use(new ByteRange(fh, 0, size, path));
  } finally {
    await fh.close();
  }
}

/**
 * The objects in a binary file: one for a thin object or library, one per slice of a universal
 * binary, one per object member of an `ar` archive (members that are not objects are skipped).
 * A file that is not a binary at all is refused with EINPUT.
 */
export async function inspectFile(path: string): Promise<ObjectInfo[]> {
  return withFile(path, async (range) => {
    if (sniff(await range.head(64)) === undefined) throw new OcipkgError('EINPUT', `${path}: not an ELF, Mach-O, PE/COFF or ar file`);
    return inspectRange(range, false);
  });
}

/** The objects of a static library (`ar` archive, possibly inside a universal binary). */
export async function inspectArchive(path: string): Promise<ObjectInfo[]> {
  return withFile(path, async (range) => {
    const kind = sniff(await range.head(64));
    if (kind !== 'ar' && kind !== 'fat' && kind !== 'thin-ar') throw new OcipkgError('EINPUT', `${path}: not an ar archive`);
    return inspectRange(range, false);
  });
}

/**
 * The target triple an object was built for, or undefined when no known triple fits (soft-float
 * ARM, an architecture without a triple). ELF objects that do not show a libc are taken as glibc.
 */
export function tripleOf(info: ObjectInfo): string | undefined {
  if (info.architecture === 'arm' && info.os === 'linux' && !info.hardFloat) return undefined;
  const candidates = platformToTriples({ os: info.os, architecture: info.architecture });
  if (info.os !== 'linux') return candidates[0];
  const musl = info.libc === 'musl';
  return candidates.find((t) => t.includes('musl') === musl);
}

// --------------------------------------------------------------------------------------------- PIC

const SHT_RELA = 4;
const SHT_REL = 9;
const SHF_ALLOC = 0x2;
const STB_LOCAL = 0;
const STV_DEFAULT = 0;

/**
 * Relocation types `ld -shared` refuses, per machine: `always` whatever the symbol (absolute
 * addresses and local-exec TLS), `preemptible` only against a symbol that may bind outside the
 * shared object (global or weak, default visibility). That second group is what Debian's
 * archives trip over: they are built -fPIE, whose PC-relative references to their own global
 * functions and data are fine in an executable but not in a shared object, where such symbols can
 * be interposed. Checked against GNU ld on Debian's libzstd.a, libz.a, libsqlite3.a and liblz4.a
 * (test/binary.test.ts) for x86_64; the aarch64 list follows the same binutils rules, unverified.
 */
const NON_PIC: Record<number, { always: Set<number>; preemptible: Set<number> }> = {
  // EM_X86_64: R_X86_64_32, 32S, 16, 8, TPOFF32 / PC32, PC16, PC8, PC64
  62: { always: new Set([10, 11, 12, 14, 23]), preemptible: new Set([2, 13, 15, 24]) },
  // EM_AARCH64: ABS32, ABS16, MOVW_UABS_G0..G3(_NC), TLSLE_* / PREL32, PREL16, LD_PREL_LO19, ADR_PREL_LO21, ADR_PREL_PG_HI21(_NC)
  183: {
    always: new Set([258, 259, 263, 264, 265, 266, 267, 268, 269, ...Array.from({ length: 16 }, (_, i) => 547 + i)]),
    preemptible: new Set([261, 262, 273, 274, 275, 276]),
  },
};

interface Section {
  type: number;
  flags: number;
  offset: number;
  size: number;
  link: number;
  info: number;
  entsize: number;
}

async function elfSections(range: ByteRange, h: ElfHeader): Promise<Section[]> {
  if (h.shnum === 0) return [];
  const t = new Fields(await range.read(h.shoff, h.shnum * h.shentsize), h.f.little);
  const sections: Section[] = [];
  for (let i = 0; i < h.shnum; i++) {
    const o = i * h.shentsize;
    sections.push(
      h.bits === 64
        ? { type: t.u32(o + 4), flags: t.u64(o + 8), offset: t.u64(o + 24), size: t.u64(o + 32), link: t.u32(o + 40), info: t.u32(o + 44), entsize: t.u64(o + 56) }
        : { type: t.u32(o + 4), flags: t.u32(o + 8), offset: t.u32(o + 16), size: t.u32(o + 20), link: t.u32(o + 24), info: t.u32(o + 28), entsize: t.u32(o + 36) },
    );
  }
  return sections;
}

/** True when a relocatable ELF object has a relocation that `ld -shared` would refuse. */
async function hasNonPicRelocation(range: ByteRange): Promise<boolean> {
  const h = await elfHeader(range);
  const rules = NON_PIC[h.machine];
  if (h.type !== ET_REL || !rules) return false;
  const sections = await elfSections(range, h);
  const symbolTables = new Map<number, Fields>();
  for (const rel of sections) {
    if (rel.type !== SHT_RELA && rel.type !== SHT_REL) continue;
    // Relocations of non-allocated sections (debug info) never reach the loaded image.
    const target = sections[rel.info];
    if (!target || (target.flags & SHF_ALLOC) === 0) continue;
    const symtab = sections[rel.link];
    if (!symtab) continue;
    let symbols = symbolTables.get(rel.link);
    if (!symbols) {
      symbols = new Fields(await range.read(symtab.offset, symtab.size), h.f.little);
      symbolTables.set(rel.link, symbols);
    }
    const entsize = rel.entsize || (h.bits === 64 ? (rel.type === SHT_RELA ? 24 : 16) : rel.type === SHT_RELA ? 12 : 8);
    const symsize = h.bits === 64 ? 24 : 16;
    const relocs = new Fields(await range.read(rel.offset, rel.size), h.f.little);
    for (let o = 0; o + entsize <= rel.size; o += entsize) {
      let type: number;
      let sym: number;
      if (h.bits === 64) {
        const info = h.f.little ? relocs.buf.readBigUInt64LE(o + 8) : relocs.buf.readBigUInt64BE(o + 8);
        type = Number(info & 0xffffffffn);
        sym = Number(info >> 32n);
      } else {
        const info = relocs.u32(o + 4);
        type = info & 0xff;
        sym = info >>> 8;
      }
      if (rules.always.has(type)) return true;
      if (!rules.preemptible.has(type) || sym === 0) continue;
      const so = sym * symsize;
      if (so + symsize > symbols.buf.length) continue;
      const stInfo = symbols.u8(so + (h.bits === 64 ? 4 : 12));
      const stOther = symbols.u8(so + (h.bits === 64 ? 5 : 13));
      if (stInfo >> 4 !== STB_LOCAL && (stOther & 3) === STV_DEFAULT) return true;
    }
  }
  return false;
}

/**
 * The members of an ELF static archive that cannot be linked into a shared object (and so not into
 * a Node addon), as `archive(member.o)`. Empty for archives of other formats: the check is ELF only.
 */
export async function nonPicObjects(path: string): Promise<string[]> {
  return withFile(path, async (range) => {
    if (sniff(await range.head(8)) !== 'ar') throw new OcipkgError('EINPUT', `${path}: not an ar archive`);
    const bad: string[] = [];
    for (const member of await archiveMembers(range)) {
      if (sniff(await member.range.head(4)) === 'elf' && (await hasNonPicRelocation(member.range))) bad.push(member.name);
    }
    return bad;
  });
}

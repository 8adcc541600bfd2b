import { OcipkgError } from '../../errors.js';
import { cString, Fields, type ByteRange, type ObjectInfo } from './range.js';

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

export function isElf(head: Buffer): boolean {
  return head.length >= 4 && head.subarray(0, 4).equals(ELF_MAGIC);
}

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

/**
 * Where each field of a program header (segment) or section header sits in ELFCLASS32 and
 * ELFCLASS64: `word` fields (addresses, offsets, sizes) widen to 64 bits with the class, `u32`
 * fields stay 32 bits in both.
 */
type Layout = Record<string, readonly ['u32' | 'word', number, number]>;
type Entry<L extends Layout> = { [K in keyof L]: number };

const PHDR = { type: ['u32', 0, 0], offset: ['word', 4, 8], vaddr: ['word', 8, 16], filesz: ['word', 16, 32] } as const satisfies Layout;
const SHDR = {
  type: ['u32', 4, 4],
  flags: ['word', 8, 8],
  offset: ['word', 16, 24],
  size: ['word', 20, 32],
  link: ['u32', 24, 40],
  info: ['u32', 28, 44],
  entsize: ['word', 36, 56],
} as const satisfies Layout;

type Segment = Entry<typeof PHDR>;

function elfTable<L extends Layout>(range: ByteRange, h: ElfHeader, offset: number, count: number, entsize: number, layout: L): Promise<Entry<L>[]> {
  const fields = Object.entries(layout).map(([name, [kind, off32, off64]]) => ({ name, kind, off: h.bits === 64 ? off64 : off32 }));
  return range.table(offset, count, entsize, h.f.little, (t, o) => {
    const entry: Record<string, number> = {};
    for (const f of fields) entry[f.name] = f.kind === 'word' ? t.word(o + f.off, h.bits) : t.u32(o + f.off);
    return entry as Entry<L>;
  });
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

export async function inspectElf(range: ByteRange): Promise<ObjectInfo> {
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
    const segments = await elfTable(range, h, h.phoff, h.phnum, h.phentsize, PHDR);
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

/** True when a relocatable ELF object has a relocation that `ld -shared` would refuse. */
export async function hasNonPicRelocation(range: ByteRange): Promise<boolean> {
  const h = await elfHeader(range);
  const rules = NON_PIC[h.machine];
  if (h.type !== ET_REL || !rules) return false;
  const sections = await elfTable(range, h, h.shoff, h.shnum, h.shentsize, SHDR);
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

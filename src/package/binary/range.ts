import { open, type FileHandle } from 'node:fs/promises';
import { OcipkgError } from '../../errors.js';

export type ObjectFormat = 'elf' | 'macho' | 'pe' | 'coff' | 'tbd';
export type ObjectType = 'relocatable' | 'shared' | 'executable' | 'import' | 'other';
/** The two Windows toolchains: MinGW (GCC or clang for `*-windows-gnu`, Itanium C++) and MSVC. */
export type WindowsAbi = 'gnu' | 'msvc';

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
  /** PE/COFF, only when the binary shows it (runtime DLLs, C++ mangling, GNU-only sections). */
  abi?: WindowsAbi;
  /** PE/COFF: an Itanium-mangled C++ symbol it defines, exports or imports (what MSVC cannot link). */
  itaniumSymbol?: string;
  /** A member of an import library: the DLL it imports from (`greet.dll`), when it names it. */
  importsFrom?: string;
  /** PE images: the DLLs it imports from. */
  imports?: string[];
  /** From one slice of a universal (fat) binary. */
  universal?: boolean;
}

/**
 * A byte range of an open file: the whole file, an archive member or a universal-binary slice.
 * Everything is read with positional reads from the open file, so a member or a slice is never
 * copied out whole.
 */
export class ByteRange {
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

  /** A table of `count` fixed-size entries read in one go; `entry` decodes the one at offset `o`. */
  async table<T>(offset: number, count: number, entsize: number, little: boolean, entry: (t: Fields, o: number) => T): Promise<T[]> {
    if (count === 0) return [];
    const t = new Fields(await this.read(offset, count * entsize), little);
    return Array.from({ length: count }, (_, i) => entry(t, i * entsize));
  }
}

/** Endian-aware integer reads on a buffer; 64-bit values are returned as numbers (file offsets fit). */
export class Fields {
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

export function cString(buf: Buffer, off: number): string {
  const end = buf.indexOf(0, off);
  return buf.toString('utf8', off, end < 0 ? buf.length : end);
}

export async function withFile<T>(path: string, use: (range: ByteRange) => Promise<T>): Promise<T> {
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

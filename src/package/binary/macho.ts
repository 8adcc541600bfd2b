import { OcipkgError } from '../../errors.js';
import { cString, Fields, type ByteRange, type ObjectInfo } from './range.js';

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

export function isMachO(head: Buffer): boolean {
  if (head.length < 4) return false;
  const le = head.readUInt32LE(0);
  return le === MH_MAGIC || le === MH_MAGIC_64 || le === MH_CIGAM || le === MH_CIGAM_64;
}

export function isFat(head: Buffer): boolean {
  if (head.length < 4) return false;
  const be = head.readUInt32BE(0);
  // Java class files share 0xCAFEBABE; their next word (the class version) is far above any slice count.
  return (be === FAT_MAGIC || be === FAT_MAGIC_64) && head.length >= 8 && head.readUInt32BE(4) < 32;
}

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

export async function inspectMachO(range: ByteRange): Promise<ObjectInfo> {
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

export interface FatSlice {
  /** OCI architecture of the slice, from the fat header; undefined for CPU types ocipkg does not know. */
  architecture: string | undefined;
  range: ByteRange;
}

/** The slices of a universal binary; each may itself be a thin Mach-O or an `ar` archive. */
export async function fatSlices(range: ByteRange): Promise<FatSlice[]> {
  const head = new Fields(await range.read(0, 8), false);
  const wide = head.u32(0) === FAT_MAGIC_64;
  return range.table(8, head.u32(4), wide ? 32 : 20, false, (t, o) => {
    const cputype = t.u32(o);
    const architecture = machoArchitecture(cputype);
    const offset = wide ? t.u64(o + 8) : t.u32(o + 8);
    const size = wide ? t.u64(o + 16) : t.u32(o + 12);
    return { architecture, range: range.sub(offset, size, `${range.where}[${architecture ?? cputype}]`) };
  });
}

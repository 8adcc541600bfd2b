import { OcipkgError } from '../../errors.js';
import type { ByteRange, ObjectFormat, ObjectInfo, ObjectType } from './range.js';

const IMAGE_FILE_DLL = 0x2000;

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

export async function inspectPe(range: ByteRange): Promise<ObjectInfo> {
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
export function coffObject(where: string, head: Buffer): ObjectInfo | undefined {
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

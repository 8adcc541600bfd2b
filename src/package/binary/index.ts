import { OcipkgError } from '../../errors.js';
import { platformToTriples } from '../../triple.js';
import { archiveMembers, isArchive, isThinArchive } from './ar.js';
import { hasNonPicRelocation, inspectElf, isElf } from './elf.js';
import { fatSlices, inspectMachO, isFat, isMachO } from './macho.js';
import { inspectCoff, inspectPe, isPe } from './pe.js';
import { withFile, type ByteRange, type ObjectInfo } from './range.js';
import { inspectTbd, isTbd } from './tbd.js';

/**
 * Just enough of ELF, Mach-O (thin and universal, and `.tbd` stubs), PE/COFF and `ar` to tell what
 * a library was built for: architecture, OS, word size, byte order, the SONAME of an ELF shared
 * object or the install name of a dylib, whether an archive is a Windows import library (and of
 * which DLL), which Windows toolchain built a PE/COFF file, and whether the objects of an ELF
 * static archive can be linked into a shared object (a Node addon is one).
 */

export type { ObjectFormat, ObjectInfo, ObjectType, WindowsAbi } from './range.js';

export interface InspectOptions {
  /** Of a universal (fat) binary, only the slice for this OCI architecture (`arm64`), as a linker picks it. */
  architecture?: string;
}

type Kind = 'elf' | 'macho' | 'fat' | 'pe' | 'ar' | 'thin-ar' | 'tbd' | undefined;

function sniff(head: Buffer): Kind {
  if (isElf(head)) return 'elf';
  if (isArchive(head)) return 'ar';
  if (isThinArchive(head)) return 'thin-ar';
  if (isMachO(head)) return 'macho';
  if (isFat(head)) return 'fat';
  if (isPe(head)) return 'pe';
  if (isTbd(head)) return 'tbd';
  return undefined;
}

async function inspectRange(range: ByteRange, inArchive: boolean, options: InspectOptions): Promise<ObjectInfo[]> {
  const head = await range.head(64);
  switch (sniff(head)) {
    case 'elf':
      return [await inspectElf(range)];
    case 'macho':
      return [await inspectMachO(range)];
    case 'pe':
      return [await inspectPe(range)];
    case 'fat': {
      const slices = (await fatSlices(range)).filter((s) => options.architecture === undefined || s.architecture === options.architecture);
      return (await Promise.all(slices.map((s) => inspectRange(s.range, inArchive, options)))).flat().map((o) => ({ ...o, universal: true }));
    }
    case 'ar': {
      if (inArchive) return [];
      const out: ObjectInfo[] = [];
      for (const member of await archiveMembers(range)) out.push(...(await inspectRange(member.range, true, options)));
      return out;
    }
    case 'tbd': {
      const stubs = inArchive ? [] : await inspectTbd(range);
      return stubs.filter((s) => options.architecture === undefined || s.architecture === options.architecture);
    }
    case 'thin-ar':
      throw new OcipkgError('EINPUT', `${range.where}: thin archive (members are not inside it); repack it with "ar rc" without T`);
    default: {
      // Inside archives, anything that is not an object (LLVM bitcode, a text file) is not ours to judge.
      const coff = inArchive ? await inspectCoff(range, head) : undefined;
      return coff ? [coff] : [];
    }
  }
}

/**
 * The objects in a binary file: one for a thin object or library, one per slice of a universal
 * binary (or only the one `options.architecture` names) and per target of a `.tbd` stub, one per
 * object member of an `ar` archive (members that are not objects are skipped). A file that is not
 * a binary at all is refused with EINPUT.
 */
export async function inspectFile(path: string, options: InspectOptions = {}): Promise<ObjectInfo[]> {
  return withFile(path, async (range) => {
    if (sniff(await range.head(64)) === undefined) throw new OcipkgError('EINPUT', `${path}: not an ELF, Mach-O, PE/COFF, ar or .tbd file`);
    return inspectRange(range, false, options);
  });
}

/**
 * The target triple an object was built for, or undefined when no known triple fits (soft-float
 * ARM, an architecture without a triple). ELF objects that do not show a libc are taken as glibc;
 * PE/COFF ones that do not show MinGW's toolchain as MSVC's (Node's own Windows builds are MSVC's).
 */
export function tripleOf(info: ObjectInfo): string | undefined {
  if (info.architecture === 'arm' && info.os === 'linux' && !info.hardFloat) return undefined;
  const candidates = platformToTriples({ os: info.os, architecture: info.architecture });
  if (info.os === 'windows') return candidates.find((t) => t.endsWith(info.abi === 'gnu' ? '-windows-gnu' : '-windows-msvc'));
  if (info.os !== 'linux') return candidates[0];
  const musl = info.libc === 'musl';
  return candidates.find((t) => t.includes('musl') === musl);
}

/**
 * Why an MSVC build for `triple` cannot link these objects, or undefined: one of them holds C++
 * with GCC's (Itanium) mangling, which MSVC's linker neither reads nor calls with its own ABI.
 * C functions of a MinGW library link from MSVC through its import library, so only C++ is refused.
 */
export function gnuCxxForMsvc(objects: ObjectInfo[], triple: string): string | undefined {
  if (!triple.endsWith('-windows-msvc')) return undefined;
  const gnu = objects.find((o) => o.itaniumSymbol !== undefined);
  if (gnu === undefined) return undefined;
  return `${gnu.where} is GNU-ABI C++ (${gnu.itaniumSymbol} is Itanium-mangled), which an MSVC build (${triple}) cannot link; ` +
    `build it with MSVC or clang-cl, or publish it as ${triple.replace(/-msvc$/, '-gnu')}`;
}

/**
 * The members of an ELF static archive that cannot be linked into a shared object (and so not into
 * a Node addon), by member name. Empty for archives of other formats: the check is ELF only.
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

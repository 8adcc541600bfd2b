import { OcipkgError } from '../../errors.js';
import { cString, type ByteRange } from './range.js';

const AR_MAGIC = '!<arch>\n';
const AR_HEADER = 60;

export function isArchive(head: Buffer): boolean {
  return head.toString('latin1', 0, 8) === AR_MAGIC;
}

/** A GNU thin archive: its header names the member files instead of holding them. */
export function isThinArchive(head: Buffer): boolean {
  return head.toString('latin1', 0, 8) === '!<thin>\n';
}

export interface ArchiveMember {
  name: string;
  range: ByteRange;
}

/**
 * Members of a GNU / System V or BSD `ar` archive (static libraries everywhere, MSVC `.lib` too),
 * without the symbol tables (`/`, `/SYM64/`, `__.SYMDEF*`) and the GNU long-name table (`//`).
 */
export async function archiveMembers(range: ByteRange): Promise<ArchiveMember[]> {
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

/**
 * The 64-byte header of an empty little-endian ELF64 relocatable object for `machine` (183 is
 * EM_AARCH64): all that architecture detection reads, for tests that need a foreign object.
 */
export function minimalElf(machine: number): Buffer {
  const buf = Buffer.alloc(64);
  buf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]); // magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT
  buf.writeUInt16LE(1, 16); // ET_REL
  buf.writeUInt16LE(machine, 18);
  buf.writeUInt32LE(1, 20); // e_version
  buf.writeUInt16LE(64, 52); // e_ehsize
  buf.writeUInt16LE(64, 58); // e_shentsize
  return buf;
}

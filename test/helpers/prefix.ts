import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export const DEBIAN_LIB = '/usr/lib/x86_64-linux-gnu';

/**
 * An install prefix holding one of Debian's real static libraries (`lib<lib>.a`) and its headers,
 * plus `extra` files (path relative to the prefix -> contents), e.g. an `ocipkg.json`.
 */
export async function debianPrefix(dir: string, lib: string, headers: string[], extra: Record<string, string> = {}): Promise<string> {
  await mkdir(join(dir, 'include'), { recursive: true });
  await mkdir(join(dir, 'lib'), { recursive: true });
  for (const header of headers) await copyFile(join('/usr/include', header), join(dir, 'include', header));
  await copyFile(join(DEBIAN_LIB, `lib${lib}.a`), join(dir, 'lib', `lib${lib}.a`));
  for (const [path, body] of Object.entries(extra)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), body);
  }
  return dir;
}

/** A C program exercising liblz4 end to end: compress, decompress, compare. */
export const LZ4_PROGRAM = `
#include <lz4.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  const char *text = "ocipkg ocipkg ocipkg ocipkg ocipkg ocipkg";
  char packed[256], unpacked[256];
  int n = LZ4_compress_default(text, packed, (int)strlen(text), (int)sizeof packed);
  int m = LZ4_decompress_safe(packed, unpacked, n, (int)sizeof unpacked - 1);
  if (m < 0) return 2;
  unpacked[m] = 0;
  printf("lz4 %d roundtrip %s\\n", LZ4_versionNumber(), strcmp(text, unpacked) == 0 ? "ok" : "FAILED");
  return strcmp(text, unpacked) != 0;
}
`;

export async function writeProgram(dir: string, source: string): Promise<string> {
  const path = join(dir, 'main.c');
  await writeFile(path, source);
  return path;
}

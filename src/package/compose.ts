import { basename } from 'node:path';
import { describeLibraries, isHeaderName } from './discover.js';
import { classifyLibraryName } from './library-name.js';
import { fileEntries } from './layer.js';
import type { LibraryInfo } from '../artifact/config.js';
import { writeArtifact, type PackOptions, type PackResult } from './pack.js';

/**
 * The Rust ocipkg's `compose`: the given files, each at the layer root under its base name, in the
 * same artifact format as `pack` (libraries among them are described in the metadata).
 */
export async function compose(files: string[], output: string, options: PackOptions): Promise<PackResult> {
  const entries = await fileEntries(files);
  const sources = new Map(entries.flatMap((e) => (e.type === 'file' && 'source' in e ? [[e.path, e.source] as const] : [])));
  const libraries: LibraryInfo[] = await describeLibraries(
    entries.filter((e) => classifyLibraryName(e.path)).map((e) => ({ path: e.path, source: sources.get(e.path)! })),
  );
  const includeDirs = entries.some((e) => isHeaderName(e.path)) ? ['.'] : [];
  return writeArtifact(
    { entries, libraries, includeDirs, sourceOf: (lib) => sources.get(lib.file)!, origin: files.map((f) => basename(f)).join(', ') },
    output,
    options,
  );
}

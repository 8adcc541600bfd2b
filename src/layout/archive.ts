import { createReadStream } from 'node:fs';
import { mkdtemp, open, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errno, OcipkgError } from '../errors.js';
import { extractStream } from '../fs/extract.js';
import { pathExists } from '../fs/atomic.js';
import { removeTree } from '../fs/tree.js';
import { LayoutDirectory } from './directory.js';

export interface OpenedArchive {
  layout: LayoutDirectory;
  /** Removes the extracted copy. */
  close(): Promise<void>;
}

/** gzip's magic bytes: some tools compress oci-archives; the layout inside is the same. */
async function isGzip(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await handle.read(head, 0, 2, 0);
    return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await handle.close();
  }
}

/**
 * Opens an oci-archive (a tar of an OCI image layout, what `ocipkg pack` and `skopeo copy
 * oci-archive:` write) by extracting it, with the same checks as a layer, to a temp directory that
 * `close` removes. Blobs are read from there as from any layout and verified by whoever reads them.
 */
export async function openArchive(path: string): Promise<OpenedArchive> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') throw new OcipkgError('EINPUT', `archive ${path} does not exist`, { cause: err });
    throw err;
  }
  if (!info.isFile()) throw new OcipkgError('EINPUT', `archive ${path} is not a file`);

  const dir = await mkdtemp(join(tmpdir(), 'ocipkg-archive-'));
  const close = () => removeTree(dir);
  try {
    await extractStream(createReadStream(path), dir, { gzip: await isGzip(path), label: `archive ${path}`, invalidCode: 'EINPUT' });
    for (const required of ['oci-layout', 'index.json']) {
      if (!(await pathExists(join(dir, required)))) {
        throw new OcipkgError('EINPUT', `archive ${path} is not an OCI image layout (no ${required})`);
      }
    }
  } catch (err) {
    await close();
    throw err;
  }
  // Messages name the archive the user gave, not the temp directory.
  return { layout: new LayoutDirectory(dir, { location: `oci-archive:${path}` }), close };
}

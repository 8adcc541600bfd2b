import { existsSync, statSync } from 'node:fs';
import { openArchive } from '../layout/archive.js';
import type { ContentSource } from '../oci/content.js';
import { fetchSmallBlob, parseManifest } from '../oci/manifest.js';
import { fetchPackageConfig } from '../artifact/config.js';
import { archivePath, canonicalReference, tagOrDigest } from '../reference.js';
import { noBuildError, selectFromIndex } from '../artifact/triples.js';
import { OcipkgError } from '../errors.js';
import { openSource } from '../open.js';
import { archiveImage } from './archive-name.js';
import { commandLineReference } from '../project/manifest.js';

/**
 * What `ocipkg inspect` prints: the document a name points at, and for a manifest its ocipkg
 * config; with a triple, an index's entry for it in its place (and the index's descriptor beside).
 */
async function describe(source: ContentSource, reference: string, name: string, triple: string | undefined): Promise<Record<string, unknown>> {
  const root = await source.resolve(reference);
  let desc = root;
  let parsed = parseManifest(await fetchSmallBlob(source, desc), desc.mediaType, name);
  if (parsed.kind === 'index') {
    if (triple === undefined) return { reference: name, descriptor: desc, index: parsed.index };
    desc = selectFromIndex(parsed.index, triple, name)[0]!;
    parsed = parseManifest(await fetchSmallBlob(source, desc), desc.mediaType, `${name}@${desc.digest}`);
    if (parsed.kind === 'index') throw new OcipkgError('EMANIFEST', `${name}: the entry for ${triple} is itself an index`);
  }
  const ocipkgConfig = await fetchPackageConfig(source, parsed.manifest.config, name);
  const recorded = ocipkgConfig?.package?.target;
  if (triple !== undefined && desc === root && recorded !== undefined && recorded !== triple) throw noBuildError(name, triple, [recorded]);
  return {
    reference: name,
    ...(desc !== root && { index: root, target: triple }),
    descriptor: desc,
    manifest: parsed.manifest,
    ...(ocipkgConfig && { config: ocipkgConfig }),
  };
}

export async function inspect(what: string, triple?: string): Promise<Record<string, unknown>> {
  const path = archivePath(what);
  if (path !== what || (existsSync(what) && statSync(what).isFile())) {
    const opened = await openArchive(path);
    try {
      const { sourceRef, name } = await archiveImage(opened.layout, path);
      return await describe(opened.layout, sourceRef, name ?? sourceRef, triple);
    } finally {
      await opened.close();
    }
  }
  // No reference starts like a path: this was meant as an archive that is not there.
  if (/^(\.{0,2}[\\/]|[A-Za-z]:[\\/])/.test(what)) throw new OcipkgError('EINPUT', `${what}: no such archive file`);
  const ref = commandLineReference(what);
  return describe(openSource(ref), tagOrDigest(ref), canonicalReference(ref), triple);
}

import { existsSync, statSync } from 'node:fs';
import { openArchive } from '../layout/archive.js';
import type { ContentSource } from '../oci/content.js';
import { fetchSmallBlob, parseManifest } from '../oci/manifest.js';
import { fetchPackageConfig } from '../artifact/config.js';
import { canonicalReference, parseReference, tagOrDigest } from '../reference.js';
import { openSource } from '../open.js';
import { archiveImage } from './archive-name.js';

/** What `ocipkg inspect` prints: the document a name points at, and for a manifest its ocipkg config. */
async function describe(source: ContentSource, reference: string, name: string): Promise<Record<string, unknown>> {
  const desc = await source.resolve(reference);
  const parsed = parseManifest(await fetchSmallBlob(source, desc), desc.mediaType, name);
  if (parsed.kind === 'index') return { reference: name, descriptor: desc, index: parsed.index };
  const { config } = parsed.manifest;
  const ocipkgConfig = await fetchPackageConfig(source, config, name);
  return { reference: name, descriptor: desc, manifest: parsed.manifest, ...(ocipkgConfig && { config: ocipkgConfig }) };
}

export async function inspect(what: string): Promise<Record<string, unknown>> {
  if (existsSync(what) && statSync(what).isFile()) {
    const opened = await openArchive(what);
    try {
      const { sourceRef, name } = await archiveImage(opened.layout, what);
      return await describe(opened.layout, sourceRef, name ?? sourceRef);
    } finally {
      await opened.close();
    }
  }
  const ref = parseReference(what);
  return describe(openSource(ref), tagOrDigest(ref), canonicalReference(ref));
}

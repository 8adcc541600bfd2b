import { join } from 'node:path';
import { isOcipkgError } from '../errors.js';
import { ANNOTATION_REF_NAME, ANNOTATION_TARGET, OCI_INDEX } from '../oci/mediatypes.js';
import type { Descriptor, ImageIndex } from '../oci/types.js';
import { writeFileAtomic } from '../fs/atomic.js';
import { storeLayout } from './layout.js';
import { listPackages } from './package.js';
import { listRefs } from './refs.js';

/**
 * Rewrites the store's index.json from the refs index and the installed packages, so that skopeo
 * and oras can list and read the store as an `oci:` layout (`oci:STORE:REFERENCE`). Each recorded
 * reference gets an entry named by its canonical reference (ref.name); every other stored manifest
 * (one target of an index, an installed package no reference names any more) gets an unnamed
 * entry with its target triple. Best effort: entries whose blob is not in the store are left out.
 */
export async function writeStoreIndex(root: string): Promise<void> {
  const layout = storeLayout(root);
  await layout.ensureLayout();
  const described = new Map<string, Descriptor | undefined>();
  const describe = async (digest: string): Promise<Descriptor | undefined> => {
    if (!described.has(digest)) {
      const desc = await layout.resolve(digest).catch((err: unknown) => {
        if (isOcipkgError(err, 'ENOTFOUND')) return undefined;
        throw err;
      });
      described.set(digest, desc && { mediaType: desc.mediaType, digest, size: desc.size });
    }
    return described.get(digest);
  };

  const entries: Descriptor[] = [];
  const named = new Set<string>();
  /** Manifest digest -> target triple, where known; the keys are every manifest to list. */
  const targets = new Map<string, string | undefined>();
  // In code-unit order: the same file under every locale, and no ICU collator loaded for it
  // (measured: `localeCompare` once costs ~3 MiB resident, in every get once the store holds two
  // references).
  const refs = listRefs(root).sort((a, b) => (a.reference < b.reference ? -1 : a.reference > b.reference ? 1 : 0));
  for (const record of refs) {
    for (const [target, digest] of Object.entries(record.manifests)) targets.set(digest, target || targets.get(digest));
  }
  for (const pkg of listPackages(root)) targets.set(pkg.manifestDigest, pkg.target ?? targets.get(pkg.manifestDigest));
  const annotated = (desc: Descriptor, extra: Record<string, string> = {}): Descriptor => {
    const target = targets.get(desc.digest);
    const annotations = { ...extra, ...(target && { [ANNOTATION_TARGET]: target }) };
    return Object.keys(annotations).length ? { ...desc, annotations } : desc;
  };

  for (const record of refs) {
    const desc = await describe(record.digest);
    if (!desc) continue;
    entries.push(annotated(desc, { [ANNOTATION_REF_NAME]: record.reference }));
    named.add(record.digest);
  }
  for (const digest of targets.keys()) {
    const desc = named.has(digest) ? undefined : await describe(digest);
    if (desc) entries.push(annotated(desc));
  }
  const index: ImageIndex = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries };
  await writeFileAtomic(join(root, 'index.json'), `${JSON.stringify(index, null, 2)}\n`);
}

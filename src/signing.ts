import type { KeyObject } from 'node:crypto';
import { OcipkgError } from './errors.js';
import { fetchSmallBlob, parseManifest } from './oci/manifest.js';
import { openContent, openSource } from './open.js';
import { readLockfile } from './project/lockfile.js';
import { findProject } from './project/manifest.js';
import { canonicalReference, formatReference, parseReference, repositoryOf, tagOrDigest, type RegistryReference } from './reference.js';
import { signingPayload } from './sign/payload.js';
import { signerOf, signPayload } from './sign/signature.js';
import { appendSignature, readSignatures } from './sign/signatures.js';

/**
 * `ocipkg sign` and `ocipkg verify`: cosign's legacy signatures on images in a registry (or a
 * layout), made and checked with ocipkg's own keys or cosign's, which are the same files.
 */

function registryRef(image: string): RegistryReference {
  const ref = parseReference(image);
  if (ref.kind !== 'registry') throw new OcipkgError('EUSAGE', `${image}: signatures live in registries; give a registry image`);
  return ref;
}

/**
 * Signs what `image` names now (an index: the index, and with `recursive` each manifest it lists)
 * and returns the references signed, pinned by digest.
 */
export async function signImage(image: string, key: KeyObject, options: { recursive?: boolean; annotations?: Record<string, string> } = {}): Promise<string[]> {
  const ref = registryRef(image);
  const store = openContent(ref);
  const root = await store.resolve(tagOrDigest(ref));
  const digests = [root.digest];
  if (options.recursive) {
    const parsed = parseManifest(await fetchSmallBlob(store, root), root.mediaType, canonicalReference(ref));
    if (parsed.kind === 'index') digests.push(...parsed.index.manifests.map((m) => m.digest));
  }
  const { tag: _tag, digest: _digest, ...repository } = ref;
  const signed: string[] = [];
  for (const digest of digests) {
    const payload = signingPayload(ref, digest, options.annotations);
    await appendSignature(store, digest, { payload, signature: signPayload(key, payload) });
    signed.push(formatReference({ ...repository, digest }));
  }
  return signed;
}

/**
 * The payloads of `image`'s signatures that one of `keys` verifies and that name the digest the
 * reference resolves to (with a lockfile, the pinned digest): legacy simple-signing payloads, then
 * the in-toto statements of cosign 3's bundles. Errors, as cosign words them, when
 * there are no signatures or none verifies.
 */
export async function verifyImage(image: string, keys: KeyObject[]): Promise<unknown[]> {
  const ref = registryRef(image);
  const store = openSource(ref);
  const project = findProject();
  const entry = project && ref.digest === undefined ? readLockfile(project.dir)?.packages[canonicalReference(ref)] : undefined;
  // The lock pins the index (or single manifest) it was taken from; that is what gets verified.
  const digest = entry ? entry.digest : (await store.resolve(tagOrDigest(ref))).digest;
  const signatures = await readSignatures(store, digest);
  const { readBundles, verifyBundle } = await import('./sign/bundles.js');
  const bundles = await readBundles(store, digest);
  if (signatures.length === 0 && bundles.length === 0) throw new OcipkgError('EUNTRUSTED', `${repositoryOf(ref)}@${digest}: no signatures found`);
  const verified: unknown[] = [];
  for (const { payload, signature } of signatures) {
    if (signerOf(payload, signature, digest, keys) !== undefined) verified.push(JSON.parse(Buffer.from(payload).toString('utf8')));
  }
  for (const bundle of bundles) {
    const found = verifyBundle(bundle, digest, keys);
    if (found) verified.push(found.statement);
  }
  if (verified.length === 0) throw new OcipkgError('EUNTRUSTED', `${repositoryOf(ref)}@${digest}: no matching signatures`);
  return verified;
}

import { OcipkgError } from './errors.js';
import type { ContentSource } from './oci/content.js';
import type { TrustRule } from './project/trust.js';
import { keyId, readPublicKey } from './sign/keys.js';
import { signerOf } from './sign/signature.js';
import { readSignatures } from './sign/signatures.js';

/**
 * The check a trust policy asks for before a package enters the store: a signature by one of the
 * rule's keys naming one of `digests` (an index tag's own digest, or the manifest selected from
 * it), stored in cosign's legacy form beside the image or, failing that, as a sigstore bundle
 * attached as a referrer (cosign 3; sigstore-js is loaded only then). Returns the PEM of the key
 * that verified, for the store to record.
 */
export async function verifyTrusted(source: ContentSource, image: string, digests: string[], rule: TrustRule): Promise<string> {
  const keys = rule.keys.map((key) => {
    try {
      return { ...key, object: readPublicKey(key.pem) };
    } catch (err) {
      if (!(err instanceof OcipkgError)) throw err;
      throw new OcipkgError(err.code, `${rule.declaredIn}: trusted key ${key.path} for "${rule.prefix}": ${err.message}`, { cause: err });
    }
  });
  for (const digest of digests) {
    for (const { payload, signature } of await readSignatures(source, digest)) {
      const signer = signerOf(payload, signature, digest, keys.map((k) => k.object));
      if (signer !== undefined) return keys[signer]!.pem;
    }
  }
  const { readBundles, verifyBundle } = await import('./sign/bundles.js');
  for (const digest of digests) {
    for (const bundle of await readBundles(source, digest)) {
      const verified = verifyBundle(bundle, digest, keys.map((k) => k.object));
      if (verified) return keys[verified.key]!.pem;
    }
  }
  const tried = keys.map((k) => `${k.path} (${keyId(k.object)})`).join(', ');
  // A reference that pins the digest already names it.
  const named = image.endsWith(`@${digests[0]}`) ? image : `${image}@${digests[0]}`;
  throw new OcipkgError('EUNTRUSTED', `${named} has no signature by a key ${rule.declaredIn} trusts for "${rule.prefix}" (tried ${tried}); nothing was installed`);
}

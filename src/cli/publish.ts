import type { PublishInput } from '../publish.js';
import { parseOptions, printJson, printLine, progress, usageError } from './common.js';
import { beforeTransfers, copiedLine } from './transfers.js';
import { signingKey } from './keys.js';
import { PACK_METADATA_OPTIONS, packMetadata } from './pack-options.js';

/**
 * `ocipkg publish`: parsing and printing only; the work is in src/publish.ts, imported when the
 * command runs so that `ocipkg` itself stays light.
 */

export const PUBLISH_USAGE = 'ocipkg publish IMAGE (--target TRIPLE=PATH ... | --from DIR) [--append] [--json] [options]';
export const PUBLISH_SUMMARY = 'push one build per target triple and an image index over them under one tag';
export const PUBLISH_OPTIONS = [
  '  --target TRIPLE=PATH    a build: PATH is an install prefix (packed for TRIPLE) or an',
  '                          oci-archive from `pack` recording TRIPLE (repeatable); TRIPLE may be',
  '                          Node-style: linux-x64, linux-arm64, linux-x64-musl, darwin-arm64, win32-x64',
  '  --from DIR              every .tar archive under DIR (the ones ocipkg-pack writes, e.g. downloaded',
  '                          from the jobs of a CI matrix), each for the target it records',
  '  --append                keep the targets IMAGE already has; add or replace only these',
  '  --name NAME             package name for packed directories (default: last component of IMAGE)',
  '  --version VERSION       org.opencontainers.image.version (packed directories and the index)',
  '  --source URL            org.opencontainers.image.source (packed directories)',
  '  --license SPDX          org.opencontainers.image.licenses (packed directories)',
  '  --description TEXT      org.opencontainers.image.description (packed directories)',
  '  --requires IMAGE        a package this one needs (packed directories; repeatable)',
  '  --define NAME[=VALUE]   a definition consumers compile with (packed directories; repeatable)',
  '  --link-flag=FLAG        a flag consumers link after the libraries (packed directories; repeatable)',
  '  --sign-key KEY          sign the index and every target manifest with this cosign key',
  '                          (default: $OCIPKG_SIGN_KEY when set; the password is $COSIGN_PASSWORD)',
  '  --json                  print {"index", "pinned", "targets": {TRIPLE: manifest digest}} instead',
  'Each build is also tagged TAG-TRIPLE. Prints IMAGE pinned to the index digest.',
].join('\n');

function parseTarget(value: string): PublishInput {
  const eq = value.indexOf('=');
  if (eq <= 0 || eq === value.length - 1) throw usageError(`publish: --target "${value}" is not TRIPLE=PATH`);
  return { triple: value.slice(0, eq), path: value.slice(eq + 1) };
}

export async function runPublish(args: string[]): Promise<void> {
  const { values, positionals } = parseOptions(args, {
    target: { type: 'string', multiple: true }, from: { type: 'string' }, append: { type: 'boolean' }, 'sign-key': { type: 'string' },
    json: { type: 'boolean' }, ...PACK_METADATA_OPTIONS,
  }, 'publish');
  if (positionals.length !== 1) throw usageError(`publish: expected one IMAGE, got ${positionals.length} (usage: ${PUBLISH_USAGE})`);
  const inputs = (values.target ?? []).map(parseTarget);
  if (inputs.length === 0 && values.from === undefined) throw usageError(`publish: give --target TRIPLE=PATH or --from DIR (usage: ${PUBLISH_USAGE})`);
  // The key first: a wrong password should stop the publish before anything is pushed. CI sets
  // OCIPKG_SIGN_KEY once for the job (CMake's ocipkg-push target relies on it).
  const keyPath = values['sign-key'] ?? (process.env.OCIPKG_SIGN_KEY || undefined);
  const key = keyPath !== undefined ? await signingKey(keyPath) : undefined;
  await beforeTransfers('pushing');
  const { packedArchivesIn, publish } = await import('../publish.js');
  if (values.from !== undefined) inputs.push(...(await packedArchivesIn(values.from)));
  const result = await publish(positionals[0]!, inputs, {
    append: values.append ?? false,
    pack: packMetadata(values),
    progress,
    onCopied: (desc, skipped) => progress(copiedLine(desc, skipped)),
  });
  if (key) {
    const { signImage } = await import('../signing.js');
    for (const signed of await signImage(result.pinned, key, { recursive: true })) progress(`signed ${signed}`);
  }
  if (values.json) printJson({ index: result.index.digest, pinned: result.pinned, targets: result.targets });
  else printLine(result.pinned);
}

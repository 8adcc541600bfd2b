import { findProject } from '../project/manifest.js';
import { trustRuleFor } from '../project/trust.js';
import { canonicalReference, parseReference } from '../reference.js';
import { tuneForTransfers } from '../tuning.js';
import { JSON_HELP, JSON_OPTION, parseOptions, printJson, printLine, usageError } from './common.js';
import { readKeyFile, signingKey } from './keys.js';

/** `ocipkg sign` and `ocipkg verify`, as cosign's `sign --key` and `verify --key --insecure-ignore-tlog`. */

export const SIGN_USAGE = 'ocipkg sign --key KEY IMAGE... [--recursive] [-a KEY=VALUE]...';
export const SIGN_SUMMARY = "sign images with a cosign key, in cosign's signature form (tag sha256-<hex>.sig)";
export const SIGN_OPTIONS = [
  '  --key KEY               the private key (cosign.key); its password from COSIGN_PASSWORD or a prompt',
  '  --recursive             an index: also sign each manifest it lists',
  '  -a, --annotations K=V   an annotation in the signed payload\'s "optional" (repeatable)',
  JSON_HELP,
].join('\n');

export const VERIFY_USAGE = 'ocipkg verify --key PUB IMAGE...';
export const VERIFY_SUMMARY = 'check that a key signed what each image names (with a lockfile: the pinned digest); print the payloads as JSON';
export const VERIFY_OPTIONS = '  --key PUB               the public key (cosign.pub); without it, the keys the trust policy names for the image\n  --json                  accepted: the output is always JSON';

function annotations(values: string[]): Record<string, string> {
  return Object.fromEntries(values.map((pair) => {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw usageError(`sign: -a takes KEY=VALUE, got "${pair}"`);
    return [pair.slice(0, eq), pair.slice(eq + 1)];
  }));
}

export async function runSign(args: string[]): Promise<void> {
  const { values, positionals } = parseOptions(args, { key: { type: 'string' }, recursive: { type: 'boolean' }, annotations: { type: 'string', short: 'a', multiple: true }, ...JSON_OPTION }, 'sign');
  if (!values.key) throw usageError(`sign: --key KEY is required (usage: ${SIGN_USAGE})`);
  if (positionals.length === 0) throw usageError(`sign: no image given (usage: ${SIGN_USAGE})`);
  const extra = annotations(values.annotations ?? []);
  const key = await signingKey(values.key);
  tuneForTransfers();
  const { signImage } = await import('../signing.js');
  const signatures: string[] = [];
  for (const image of positionals) {
    const signed = await signImage(image, key, { recursive: values.recursive ?? false, ...(Object.keys(extra).length > 0 && { annotations: extra }) });
    if (!values.json) for (const reference of signed) printLine(reference);
    signatures.push(...signed);
  }
  if (values.json) printJson(signatures);
}

async function publicKey(path: string) {
  const pem = await readKeyFile(path, 'public key');
  const { readPublicKey } = await import('../sign/keys.js');
  return readPublicKey(pem);
}

export async function runVerify(args: string[]): Promise<void> {
  const { values, positionals } = parseOptions(args, { key: { type: 'string' }, ...JSON_OPTION }, 'verify');
  if (positionals.length === 0) throw usageError(`verify: no image given (usage: ${VERIFY_USAGE}; the store check is \`ocipkg store verify\`)`);
  const project = findProject();
  const payloads: unknown[] = [];
  for (const image of positionals) {
    let keys;
    if (values.key) {
      keys = [await publicKey(values.key)];
    } else {
      const rule = trustRuleFor(canonicalReference(parseReference(image)), project);
      if (!rule) throw usageError(`verify: give --key PUB (no trust policy covers ${image}); checking the store moved to \`ocipkg store verify\``);
      const { readPublicKey } = await import('../sign/keys.js');
      keys = rule.keys.map((k) => readPublicKey(k.pem));
    }
    tuneForTransfers();
    const { verifyImage } = await import('../signing.js');
    payloads.push(...(await verifyImage(image, keys)));
  }
  printJson(payloads);
}

import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { errno, isOcipkgError, OcipkgError } from '../errors.js';
import { createFileOnce, pathExists, writeFileAtomic } from '../fs/atomic.js';
import { askLine, readHidden } from './prompt.js';
import { JSON_HELP, JSON_OPTION, parseOptions, printJson, printLine, progress, usageError } from './common.js';

/**
 * `ocipkg generate-key-pair`: cosign's command of the same name, writing the same files (the formats
 * are src/sign/keys.ts's, imported when the command runs). The password comes from COSIGN_PASSWORD,
 * as cosign reads it, or from a prompt on a terminal; with neither there is no password to use.
 */

export const GENERATE_KEY_PAIR_USAGE = 'ocipkg generate-key-pair [--output-key-prefix PREFIX]';
export const GENERATE_KEY_PAIR_SUMMARY = 'write a cosign-compatible signing key pair: PREFIX.key (encrypted) and PREFIX.pub';
export const GENERATE_KEY_PAIR_OPTIONS = [
  '  --output-key-prefix PREFIX',
  '                          the files to write: PREFIX.key (mode 0600) and PREFIX.pub (default: cosign)',
  'The password is COSIGN_PASSWORD when it is set, else asked for on the terminal (twice).',
  'Existing files are replaced only when confirmed on the terminal. Prints the two paths written.',
  JSON_HELP,
].join('\n');

/** COSIGN_PASSWORD, else asked on the terminal (twice for a new key), else an error saying so. */
async function readPassword(purpose: 'new' | 'existing'): Promise<string> {
  // Set but empty is an empty password, as cosign takes it.
  const fromEnv = process.env.COSIGN_PASSWORD;
  if (fromEnv !== undefined) return fromEnv;
  const which = purpose === 'new' ? 'the new key' : 'the signing key';
  if (!process.stdin.isTTY) throw new OcipkgError('EKEY', `no password for ${which}: set COSIGN_PASSWORD (there is no terminal to ask on)`);
  const noPassword = () => new OcipkgError('EKEY', 'no password given');
  const password = await readHidden('Enter password for private key: ', noPassword);
  if (purpose === 'new' && (await readHidden('Enter password for private key again: ', noPassword)) !== password) throw new OcipkgError('EKEY', 'passwords do not match');
  return password;
}

/** A key file's text; `what` names it in the error (`signing key`, `public key`). */
export async function readKeyFile(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new OcipkgError('EINPUT', `cannot read the ${what} ${path}: ${errno(err) ?? (err as Error).message}`, { cause: err });
  }
}

/** The private key in the file `path` (cosign's format), decrypted with the password as cosign asks for it. */
export async function signingKey(path: string): Promise<KeyObject> {
  const pem = await readKeyFile(path, 'signing key');
  const password = await readPassword('existing');
  const { readPrivateKey } = await import('../sign/keys.js');
  return readPrivateKey(pem, password);
}

/** Whether to replace files that exist: asked on a terminal, refused without one. */
async function confirmOverwrite(paths: string[]): Promise<boolean> {
  const existing: string[] = [];
  for (const path of paths) if (await pathExists(path)) existing.push(path);
  if (existing.length === 0) return false;
  const names = existing.join(' and ');
  const exist = existing.length === 1 ? 'exists' : 'exist';
  if (!process.stdin.isTTY) throw new OcipkgError('EINPUT', `${names} already ${exist} (remove ${existing.length === 1 ? 'it' : 'them'} to write a new key pair)`);
  const answer = await askLine(`${names} already ${exist}. Overwrite? [y/N] `);
  if (!/^y(es)?$/i.test(answer.trim())) throw new OcipkgError('EINPUT', `not overwriting ${names}`);
  return true;
}

async function writeKeyFile(path: string, text: string, mode: number, overwrite: boolean): Promise<void> {
  try {
    // Without leave to overwrite, a file that appeared since the check is kept, not replaced.
    if (overwrite) await writeFileAtomic(path, text, mode);
    else if (!(await createFileOnce(path, text, mode))) throw new OcipkgError('EINPUT', `${path} already exists`);
  } catch (err) {
    if (isOcipkgError(err)) throw err;
    throw new OcipkgError('EIO', `cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

export async function runGenerateKeyPair(args: string[]): Promise<void> {
  const { values, positionals } = parseOptions(args, { 'output-key-prefix': { type: 'string' }, ...JSON_OPTION }, 'generate-key-pair');
  if (positionals.length > 0) throw usageError(`generate-key-pair: unexpected argument "${positionals[0]}" (usage: ${GENERATE_KEY_PAIR_USAGE})`);
  const prefix = values['output-key-prefix'] ?? 'cosign';
  if (prefix === '') throw usageError('generate-key-pair: --output-key-prefix is empty');
  const privatePath = `${prefix}.key`;
  const publicPath = `${prefix}.pub`;
  const overwrite = await confirmOverwrite([privatePath, publicPath]);
  const password = await readPassword('new');
  const { generateKeyPair } = await import('../sign/keys.js');
  const { privatePem, publicPem } = generateKeyPair(password);
  await writeKeyFile(privatePath, privatePem, 0o600, overwrite);
  progress(`Private key written to ${privatePath}`);
  // cosign's mode for the public key: it is meant to be handed out.
  await writeKeyFile(publicPath, publicPem, 0o644, overwrite);
  progress(`Public key written to ${publicPath}`);
  if (values.json) {
    printJson({ privateKey: privatePath, publicKey: publicPath });
    return;
  }
  printLine(privatePath);
  printLine(publicPath);
}

import { spawn } from 'node:child_process';
import { createPrivateKey, createPublicKey, createSign, createVerify, generateKeyPairSync, randomBytes, scryptSync, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { secretbox } from '@noble/ciphers/salsa';
import { describe, expect, it } from 'vitest';
import { REPO, tempDir } from './helpers/cli.js';
import { codeOfSync } from './helpers/errors.js';
import { generateKeyPair, keyId, readPrivateKey, readPublicKey } from '../src/sign/keys.js';
import { parsePayload, signingPayload } from '../src/sign/payload.js';
import { signPayload, verifyPayload } from '../src/sign/signature.js';

/**
 * cosign's key, payload and signature formats, checked against implementations written here from
 * the format's description (go-securesystemslib's `encrypted`, sigstore's SimpleContainerImage),
 * not against ocipkg's own code: what one writes, the other must read.
 */

const PASSWORD = 'correct horse battery staple';

/** Go's pem.Encode, written out: 64 columns, a newline after every line. */
function pem(type: string, body: Buffer): string {
  const b64 = body.toString('base64');
  let lines = '';
  for (let i = 0; i < b64.length; i += 64) lines += `${b64.slice(i, i + 64)}\n`;
  return `-----BEGIN ${type}-----\n${lines}-----END ${type}-----\n`;
}

function pemBody(text: string, type: string): Buffer {
  const match = new RegExp(`^-----BEGIN ${type}-----\\n((?:[A-Za-z0-9+/=]{1,64}\\n)+)-----END ${type}-----\\n$`).exec(text);
  expect(match, text).not.toBeNull();
  return Buffer.from(match![1]!.replace(/\n/g, ''), 'base64');
}

const derive = (password: string, salt: Buffer, n: number, r = 8, p = 1) => scryptSync(password, salt, 32, { N: n, r, p, maxmem: 1024 * 1024 * 1024 });

/** An encrypted key as go-securesystemslib's Encrypt makes one, from the description of the format. */
function encryptKey(privateKey: KeyObject, password: string, options: { n?: number; r?: number; type?: string; edit?: (doc: Record<string, any>) => void } = {}): string {
  const n = options.n ?? 65536;
  const r = options.r ?? 8;
  const salt = randomBytes(32);
  const nonce = randomBytes(24);
  const sealed = secretbox(derive(password, salt, n, r), nonce).seal(privateKey.export({ type: 'pkcs8', format: 'der' }));
  const doc: Record<string, any> = {
    kdf: { name: 'scrypt', params: { N: n, r, p: 1 }, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(sealed).toString('base64'),
  };
  options.edit?.(doc);
  return pem(options.type ?? 'ENCRYPTED SIGSTORE PRIVATE KEY', Buffer.from(JSON.stringify(doc)));
}

/** The other direction: opens a key file by the format alone. */
function decryptKey(text: string, password: string): { doc: any; privateKey: KeyObject } {
  const doc = JSON.parse(pemBody(text, 'ENCRYPTED SIGSTORE PRIVATE KEY').toString('utf8'));
  const { N, r, p } = doc.kdf.params;
  const opened = secretbox(derive(password, Buffer.from(doc.kdf.salt, 'base64'), N, r, p), Buffer.from(doc.cipher.nonce, 'base64'))
    .open(Buffer.from(doc.ciphertext, 'base64'));
  return { doc, privateKey: createPrivateKey({ key: Buffer.from(opened), format: 'der', type: 'pkcs8' }) };
}

const spki = (key: KeyObject) => (key.type === 'private' ? createPublicKey(key) : key).export({ type: 'spki', format: 'der' });
const p256 = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });

describe('key files', () => {
  it('writes a private key an independent reader opens, matching the public key', () => {
    const { privatePem, publicPem } = generateKeyPair(PASSWORD);
    const { doc, privateKey } = decryptKey(privatePem, PASSWORD);
    // go-securesystemslib's field order and values; salt and nonce of the sizes it makes.
    expect(Object.keys(doc)).toEqual(['kdf', 'cipher', 'ciphertext']);
    expect(JSON.stringify(doc.kdf.params)).toBe('{"N":65536,"r":8,"p":1}');
    expect([doc.kdf.name, doc.cipher.name]).toEqual(['scrypt', 'nacl/secretbox']);
    expect(Buffer.from(doc.kdf.salt, 'base64')).toHaveLength(32);
    expect(Buffer.from(doc.cipher.nonce, 'base64')).toHaveLength(24);
    // The box is the 16-byte tag followed by the PKCS #8 key.
    expect(Buffer.from(doc.ciphertext, 'base64')).toHaveLength(privateKey.export({ type: 'pkcs8', format: 'der' }).length + 16);
    expect(privateKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(spki(privateKey)).toEqual(pemBody(publicPem, 'PUBLIC KEY'));
    // And ocipkg reads back what it wrote, naming the pair alike from either half.
    const read = readPrivateKey(privatePem, PASSWORD);
    expect(keyId(read)).toBe(keyId(readPublicKey(publicPem)));
    expect(keyId(read)).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it.each([
    ['N=32768, the COSIGN type', { n: 32768, type: 'ENCRYPTED COSIGN PRIVATE KEY' }],
    ['N=65536, the SIGSTORE type', { n: 65536 }],
    ['N=131072', { n: 131072 }],
  ])('reads a key encrypted independently with %s', (_name, options) => {
    const { privateKey, publicKey } = p256();
    const read = readPrivateKey(encryptKey(privateKey, PASSWORD, options), PASSWORD);
    expect(spki(read)).toEqual(spki(publicKey));
  });

  it('reads a public key written independently, from a PEM with text around it', () => {
    const { publicKey } = p256();
    const text = `a comment\n${publicKey.export({ type: 'spki', format: 'pem' }) as string}trailing\n`;
    expect(spki(readPublicKey(text))).toEqual(spki(publicKey));
    expect(keyId(readPublicKey(text))).toBe(keyId(publicKey));
  });

  it('refuses a wrong password, damaged boxes, unsupported parameters and other key kinds, each as EKEY', () => {
    const { privateKey } = p256();
    const good = encryptKey(privateKey, PASSWORD);
    const refusal = (body: () => unknown) => {
      let message = '';
      const code = codeOfSync(() => {
        try {
          body();
        } catch (err) {
          message = (err as Error).message;
          throw err;
        }
      });
      expect(message).not.toContain('\n');
      return `${code}: ${message}`;
    };
    expect(refusal(() => readPrivateKey(good, 'wrong'))).toMatch(/^EKEY: wrong password/);
    const cut = (doc: Record<string, any>) => (doc.ciphertext = Buffer.from(doc.ciphertext, 'base64').subarray(0, 40).toString('base64'));
    expect(refusal(() => readPrivateKey(encryptKey(privateKey, PASSWORD, { edit: cut }), PASSWORD))).toMatch(/^EKEY: wrong password .*damaged/);
    const stub = (doc: Record<string, any>) => (doc.ciphertext = Buffer.alloc(10).toString('base64'));
    expect(refusal(() => readPrivateKey(encryptKey(privateKey, PASSWORD, { edit: stub }), PASSWORD))).toMatch(/^EKEY: .*ciphertext/);
    // Refused before deriving anything: N comes from the file.
    const huge = (doc: Record<string, any>) => (doc.kdf.params.N = 2 ** 30);
    expect(refusal(() => readPrivateKey(encryptKey(privateKey, PASSWORD, { n: 16384 }), PASSWORD))).toMatch(/^EKEY: .*unsupported scrypt parameters N=16384/);
    expect(refusal(() => readPrivateKey(encryptKey(privateKey, PASSWORD, { edit: huge }), PASSWORD))).toMatch(/^EKEY: .*N=1073741824/);
    expect(refusal(() => readPrivateKey(encryptKey(privateKey, PASSWORD, { n: 32768, r: 16 }), PASSWORD))).toMatch(/^EKEY: .*r=16/);
    const box = (doc: Record<string, any>) => (doc.cipher.name = 'aes-gcm');
    expect(refusal(() => readPrivateKey(encryptKey(privateKey, PASSWORD, { edit: box }), PASSWORD))).toMatch(/^EKEY: .*unknown cipher "aes-gcm"/);
    const nonce = (doc: Record<string, any>) => (doc.cipher.nonce = 'AAAA');
    expect(refusal(() => readPrivateKey(encryptKey(privateKey, PASSWORD, { edit: nonce }), PASSWORD))).toMatch(/^EKEY: .*nonce/);
    expect(refusal(() => readPrivateKey(good.replace(/SIGSTORE/g, 'OTHER'), PASSWORD))).toMatch(/^EKEY: .*"ENCRYPTED OTHER PRIVATE KEY"/);
    expect(refusal(() => readPrivateKey(pem('ENCRYPTED SIGSTORE PRIVATE KEY', Buffer.from('{"kdf"')), PASSWORD))).toMatch(/^EKEY: .*not JSON/);
    expect(refusal(() => readPrivateKey(good.slice(0, 200), PASSWORD))).toMatch(/^EKEY: .*not PEM/);
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    expect(refusal(() => readPrivateKey(encryptKey(p384.privateKey, PASSWORD, { n: 32768 }), PASSWORD))).toMatch(/^EKEY: .*EC secp384r1 .*only ECDSA P-256/);
    expect(refusal(() => readPublicKey(p384.publicKey.export({ type: 'spki', format: 'pem' }) as string))).toMatch(/^EKEY: .*EC secp384r1/);
    const ed25519 = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string;
    expect(refusal(() => readPublicKey(ed25519))).toMatch(/^EKEY: .*ed25519 key/);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    expect(refusal(() => readPublicKey(rsa.export({ type: 'spki', format: 'pem' }) as string))).toMatch(/^EKEY: .*rsa key/);
    // A PKCS #1 RSA key or a certificate are no `PUBLIC KEY`, whatever createPublicKey would take.
    expect(refusal(() => readPublicKey(rsa.export({ type: 'pkcs1', format: 'pem' }) as string))).toMatch(/^EKEY: .*"RSA PUBLIC KEY"/);
    expect(refusal(() => readPublicKey(pem('PUBLIC KEY', Buffer.from('not a key'))))).toMatch(/^EKEY: .*not a valid SPKI/);
  });
});

describe('signatures', () => {
  const payload = signingPayload({ registry: 'ghcr.io', repository: 'acme/zstd' }, `sha256:${'ab'.repeat(32)}`);

  it('verify round trip, and an independent signer and verifier agree with ocipkg', () => {
    const { privatePem, publicPem } = generateKeyPair(PASSWORD);
    const privateKey = readPrivateKey(privatePem, PASSWORD);
    const publicKey = readPublicKey(publicPem);
    const signature = signPayload(privateKey, payload);
    expect(verifyPayload(publicKey, payload, signature)).toBe(true);
    // DER (a SEQUENCE of two INTEGERs), base64: what node:crypto's plain verify takes for EC keys.
    expect(Buffer.from(signature, 'base64')[0]).toBe(0x30);
    expect(createVerify('SHA256').update(payload).verify(publicKey, Buffer.from(signature, 'base64'))).toBe(true);
    const independent = createSign('SHA256').update(payload).sign(privateKey).toString('base64');
    expect(verifyPayload(publicKey, payload, independent)).toBe(true);
  });

  it('fails for a tampered payload, another key, and signatures that are not base64 DER', () => {
    const { privateKey, publicKey } = p256();
    const signature = signPayload(privateKey, payload);
    const tampered = Buffer.from(payload.toString().replace('abab', 'abac'));
    expect(verifyPayload(publicKey, tampered, signature)).toBe(false);
    expect(verifyPayload(p256().publicKey, payload, signature)).toBe(false);
    // DER signatures are 70 to 72 bytes: only some base64 encodings end in padding to strip.
    let padded = signature;
    while (!padded.endsWith('=')) padded = signPayload(privateKey, payload);
    expect(verifyPayload(publicKey, payload, padded.replace(/=*$/, ''))).toBe(false);
    expect(verifyPayload(publicKey, payload, `${signature}\n`)).toBe(false);
    expect(verifyPayload(publicKey, payload, Buffer.from('not DER').toString('base64'))).toBe(false);
    const raw = createSign('SHA256').update(payload).sign({ key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64');
    expect(verifyPayload(publicKey, payload, raw)).toBe(false);
  });
});

describe('the signed payload', () => {
  const digest = `sha256:${'0123456789abcdef'.repeat(4)}`;

  it("is cosign's SimpleContainerImage, byte for byte", () => {
    expect(signingPayload({ registry: 'ghcr.io', repository: 'acme/zstd' }, digest).toString()).toBe(
      `{"critical":{"identity":{"docker-reference":"ghcr.io/acme/zstd"},"image":{"docker-manifest-digest":"${digest}"},"type":"cosign container image signature"},"optional":null}`,
    );
    // go-containerregistry's name for Docker Hub.
    expect(signingPayload({ registry: 'docker.io', repository: 'library/zlib' }, digest).toString()).toContain('"docker-reference":"index.docker.io/library/zlib"');
    expect(signingPayload({ registry: '127.0.0.1:5000', repository: 'a/b' }, digest, {}).toString()).toMatch(/"optional":null}$/);
  });

  it('puts annotations in optional as Go marshals a map: keys in UTF-8 byte order, HTML characters escaped', () => {
    const bytes = signingPayload({ registry: 'ghcr.io', repository: 'acme/zstd' }, digest, { version: '1.5.6', b: '<a&b>', a: 'x\u2028y', é: '1', z: '2', '😀': '3', 'ｚ': '4' });
    expect(bytes.toString()).toMatch(/,"optional":\{"a":"x\\u2028y","b":"\\u003ca\\u0026b\\u003e","version":"1.5.6","z":"2","é":"1","ｚ":"4","😀":"3"\}\}$/);
    expect(parsePayload(bytes)).toEqual({
      digest,
      dockerReference: 'ghcr.io/acme/zstd',
      annotations: { version: '1.5.6', b: '<a&b>', a: 'x\u2028y', é: '1', z: '2', '😀': '3', 'ｚ': '4' },
    });
    expect(parsePayload(signingPayload({ registry: 'ghcr.io', repository: 'acme/zstd' }, digest))).toEqual({ digest, dockerReference: 'ghcr.io/acme/zstd' });
  });

  it('refuses other types, malformed JSON, and digests that are not sha256, as ESIGNATURE', () => {
    const good = JSON.parse(signingPayload({ registry: 'ghcr.io', repository: 'acme/zstd' }, digest).toString());
    const refusal = (value: unknown) => codeOfSync(() => parsePayload(Buffer.from(typeof value === 'string' ? value : JSON.stringify(value))));
    expect(refusal({ ...good, critical: { ...good.critical, type: 'atomic container signature' } })).toBe('ESIGNATURE');
    expect(refusal({ ...good, critical: { ...good.critical, type: 'Cosign container image signature' } })).toBe('ESIGNATURE');
    expect(refusal({ ...good, critical: { ...good.critical, image: { 'docker-manifest-digest': 'sha512:00' } } })).toBe('ESIGNATURE');
    expect(refusal({ ...good, critical: { ...good.critical, identity: {} } })).toBe('ESIGNATURE');
    expect(refusal({ ...good, optional: 'x' })).toBe('ESIGNATURE');
    expect(refusal('{"critical":')).toBe('ESIGNATURE');
    expect(refusal('null')).toBe('ESIGNATURE');
    expect(refusal(`\ufeff${JSON.stringify(good)}`)).toBe('ESIGNATURE');
    // Go would match "Critical" to the same field as "critical", and take the last one.
    expect(refusal({ ...good, Critical: good.critical })).toBe('ESIGNATURE');
    expect(codeOfSync(() => signingPayload({ registry: 'ghcr.io', repository: 'a' }, 'sha256:00'))).toBe('EINPUT');
  });
});

describe('ocipkg generate-key-pair', () => {
  /** The command as the CLI will run it (runMain: one-line errors, exit codes), from dist/, stdin a pipe. */
  function generate(cwd: string, args: string[], password?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const script = [
      `import { runMain } from ${JSON.stringify(pathToFileURL(join(REPO, 'dist/cli/common.js')).href)};`,
      `import { runGenerateKeyPair } from ${JSON.stringify(pathToFileURL(join(REPO, 'dist/cli/keys.js')).href)};`,
      "await runMain('ocipkg', process.argv.slice(1), () => runGenerateKeyPair(process.argv.slice(1)));",
    ].join('\n');
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !['COSIGN_PASSWORD', 'OCIPKG_PROGRESS', 'OCIPKG_DEBUG'].includes(name)));
    if (password !== undefined) env.COSIGN_PASSWORD = password;
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, '--', ...args], { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
      child.stdin.end();
    });
  }

  it('writes cosign.key (0600) and cosign.pub with COSIGN_PASSWORD, and prints their paths', async () => {
    const dir = await tempDir('keys');
    const result = await generate(dir, [], PASSWORD);
    expect(result).toEqual({ code: 0, stdout: 'cosign.key\ncosign.pub\n', stderr: '' });
    const privatePem = await readFile(join(dir, 'cosign.key'), 'utf8');
    const publicPem = await readFile(join(dir, 'cosign.pub'), 'utf8');
    expect(privatePem).toMatch(/^-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n[\s\S]+\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n$/);
    expect(publicPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n$/);
    expect((await stat(join(dir, 'cosign.key'))).mode & 0o777).toBe(0o600);
    expect(spki(decryptKey(privatePem, PASSWORD).privateKey)).toEqual(pemBody(publicPem, 'PUBLIC KEY'));
  });

  it('takes --output-key-prefix', async () => {
    const dir = await tempDir('keys');
    const result = await generate(dir, ['--output-key-prefix', 'release/acme'], '');
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toMatch(/^ocipkg: cannot write release\/acme\.key: .*\n$/);
    const written = await generate(dir, ['--output-key-prefix=acme'], '');
    expect(written.stdout).toBe('acme.key\nacme.pub\n');
    // Set and empty is a password too, as cosign reads COSIGN_PASSWORD.
    expect(keyId(readPrivateKey(await readFile(join(dir, 'acme.key'), 'utf8'), ''))).toBe(keyId(readPublicKey(await readFile(join(dir, 'acme.pub'), 'utf8'))));
  });

  it('without COSIGN_PASSWORD and no terminal: one line, exit 1, nothing written', async () => {
    const dir = await tempDir('keys');
    const result = await generate(dir, []);
    expect(result).toEqual({ code: 1, stdout: '', stderr: 'ocipkg: no password for the new key: set COSIGN_PASSWORD (there is no terminal to ask on)\n' });
    expect(existsSync(join(dir, 'cosign.key'))).toBe(false);
  });

  it('refuses to replace an existing key without a terminal to confirm, naming the file', async () => {
    const dir = await tempDir('keys');
    await writeFile(join(dir, 'cosign.pub'), 'mine\n');
    const result = await generate(dir, [], PASSWORD);
    expect(result).toEqual({ code: 1, stdout: '', stderr: 'ocipkg: cosign.pub already exists (remove it to write a new key pair)\n' });
    expect(await readFile(join(dir, 'cosign.pub'), 'utf8')).toBe('mine\n');
    expect(existsSync(join(dir, 'cosign.key'))).toBe(false);
    await writeFile(join(dir, 'cosign.key'), 'mine\n');
    expect((await generate(dir, [], PASSWORD)).stderr).toBe('ocipkg: cosign.key and cosign.pub already exist (remove them to write a new key pair)\n');
    expect((await generate(dir, ['extra'], PASSWORD)).code).toBe(2);
  });
});

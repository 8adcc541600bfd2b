import { spawnSync } from 'node:child_process';
import { mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO, tempDir } from './helpers/cli.js';

/**
 * The CommonJS API's failures as binding.gyp's `node -p` shows them, where node-gyp prints all of
 * it: the CLI's one line and where the call was made, not the ~2 KB minified source line of the
 * throw site, a stack through the bundle and the CLI's whole output again as a `[cause]` (~5 KB).
 */
const MISSING = '127.0.0.1:1/none:1';

let consumer: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  consumer = await tempDir('cjs-errors');
  // require('ocipkg') resolved by name through node_modules, as from an addon's directory.
  await mkdir(join(consumer, 'node_modules'));
  await symlink(REPO, join(consumer, 'node_modules', 'ocipkg'), 'dir');
  const nowhere = await tempDir('cjs-errors-nowhere');
  env = { ...process.env, OCIPKG_DATA_DIR: join(consumer, 'store'), OCIPKG_PROJECT_DIR: nowhere, OCIPKG_RETRY_BASE_MS: '5', OCIPKG_DEBUG: '' };
});

const nodeP = (expression: string, extra: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, ['-p', expression], { cwd: consumer, env: { ...env, ...extra }, encoding: 'utf8' });

/** stderr without Node's closing `Node.js vX.Y.Z` and blank lines. */
const shown = (stderr: string) => stderr.split('\n').filter((line) => line !== '' && !/^Node\.js v\d/.test(line));

describe("the CommonJS API's errors under node -p", () => {
  it.each([
    ['the CLI fails (the registry cannot be reached)', {}, /^ocipkg-link: cannot reach registry 127\.0\.0\.1:1: .*$/],
    ['the store answers in-process (offline)', { OCIPKG_OFFLINE: '1' }, /^ocipkg-link: 127\.0\.0\.1:1\/none:1 \(.*\) is not in the store and ocipkg is offline; .*$/],
  ])('%s: the message and the caller, nothing more', (_, extra, message) => {
    const result = nodeP(`require('ocipkg').libraries('${MISSING}')`, extra);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    const lines = shown(result.stderr);
    expect(lines, result.stderr).toHaveLength(2);
    expect(lines[0]).toMatch(message);
    expect(lines[1]).toBe('    at [eval]:1:19');
    expect(result.stderr.length).toBeLessThan(400);
  });

  it('refuses an option it does not know (a misspelt shared would link the static build)', () => {
    const result = nodeP(`require('ocipkg').libraries('${MISSING}', { share: true })`);
    expect(result.status).toBe(1);
    expect(shown(result.stderr)).toEqual(['ocipkg: unknown option "share" (options: target, shared, offline, forMake)', '    at [eval]:1:19']);
  });

  it('keeps err.message the CLI\'s line for a caller that catches it', () => {
    const result = nodeP(`try { require('ocipkg').libraries('${MISSING}') } catch (err) { JSON.stringify([err.message, err instanceof Error, 'cause' in err]) }`);
    expect(result.status, result.stderr).toBe(0);
    const [message, isError, hasCause] = JSON.parse(result.stdout) as [string, boolean, boolean];
    expect(message).toMatch(/^ocipkg-link: cannot reach registry 127\.0\.0\.1:1: [^\n]*$/);
    expect([isError, hasCause]).toEqual([true, false]);
  });

  it('OCIPKG_DEBUG=1 keeps the stack and the cause', () => {
    const result = nodeP(`require('ocipkg').libraries('${MISSING}')`, { OCIPKG_DEBUG: '1' });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^Error: ocipkg-link: cannot reach registry 127\.0\.0\.1:1: /m);
    expect(result.stderr).toMatch(/^ {4}at runCli \(/m);
    expect(result.stderr).toContain('[cause]: Error: Command failed: ');
  });
});

import { readdirSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { withProjectLock } from '../src/store/projects.js';
import { tempDir } from './helpers/cli.js';

/** The project lock's turns and its recovery from a crashed holder (the concurrent CLI runs are in project.test.ts). */
describe('withProjectLock', () => {
  const lockFile = (root: string, dir: string) => join(root, 'projects', `${createHash('sha256').update(dir).digest('hex').slice(0, 32)}.lock`);

  it('runs one holder at a time, the second after the first, which it waited for', async () => {
    const root = await tempDir('lock-store');
    const order: string[] = [];
    let waited = 0;
    let release!: () => void;
    const first = withProjectLock(root, '/p', () => {}, async () => {
      order.push('first in');
      await new Promise<void>((resolve) => (release = resolve));
      order.push('first out');
    });
    const second = withProjectLock(root, '/p', () => waited++, async () => {
      order.push('second in');
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    release();
    await Promise.all([first, second]);
    expect(order).toEqual(['first in', 'first out', 'second in']);
    expect(waited).toBe(1);
    expect(readdirSync(join(root, 'projects'))).toEqual([]);
  });

  it('takes over a lock whose holder no longer runs', async () => {
    const root = await tempDir('lock-store');
    await withProjectLock(root, '/q', () => {}, async () => {});
    // A holder killed while it held the lock: a pid no process has.
    writeFileSync(lockFile(root, '/q'), 'lock-4194304-0-deadbeef');
    let waited = false;
    expect(await withProjectLock(root, '/q', () => (waited = true), async () => 'ran')).toBe('ran');
    expect(waited).toBe(false);
    expect(readdirSync(join(root, 'projects'))).toEqual([]);
  });
});

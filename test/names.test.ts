import { describe, expect, it } from 'vitest';
import { isSiblingTemp, ownerOf, siblingTempName, uniqueName } from '../src/fs/names.js';

/** The staging-name format has one writer and one reader; prune decides what to delete by it. */
describe('work-in-progress names', () => {
  it('gives back the pid of the process that made a name, for every prefix the store uses', () => {
    for (const prefix of ['install-', 'prune-', 'verify-', '.1.json.tmp-', '.index.json.tmp-']) {
      const name = uniqueName(prefix);
      expect(name.startsWith(prefix)).toBe(true);
      expect(ownerOf(name)).toBe(process.pid);
    }
  });

  it('never repeats a name within a process', () => {
    const names = new Set(Array.from({ length: 10_000 }, () => uniqueName('install-')));
    expect(names.size).toBe(10_000);
  });

  it('recognises sibling temp files and nothing else as such', () => {
    const temp = siblingTempName('1.json');
    expect(temp.startsWith('.1.json.tmp-')).toBe(true);
    expect(isSiblingTemp(temp)).toBe(true);
    expect(ownerOf(temp)).toBe(process.pid);
    for (const other of ['1.json', uniqueName('install-'), '.1.json', '.tmp-1-0-abcdefgh', '.1.json.tmp-12-0123456789ab']) {
      expect(isSiblingTemp(other), other).toBe(false);
    }
  });

  it('claims no owner for names it did not make', () => {
    for (const other of ['install-', 'install-12', 'install-x-0-abcdefgh', 'install-12-0-ABCDEFGH', 'install-12-0-abc', 'sha256']) {
      expect(ownerOf(other), other).toBeUndefined();
    }
  });
});

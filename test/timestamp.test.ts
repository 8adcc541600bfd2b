import { describe, expect, it } from 'vitest';
import { isoTimestamp } from '../src/timestamp.js';

describe('isoTimestamp', () => {
  it("writes what Date's toISOString writes, for times across the range a store records", () => {
    const times = [0, 1, 999, 951782400000 /* 2000-02-29 */, 1709164800123, 2147483647000, 4102444799999, Date.now()];
    for (let t = 0; t < 5e12; t += 7919 * 86400 * 1000 + 12345) times.push(t);
    for (const t of times) expect(isoTimestamp(t)).toBe(new Date(t).toISOString());
  });

  it('is now when no time is given', () => {
    const before = Date.now();
    const now = Date.parse(isoTimestamp());
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
  });
});

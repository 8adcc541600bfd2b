import { describe, expect, it } from 'vitest';
import { parseReference } from '../src/reference.js';

/** parseReference remembers what it parsed (the warm path parses each image several times). */
describe('parseReference', () => {
  it('gives each caller its own copy of a reference parsed before', () => {
    const first = parseReference('ghcr.io/acme/zstd:1.5');
    first.tag = 'changed';
    expect(parseReference('ghcr.io/acme/zstd:1.5')).toEqual({ kind: 'registry', registry: 'ghcr.io', repository: 'acme/zstd', tag: '1.5' });
  });

  it('refuses a bad reference every time it is asked', () => {
    for (let i = 0; i < 2; i++) expect(() => parseReference('ghcr.io/Acme/zstd')).toThrow(/must be lowercase/);
  });
});

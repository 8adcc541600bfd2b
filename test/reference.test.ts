import { describe, expect, it } from 'vitest';
import { isLoopbackRegistry, parseReference } from '../src/reference.js';

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

describe('isLoopbackRegistry', () => {
  it('knows every literal spelling of this machine, with or without a port', () => {
    const spellings = [
      'localhost', 'localhost:5055', 'LOCALHOST:5055', 'localhost.:5055', 'registry.localhost:5055', 'A.B.LOCALHOST.',
      '127.0.0.1', '127.1.2.3:5055', '127.1:5055', '127.0.1', '0x7f.1', '2130706433:5055',
      '0.0.0.0:5055', '0:5055', '[::1]', '[::1]:5055', '[0:0:0:0:0:0:0:1]', '[::]:5055', '[::ffff:127.0.0.1]:5055', '[::ffff:7f00:1]', '[::ffff:0.0.0.0]',
    ];
    expect(spellings.filter((s) => !isLoopbackRegistry(s))).toEqual([]);
  });

  it('takes nothing else for it (names that resolve here cannot be told without DNS)', () => {
    const others = ['example.com', 'localhost.example.com', 'notlocalhost:5055', 'localhost.localdomain', '128.0.0.1', '1.127.0.0', '10.0.0.1:5055', '[::2]', '[::ffff:10.0.0.1]', '[fe80::1]', 'registry-1.docker.io', ''];
    expect(others.filter((s) => isLoopbackRegistry(s))).toEqual([]);
  });
});


import { describe, expect, it } from 'vitest';
import { MAX_REQUIREMENT_PATHS, walkRequirementsNow, type Visited } from '../src/requirements.js';
import { codeOfSync } from './helpers/errors.js';

/**
 * The requirement walk on graphs given as data (the registry-backed cases are in
 * requires-chain.test.ts and requires-generated.test.ts): a graph's shape alone decides these.
 */
const graphVisit = (graph: Record<string, string[]>) => (image: string): Visited<string> => ({ value: image, requires: graph[image] ?? [], identity: image });
const ref = (name: string) => `registry.example/acme/${name}:1`;

/** `levels` layers of two packages each, every package of one layer requiring both of the next. */
function diamonds(levels: number): Record<string, string[]> {
  const graph: Record<string, string[]> = {};
  for (let level = 0; level < levels; level++) {
    const next = level + 1 < levels ? [ref(`l${level + 1}a`), ref(`l${level + 1}b`)] : [];
    graph[ref(`l${level}a`)] = next;
    graph[ref(`l${level}b`)] = next;
  }
  return graph;
}

describe('walkRequirementsNow', () => {
  it('links a package shared by many paths once, at its last position', () => {
    const walked = walkRequirementsNow([ref('l0a')], graphVisit(diamonds(4))).map((w) => w.image);
    expect(walked).toEqual([ref('l0a'), ref('l1a'), ref('l1b'), ref('l2a'), ref('l2b'), ref('l3a'), ref('l3b')]);
  });

  it('refuses, in one line, a graph of stacked diamonds whose paths double at every level', () => {
    // 40 levels are 2^41 paths: before the limit the walk followed every one of them (hung).
    let message = '';
    expect(codeOfSync(() => {
      try {
        walkRequirementsNow([ref('l0a')], graphVisit(diamonds(40)));
      } catch (err) {
        message = (err as Error).message;
        throw err;
      }
    })).toBe('EMANIFEST');
    expect(message).toContain(`by more than ${MAX_REQUIREMENT_PATHS} paths`);
    expect(message.split('\n')).toHaveLength(1);
    // 11 levels are 2^12 - 1 paths, within the limit: walked, each package once.
    expect(walkRequirementsNow([ref('l0a')], graphVisit(diamonds(11)))).toHaveLength(21);
  });
});

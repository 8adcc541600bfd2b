import { describe, expect, it } from 'vitest';
import { MAX_REQUIREMENT_DEPTH, walkRequirementsNow, type Visited } from '../src/requirements.js';
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

  it('walks a graph of stacked diamonds, whose paths double at every level, visiting each package once', () => {
    // 40 levels are 2^41 paths: a walk following each of them would not end.
    const visits = new Map<string, number>();
    const visit = graphVisit(diamonds(40));
    const walked = walkRequirementsNow([ref('l0a')], (image) => {
      visits.set(image, (visits.get(image) ?? 0) + 1);
      return visit(image);
    });
    expect(walked.map((w) => w.image)).toEqual([ref('l0a'), ...Array.from({ length: 39 }, (_, i) => [ref(`l${i + 1}a`), ref(`l${i + 1}b`)]).flat()]);
    expect([...visits.values()].every((count) => count === 1)).toBe(true);
    expect(visits.size).toBe(79);
  });

  it('finds requirements nested too deep through a package it reached before by a shorter path', () => {
    // top requires c3 (62 packages below it: within the limit), then c0, whose chain reaches c3 at depth 5.
    const name = (i: number) => `registry.example/acme/c${i}:1`;
    const graph: Record<string, string[]> = { [ref('top')]: [name(3), name(0)] };
    for (let i = 0; i < 64; i++) graph[name(i)] = i < 63 ? [name(i + 1)] : [];
    let message = '';
    expect(codeOfSync(() => {
      try {
        walkRequirementsNow([ref('top')], graphVisit(graph));
      } catch (err) {
        message = (err as Error).message;
        throw err;
      }
    })).toBe('EMANIFEST');
    expect(message).toContain(`nested more than ${MAX_REQUIREMENT_DEPTH} deep (${ref('top')} -> ${name(0)} -> ${name(1)} -> ...`);
    expect(message).toContain(`${MAX_REQUIREMENT_DEPTH + 1} packages)`);
    // Without the longer way in, the same packages are within the limit.
    expect(walkRequirementsNow([ref('top')], graphVisit({ ...graph, [ref('top')]: [name(3)] }))).toHaveLength(62);
  });
});

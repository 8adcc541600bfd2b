import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO, tempDir } from './helpers/cli.js';
import { documentedLayers, importCycles, importGraph, layerOf, layeringViolations } from './helpers/imports.js';

/**
 * src/ keeps the layering the README documents: every file belongs to a documented layer, imports
 * point only down (or within a layer), and no import cycle exists, static or through `import()`.
 */
const SRC = join(REPO, 'src');

async function tree(files: Record<string, string>): Promise<string> {
  const root = await tempDir('layering');
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  }
  return root;
}

describe('the layering of src/', () => {
  it('documents a layer for every source file', async () => {
    const layers = documentedLayers(await readFile(join(REPO, 'README.md'), 'utf8'));
    expect(layers.size).toBeGreaterThan(10);
    const undocumented = [...importGraph(SRC).keys()].filter((file) => layerOf(file, layers) === undefined);
    expect(undocumented).toEqual([]);
  });

  it('has no import that reaches a higher layer', async () => {
    const layers = documentedLayers(await readFile(join(REPO, 'README.md'), 'utf8'));
    expect(layeringViolations(importGraph(SRC), layers)).toEqual([]);
  });

  it('has no import cycle, dynamic imports included', () => {
    const graph = importGraph(SRC);
    // The graph is really read: the warm path's one dynamic import is in it.
    expect(graph.get('cold.ts')).toEqual(new Set(['cold-path.ts']));
    expect(importCycles(graph)).toEqual([]);
  });
});

describe('the import checks themselves', () => {
  it('find a cycle closed by a dynamic import, and ignore type-only imports', async () => {
    const root = await tree({
      'a.ts': "import { b } from './b.js';\nexport const a = () => b;\n",
      'b.ts': "import type { T } from './c.js';\nexport const b = () => import('./c.js');\nexport type U = T;\n",
      'c.ts': "export type T = typeof import('./a.js');\nexport const c = async () => (await import('./a.js')).a;\n",
      'd.ts': "import type { a } from './a.js';\nexport type D = typeof a;\n",
    });
    expect(importCycles(importGraph(root))).toEqual([['a.ts', 'b.ts', 'c.ts', 'a.ts']]);
    expect(importGraph(root).get('d.ts')).toEqual(new Set());
  });

  it('find an import that points up, by file and by folder rows', async () => {
    const root = await tree({
      'low/x.ts': "import { y } from '../high.js';\nexport const x = y;\n",
      'high.ts': "export { x } from './low/x.js';\nexport const y = 1;\n",
    });
    const layers = documentedLayers('### Layout of the code\n\n| layer | where | job |\n|---|---|---|\n| 0 | `src/low/` | low |\n| 1 | `src/high.ts` | high |\n');
    expect(layeringViolations(importGraph(root), layers)).toEqual(['low/x.ts (layer 0) imports high.ts (layer 1)']);
  });
});

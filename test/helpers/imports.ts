import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/**
 * The import graph of a source tree, as the layering test reads it: every static import and export
 * `from`, every side-effect import and every dynamic `import()` between the tree's own files. Type-only
 * imports are left out: TypeScript erases them, so they load nothing and cannot form a cycle at run time.
 */
export type ImportGraph = Map<string, Set<string>>;

const STATIC = /^\s*(?:import|export)\s+(?!type\s)(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm;
const DYNAMIC = /(?<!typeof\s)\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.c?ts$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** `root`-relative paths with forward slashes: `fs/names.ts`. */
export function importGraph(root: string): ImportGraph {
  const graph: ImportGraph = new Map();
  const files = sourceFiles(root);
  const known = new Set(files.map((f) => relative(root, f).split('\\').join('/')));
  for (const file of files) {
    const from = relative(root, file).split('\\').join('/');
    const edges = new Set<string>();
    const text = readFileSync(file, 'utf8');
    for (const pattern of [STATIC, DYNAMIC]) {
      for (const match of text.matchAll(pattern)) {
        const spec = match[1]!;
        if (!spec.startsWith('.')) continue;
        const to = relative(root, resolve(dirname(file), spec)).split('\\').join('/').replace(/\.js$/, '.ts').replace(/\.cjs$/, '.cts');
        if (!known.has(to)) throw new Error(`${from} imports ${spec}, which is not a file of the tree`);
        edges.add(to);
      }
    }
    graph.set(from, edges);
  }
  return graph;
}

/** Every import cycle, each as the files in order with the first repeated at the end. */
export function importCycles(graph: ImportGraph): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string) => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of [...graph.keys()].sort()) if (!state.has(node)) visit(node);
  return cycles;
}

/**
 * The layers the README's "Layout of the code" table gives, lowest first: rows
 * `| N | `src/dir/`, `src/file.ts` | job |`. Returns path prefix (relative to src/) -> layer.
 */
export function documentedLayers(readme: string): Map<string, number> {
  const section = readme.slice(readme.indexOf('### Layout of the code'));
  const layers = new Map<string, number>();
  for (const row of section.matchAll(/^\|\s*(\d+)\s*\|([^|]+)\|/gm)) {
    for (const path of row[2]!.matchAll(/`src\/([^`]+)`/g)) layers.set(path[1]!, Number(row[1]));
  }
  return layers;
}

/** The layer of a file: its own row, else the row of the closest folder holding it. */
export function layerOf(file: string, layers: Map<string, number>): number | undefined {
  if (layers.has(file)) return layers.get(file);
  const folders = [...layers.keys()].filter((path) => path.endsWith('/') && file.startsWith(path));
  const closest = folders.sort((a, b) => b.length - a.length)[0];
  return closest === undefined ? undefined : layers.get(closest);
}

/** Imports that reach up: from a file to one in a higher layer. */
export function layeringViolations(graph: ImportGraph, layers: Map<string, number>): string[] {
  const found: string[] = [];
  for (const [from, edges] of graph) {
    const own = layerOf(from, layers);
    for (const to of edges) {
      const theirs = layerOf(to, layers);
      if (own !== undefined && theirs !== undefined && theirs > own) found.push(`${from} (layer ${own}) imports ${to} (layer ${theirs})`);
    }
  }
  return found;
}

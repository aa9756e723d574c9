/**
 * The architecture stays visible: the folders of src/ are the parts of DESIGN.md, and an
 * import between two of them goes one way only. A cycle between folders (flow ↔ recovery
 * was one, through a type) means two parts no longer have an order; this test fails on one,
 * naming the files that close it. Type-only imports count: they tie the parts as much.
 */
import { describe, it, expect } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../src');

/** Every .ts file under `dir`. */
function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** The relative module specifiers a file imports or re-exports (static and dynamic). */
export function specifiers(text: string): string[] {
  const out: string[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"](\.{1,2}\/[^'"]+)['"]/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) out.push(m[1]!);
  return out;
}

/** folder → folder edges, each with one file pair that makes it. */
export function folderGraph(files: Map<string, string>, root: string): Map<string, Map<string, string>> {
  const g = new Map<string, Map<string, string>>();
  const folderOf = (f: string) => path.relative(root, f).split(path.sep)[0]!;
  for (const [file, text] of files) {
    const from = folderOf(file);
    for (const spec of specifiers(text)) {
      const target = path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts'));
      const to = folderOf(target);
      if (to === from || to.startsWith('..') || to.endsWith('.ts')) continue;
      if (!g.has(from)) g.set(from, new Map());
      if (!g.get(from)!.has(to)) g.get(from)!.set(to, `${path.relative(root, file)} → ${spec}`);
    }
  }
  return g;
}

/** One cycle among the folders, as the edges that make it, or null. */
export function findCycle(g: Map<string, Map<string, string>>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    state.set(n, 'open');
    stack.push(n);
    for (const m of g.get(n)?.keys() ?? []) {
      if (state.get(m) === 'open') {
        const loop = [...stack.slice(stack.indexOf(m)), m];
        return loop.slice(1).map((to, i) => `${loop[i]} → ${to} (${g.get(loop[i]!)!.get(to)})`);
      }
      if (state.get(m) === undefined) {
        const c = visit(m);
        if (c !== null) return c;
      }
    }
    stack.pop();
    state.set(n, 'done');
    return null;
  };
  for (const n of g.keys()) {
    if (state.get(n) !== undefined) continue;
    const c = visit(n);
    if (c !== null) return c;
  }
  return null;
}

describe('the folders of src/ import one another one way only', () => {
  it('finds a cycle between folders when there is one, type-only imports included', () => {
    const root = '/x/src';
    const files = new Map([
      ['/x/src/flow/flow.ts', "import type { Rebuild } from '../recovery/rebuild.js';\nimport { seqAdd } from '../wire/seq.js';"],
      ['/x/src/recovery/rebuild.ts', "import { FlowTable } from '../flow/table.js';"],
      ['/x/src/wire/seq.ts', "export const x = 1;"],
    ]);
    const c = findCycle(folderGraph(files, root));
    expect(c).not.toBeNull();
    expect(c!.join(' ')).toMatch(/flow → recovery .*recovery → flow/);
    files.set('/x/src/flow/flow.ts', "import { seqAdd } from '../wire/seq.js';");
    expect(findCycle(folderGraph(files, root))).toBeNull();
  });

  it('src/ has no cycle between folders', () => {
    const files = new Map(sources(SRC).map((f) => [f, readFileSync(f, 'utf8')] as const));
    expect(files.size).toBeGreaterThan(50);
    const g = folderGraph(files, SRC);
    expect(g.get('recovery')?.has('flow')).toBe(true); // the graph is really read
    expect(findCycle(g)).toBeNull();
  });
});

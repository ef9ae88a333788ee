#!/usr/bin/env bun
// Reads a `.cpuprofile` (from `bun --cpu-prof`) and prints where the time went: self time per function
// and inclusive time (the function and everything it called), as shares of all samples.
//
//   bun bench/cpuprofile-summary.ts <file.cpuprofile> [topSelf=30] [topInclusive=50]
export {};

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, topSelf = '30', topInclusive = '50'] = process.argv.slice(2);
if (!file) {
  console.error('usage: bun bench/cpuprofile-summary.ts <file.cpuprofile> [topSelf] [topInclusive]');
  process.exit(2);
}
const profile = (await Bun.file(file).json()) as Profile;
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parentOf = new Map<number, number>();
for (const n of profile.nodes) for (const child of n.children ?? []) parentOf.set(child, n.id);

const label = (n: ProfileNode) =>
  `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber}`;

const selfByNode = new Map<number, number>();
profile.samples.forEach((id, i) => selfByNode.set(id, (selfByNode.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const total = profile.timeDeltas.reduce((a, b) => a + b, 0);

const self = new Map<string, number>();
const inclusive = new Map<string, number>();
for (const [id, time] of selfByNode) {
  const own = label(nodes.get(id)!);
  self.set(own, (self.get(own) ?? 0) + time);
  // Count each function once per stack, so recursion does not inflate its share.
  const seen = new Set<string>();
  for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
    const name = label(nodes.get(at)!);
    if (seen.has(name)) continue;
    seen.add(name);
    inclusive.set(name, (inclusive.get(name) ?? 0) + time);
  }
}

const top = (m: Map<string, number>, k: number) =>
  [...m].sort((a, b) => b[1] - a[1]).slice(0, k)
    .map(([name, time]) => `${((100 * time) / total).toFixed(1).padStart(5)}%  ${name}`).join('\n');
console.log(`${(total / 1000).toFixed(0)} ms sampled\n--- self ---\n${top(self, Number(topSelf))}\n--- inclusive ---\n${top(inclusive, Number(topInclusive))}`);

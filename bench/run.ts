#!/usr/bin/env bun
// `bun run bench` (package.json: "bench": "bun bench/run.ts"): runs every suite, prints
//
//   | benchmark | ferry | baseline | ratio | target | ok |
//
// and writes bench/results/latest.json. Each figure comes with a baseline measured in the same run on the
// same machine (it is noisy), so read the ratio, not the absolute numbers.
//
//   bun bench/run.ts                   the whole bench (~6–7 min; chromium alone is ~4–5 min)
//   bun bench/run.ts --quick           a smaller version of every suite (~45 s)
//   bun bench/run.ts --only apply,catchup   (writes bench/results/only-apply,catchup.json instead)
//
// Adding rows (e.g. the Chromium suites): write a module exporting a `Suite` (bench/lib.ts: `run`
// returns `Row[]`, each with its own baseline and target) and add it to SUITES below. Nothing else
// changes: the table, latest.json and the ok column come from the rows.
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { applySuite } from './apply.ts';
import { bundleSuite } from './bundle.ts';
import { catchupSuite } from './catchup.ts';
import { chromiumSuite } from './chromium.ts';
import { denoSuite } from './deno.ts';
import { fanoutSuite } from './fanout.ts';
import { latencySuite } from './latency.ts';
import { logicSuite } from './logic.ts';
import { scaleSuite } from './scale.ts';
import { ratioOf, round, rowOk, targetText, type Row, type Suite } from './lib.ts';

const SUITES: Suite[] = [applySuite, logicSuite, latencySuite, denoSuite, catchupSuite, fanoutSuite, scaleSuite, chromiumSuite, bundleSuite];

function parseArgs(argv: string[]) {
  const quick = argv.includes('--quick');
  const i = argv.indexOf('--only');
  const only = i >= 0 ? (argv[i + 1] ?? '').split(',').filter(Boolean) : null;
  const unknown = only?.filter((name) => !SUITES.some((s) => s.name === name)) ?? [];
  if (unknown.length > 0) throw new Error(`unknown suite ${unknown.join(', ')}; suites: ${SUITES.map((s) => s.name).join(', ')}`);
  return { quick, only, suites: only ? SUITES.filter((s) => only.includes(s.name)) : SUITES };
}

const figure = (x: number | null, unit: string) => {
  if (x === null || !Number.isFinite(x)) return '—';
  const n = round(x);
  return `${n >= 10_000 ? n.toLocaleString('en-US') : n} ${unit}`;
};

function table(rows: Row[]): string {
  const lines = [
    '| benchmark | ferry | baseline | ratio | target | ok |',
    '|---|---:|---:|---:|---:|:---:|',
  ];
  for (const row of rows) {
    const ratio = ratioOf(row);
    const ok = rowOk(row);
    lines.push(`| ${row.benchmark} | ${figure(row.ferry, row.unit)} | ${figure(row.baseline, row.unit)} | ${
      ratio === null ? '—' : `${round(ratio, 2)}×`} | ${targetText(row)} | ${ok === null ? '—' : ok ? 'yes' : '**no**'} |`);
  }
  return lines.join('\n');
}

async function gitDescribe(): Promise<string> {
  const run = async (args: string[]) => {
    const proc = Bun.spawn(['git', ...args], { cwd: join(import.meta.dir, '..'), stdout: 'pipe', stderr: 'ignore' });
    return (await new Response(proc.stdout).text()).trim();
  };
  const [head, dirty] = await Promise.all([run(['rev-parse', '--short', 'HEAD']), run(['status', '--porcelain'])]);
  return `${head || 'unknown'}${dirty ? '+dirty' : ''}`;
}

async function main() {
  const { quick, only, suites } = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const rows: Row[] = [];
  const failures: string[] = [];
  const log = (line: string) => console.error(line);
  for (const suite of suites) {
    log(`▶ ${suite.name}${quick ? ' (quick)' : ''}`);
    const t = performance.now();
    try {
      rows.push(...(await suite.run({ quick, log })));
    } catch (error) {
      failures.push(`${suite.name}: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
      log(`✗ ${suite.name} failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    log(`  ${suite.name} took ${round((performance.now() - t) / 1000)} s`);
  }
  const seconds = round((performance.now() - started) / 1000);
  console.log(table(rows));
  const met = rows.filter((r) => rowOk(r) === true).length;
  const targeted = rows.filter((r) => rowOk(r) !== null).length;
  console.log(`\n${met}/${targeted} targets met in ${seconds} s${quick ? ' (--quick)' : ''}; ratio = ferry / baseline.`);
  const results = {
    at: new Date().toISOString(), commit: await gitDescribe(), quick, suites: suites.map((s) => s.name), seconds,
    machine: { cpus: availableParallelism(), bun: Bun.version, platform: `${process.platform}-${process.arch}` },
    rows: rows.map((r) => ({ ...r, ratio: ratioOf(r), ok: rowOk(r), targetText: targetText(r) })),
    failures,
  };
  const dir = join(import.meta.dir, 'results');
  mkdirSync(dir, { recursive: true });
  // A partial run must not replace the figures of the last whole one.
  writeFileSync(join(dir, only ? `only-${only.join(',')}.json` : 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  if (failures.length > 0) {
    for (const f of failures) console.error(`\n${f}`);
    process.exit(1);
  }
  process.exit(0);
}

await main();

// The side effects the effect suites run (AppDeps.effects), named so a server process on another runtime
// (target-server.ts) runs the very same handlers. Each delivery appends one JSON line to `log` (a file in
// the server's folder): `{ id, name, attempt, phase }`, so a suite sees every call from outside the process.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { EffectFailure, type EffectHandlers } from '../../server/effects.ts';

export interface EffectLine {
  id: string;
  name: string;
  attempt: number;
  /** `start`: the handler began (and may never finish); `done`: it returned. */
  phase: 'start' | 'done';
  assignee?: string;
}

/**
 * `audit`: every applied op on `items`. `notify_assignee`: an item whose `assignee` changed to someone (the
 * guide's example). An op's value steers `audit`: `flaky: n` fails its first n attempts, `hang: true` never
 * returns on its first attempt (a kill -9 mid-handler), `slow: ms` takes that long, `secret: true` always throws an error whose text
 * must never be shown.
 */
export function effectFixture(log: string): EffectHandlers {
  const write = (line: EffectLine) => appendFileSync(log, `${JSON.stringify(line)}\n`);
  return {
    audit: {
      collection: 'items',
      async run(effect) {
        write({ id: effect.id, name: effect.name, attempt: effect.attempt, phase: 'start' });
        const value = effect.op.value ?? {};
        if (typeof value.flaky === 'number' && effect.attempt <= value.flaky) throw new EffectFailure(`flaky, attempt ${effect.attempt}`);
        if (value.secret === true) throw new Error('secret-xyz-789 in the handler');
        if (value.hang === true && effect.attempt === 1) await new Promise(() => {});
        if (typeof value.slow === 'number') await new Promise((resolve) => setTimeout(resolve, value.slow as number));
        write({ id: effect.id, name: effect.name, attempt: effect.attempt, phase: 'done' });
      },
    },
    notify_assignee: {
      collection: 'items',
      kinds: ['put', 'patch'],
      when: ({ before, after }) => typeof after?.assignee === 'string' && after.assignee !== before?.assignee,
      run(effect) {
        write({ id: effect.id, name: effect.name, attempt: effect.attempt, phase: 'done', assignee: String(effect.after?.assignee) });
      },
    },
  };
}

export function effectLines(log: string): EffectLine[] {
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as EffectLine);
}

/** Waits (bounded) until `done(lines)` holds for the log's lines; answers them. */
export async function untilLines(log: string, done: (lines: EffectLine[]) => boolean, what: string, ms = 20_000): Promise<EffectLine[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const lines = effectLines(log);
    if (done(lines)) return lines;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; the effect log holds ${JSON.stringify(lines)}`);
    await Bun.sleep(20);
  }
}

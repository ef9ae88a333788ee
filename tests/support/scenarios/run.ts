// The one list of device scenarios, registered as bun:test tests for one engine. Each engine's suite
// (tests/engine-*.test.ts) is this call with its driver; after the last scenario it prints the numbers
// the scenarios noted (times to deliver, never asserted) for the closing note.
import { afterAll, beforeAll, describe, test } from 'bun:test';
import type { Engine } from '../engines/types.ts';
import { buildWeb } from '../ferry-page.ts';
import { createContext, type Scenario } from './context.ts';
import { closedMidDrain, offlineReload, whereChangesWait } from './delivery.ts';
import { deadLetter, expiredSession, secondDevice, twoTabs } from './people.ts';

export const SCENARIOS: readonly Scenario[] = [offlineReload, twoTabs, closedMidDrain, secondDevice, expiredSession, deadLetter, whereChangesWait];

export function runScenarios(engine: Engine): void {
  const notes = new Map<string, number[]>();
  beforeAll(() => buildWeb(), 60_000);
  afterAll(() => {
    for (const [what, times] of notes) console.log(`  [numbers] ${engine.name}: ${what}: ${times.map((ms) => `${ms} ms`).join(', ')}`);
  });
  describe(`device scenarios in ${engine.name}`, () => {
    for (const scenario of SCENARIOS) {
      test(scenario.name(engine), async () => {
        const { ctx, cleanup } = createContext(engine, notes);
        try {
          await scenario.run(ctx);
        } finally {
          await cleanup();
        }
      }, scenario.timeoutMs);
    }
  });
}

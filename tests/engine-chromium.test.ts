// The device scenarios (tests/support/scenarios/run.ts) in Chromium: see tests/support/engines/chromium.ts for
// how it is driven and what it cannot do.
import { chromiumEngine } from './support/engines/chromium.ts';
import { runScenarios } from './support/scenarios/run.ts';

runScenarios(chromiumEngine);

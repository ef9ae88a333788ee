// The device scenarios (tests/support/scenarios/run.ts) in Firefox: see tests/support/engines/firefox.ts for
// how it is driven and what it cannot do.
import { firefoxEngine } from './support/engines/firefox.ts';
import { runScenarios } from './support/scenarios/run.ts';

runScenarios(firefoxEngine);

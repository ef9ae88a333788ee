// The device scenarios (tests/support/scenarios/run.ts) in Webkit: see tests/support/engines/webkit.ts for
// how it is driven and what it cannot do.
import { webkitEngine } from './support/engines/webkit.ts';
import { runScenarios } from './support/scenarios/run.ts';

runScenarios(webkitEngine);

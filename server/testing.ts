// For Ferry's own test suites only: the app with fault-injection hooks (server/context.ts TestHooks). Not
// exported by the package; production code (the CLI, the binary) never imports it.
import { buildApp } from './app.ts';
import type { AppDeps, TestHooks } from './context.ts';

export type { TestHooks };

export function createAppWithHooks(deps: AppDeps, hooks: TestHooks) {
  return buildApp(deps, hooks);
}

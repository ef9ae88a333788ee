// The ready Service Worker that `ferry serve` ships at /sw.js (bundled by scripts/build-web.ts).
// The build defines FERRY_SHELL: the files of this build to cache for offline starts, and a version
// that changes with their content — which also changes this file's bytes, so the browser installs
// the new worker and its fresh cache whenever the app changes.
import { installFerry } from './worker.ts';

declare const self: ServiceWorkerGlobalScope;
declare const FERRY_SHELL: { files: string[]; version: string } | undefined;

// Bundled without the define (an app's own build), there is no shell list: cache only the page.
const shell = typeof FERRY_SHELL === 'undefined' ? { files: ['/'], version: 'dev' } : FERRY_SHELL;

installFerry(self, { shell: { precache: shell.files, version: shell.version } });

// A React page over the page library's hooks (client/react.ts), for tests/browser-react.test.ts: a live
// list, one live entity and the live status. Bundled by tests/support/ferry-page.ts to /test/react.js.
import { createElement as h, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { createFerry, login, type Ferry } from '../../client/index.ts';
import { useCollection, useEntity, useFerryStatus } from '../../client/react.ts';

type Item = { title: string };

/** The data: re-renders only when a row it shows changes (counted in `window.renders`). */
function Data({ ferry, space }: { ferry: Ferry; space: string }) {
  const rows = useCollection<Item>(ferry, space, 'items');
  const milk = useEntity<Item>(ferry, space, 'items', 'milk');
  const [renders] = useState(() => ({ count: 0 }));
  renders.count += 1;
  (window as unknown as { renders: number }).renders = renders.count;
  return h('div', {},
    h('p', { id: 'milk' }, milk === undefined ? 'reading' : milk === null ? 'none' : milk.value.title),
    h('ul', { id: 'items' }, ...rows.map((row) => h('li', { key: row.key }, row.value.title))),
  );
}

/** The status: every render's status is kept (`window.statuses`), so a test can see each one was news. */
function Status({ ferry }: { ferry: Ferry }) {
  const status = useFerryStatus(ferry);
  const w = window as unknown as { statuses?: string[] };
  (w.statuses ??= []).push(JSON.stringify(status));
  return h('div', {},
    h('p', { id: 'state' }, status.state),
    h('p', { id: 'pending' }, String(status.pending)),
  );
}

function App({ ferry, space }: { ferry: Ferry; space: string }) {
  return h('div', {}, h(Status, { ferry }), h(Data, { ferry, space }));
}

(window as unknown as { start(name: string): Promise<string> }).start = async (name: string) => {
  const account = await login(location.origin, name, `${name}-password`);
  const ferry = await createFerry({ user: account.user.id });
  const space = account.spaces[0]!.id;
  ferry.sync([space]);
  (window as unknown as { ferry: Ferry; space: string }).ferry = ferry;
  (window as unknown as { space: string }).space = space;
  createRoot(document.getElementById('root')!).render(h(App, { ferry, space }));
  return space;
};
(window as unknown as { reactReady: boolean }).reactReady = true;

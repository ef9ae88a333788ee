// The page: Ferry's page library over the app's collections, React hooks for the live list and status, and
// the app's own Service Worker (src/sw.ts, built to /sw.js) for offline starts.
import { createFerry, FerryError, type Ferry } from '@ferry/client';
import { useCollection, useFerryStatus } from '@ferry/client/react';
import { useState, type FormEvent } from 'react';
import { createRoot } from 'react-dom/client';
import { collections } from './schema';
import { currentSession } from './session';

type AppFerry = Ferry<typeof collections>;

function App({ ferry, space }: { ferry: AppFerry; space: string }) {
  const items = ferry.collection(space, 'items');
  const rows = useCollection(ferry, space, 'items');
  const status = useFerryStatus(ferry);
  const [title, setTitle] = useState('');
  const [problem, setProblem] = useState<string | null>(null);

  async function add(event: FormEvent) {
    event.preventDefault();
    try {
      await items.put(crypto.randomUUID(), { title: title.trim(), done: false });
      setTitle('');
      setProblem(null);
    } catch (error) {
      setProblem(error instanceof FerryError ? error.message : String(error)); // the text stays in the field
    }
  }

  return (
    <main>
      <p id="status" data-state={status.state}>{status.state}, {status.pending} unsent</p>
      <form onSubmit={add}>
        <input id="title" value={title} onChange={(e) => setTitle(e.target.value)} aria-label="New item" />
        <button type="submit">Add</button>
      </form>
      {problem && <p role="alert">{problem}</p>}
      <ul id="items">
        {rows.map((row) => (
          <li key={row.key} data-pending={row.pending}>
            <label>
              <input type="checkbox" checked={row.value.done} onChange={() => void items.patch(row.key, { done: !row.value.done })} />
              {row.value.title}
            </label>
            {row.pending && <small> (not yet on the server)</small>}
          </li>
        ))}
      </ul>
    </main>
  );
}

async function start() {
  const root = createRoot(document.getElementById('root')!);
  const session = await currentSession();
  if (session === null) {
    root.render(<p>Sign in to the app first.</p>);
    return;
  }
  const ferry = await createFerry({
    url: session.ferryUrl,
    user: session.user,
    token: () => session.token,
    collections,
    swUrl: '/sw.js',
  });
  ferry.sync([session.space]);
  root.render(<App ferry={ferry} space={session.space} />);
}

void start();

// Ferry Lists: shared lists that work offline. Every edit is a Ferry op; the app never waits for the
// network, and the status bar says where its changes are.
import { login, logout, me } from '../auth.ts';
import { createFerry, type Ferry, type FerryStatus, type Row } from '../index.ts';
import { h } from './dom.ts';
import { listView, sidebar, type ItemDoc, type ListDoc, type ListRef, type Space } from './lists.ts';
import { failedPanel, renderStatus } from './status.ts';

const ORIGIN = location.origin;
const ACCOUNT_KEY = 'ferry-lists:account'; // who was signed in, so the app opens offline
const SELECTED_KEY = 'ferry-lists:selected';

interface Account {
  user: { id: string; name: string };
  spaces: Space[];
}

const app = document.getElementById('app')!;
let ferry: Ferry;
let account: Account | null = null;
let lists: ListRef[] = [];
let items = new Map<string, Row<ItemDoc>[]>(); // per space
let status: FerryStatus | null = null;
let unsubscribers: Array<() => void> = [];

async function boot(): Promise<void> {
  ferry = await createFerry({ url: ORIGIN });
  ferry.onStatus((s) => {
    const deadChanged = s.deadLetters !== status?.deadLetters;
    const authChanged = (s.state === 'auth-required') !== (status?.state === 'auth-required');
    status = s;
    renderStatus(s);
    if (deadChanged || authChanged) render();
  });
  account = readAccount();
  const fresh = await me(ORIGIN).catch(() => undefined); // undefined: offline, keep the cached account
  if (fresh === null) account = null; // the server says: not signed in
  else if (fresh) account = fresh as Account;
  saveAccount(account);
  start();
}

/** (Re)subscribes to every space of the account and renders. */
function start(): void {
  for (const stop of unsubscribers) stop();
  unsubscribers = [];
  lists = [];
  items = new Map();
  if (!account) return render();
  ferry.sync(account.spaces.map((s) => s.id));
  for (const space of account.spaces) {
    unsubscribers.push(ferry.collection<ListDoc>(space.id, 'lists').subscribe((rows) => {
      lists = [...lists.filter((l) => l.space.id !== space.id), ...rows.map((r) => ({ space, key: r.key, name: r.value.name, pending: r.pending }))]
        .sort((a, b) => Number(b.space.personal) - Number(a.space.personal) || a.name.localeCompare(b.name));
      render();
    }));
    unsubscribers.push(ferry.collection<ItemDoc>(space.id, 'items').subscribe((rows) => {
      items.set(space.id, rows);
      render();
    }));
  }
  render();
}

function selected(): ListRef | null {
  const want = localStorage.getItem(SELECTED_KEY);
  return lists.find((l) => `${l.space.id}/${l.key}` === want) ?? lists[0] ?? null;
}

let rendering = false;
function render(): void {
  if (rendering) return;
  rendering = true;
  queueMicrotask(async () => {
    rendering = false;
    const view = account ? await mainView(account) : signInView('Sign in to see your lists.');
    // A re-render (a remote change, an ack) must not eat what the person is typing: carry over the
    // text of every named field, and the focus.
    const focus = document.activeElement?.id;
    const typed = [...app.querySelectorAll<HTMLInputElement>('input[id]:not([type=checkbox])')].map((i) => [i.id, i.value] as const);
    app.replaceChildren(view);
    for (const [id, value] of typed) {
      const input = document.getElementById(id) as HTMLInputElement | null;
      // An item's title field shows the server's title unless the person is editing that very field.
      if (input && value && (id === focus || !input.classList.contains('title'))) input.value = value;
    }
    if (focus) document.getElementById(focus)?.focus();
  });
}

async function mainView(acct: Account): Promise<HTMLElement> {
  const list = selected();
  const personal = acct.spaces.find((s) => s.personal);
  const failed = await failedPanel(ferry, render);
  return h('div', {},
    status?.state === 'auth-required'
      ? h('div', { class: 'notice bad', role: 'alert' }, 'Your session has ended. Your changes are kept on this device; sign in again to send them.', signInView(null, acct.user.name))
      : null,
    h('div', { class: 'layout' },
      sidebar(lists, list ? `${list.space.id}/${list.key}` : null, {
        pick: (l) => {
          localStorage.setItem(SELECTED_KEY, `${l.space.id}/${l.key}`);
          render();
        },
        createPersonal: async (name) => {
          if (!personal) return;
          const key = crypto.randomUUID();
          await ferry.collection<ListDoc>(personal.id, 'lists').put(key, { name });
          localStorage.setItem(SELECTED_KEY, `${personal.id}/${key}`);
        },
        createShared: (name) => createShared(name),
      }),
      h('div', {},
        list ? listView(ferry, list, items.get(list.space.id) ?? [], (who) => invite(list, who)) : h('p', { class: 'empty' }, 'Add a list to begin.'),
        failed,
      ),
    ),
    h('footer', { class: 'foot' },
      h('span', {}, `Signed in as ${acct.user.name}`),
      h('button', { type: 'button', onclick: () => void ferry.syncNow() }, 'Sync now'),
      h('button', { type: 'button', onclick: signOut }, 'Sign out'),
    ),
  );
}

function signInView(message: string | null, name = ''): HTMLElement {
  const user = h('input', { type: 'text', id: 'signin-name', name: 'username', autocomplete: 'username', value: name, required: true });
  const password = h('input', { type: 'password', id: 'signin-password', name: 'password', autocomplete: 'current-password', required: true });
  const error = h('p', { class: 'tag', role: 'alert' });
  return h('form', {
    class: 'signin', 'aria-labelledby': 'signin-title',
    onsubmit: async (event: Event) => {
      event.preventDefault();
      try {
        account = (await login(ORIGIN, user.value.trim(), password.value)) as Account;
        saveAccount(account);
        await ferry.signedIn();
        start();
      } catch (e) {
        error.textContent = e instanceof Error ? e.message : String(e);
      }
    },
  },
  h('h2', { id: 'signin-title' }, 'Sign in'),
  message ? h('p', {}, message) : null,
  h('label', { for: 'signin-name' }, 'Name'), user,
  h('label', { for: 'signin-password' }, 'Password'), password,
  h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
  error);
}

async function createShared(name: string): Promise<void> {
  const res = await fetch(`${ORIGIN}/v1/spaces`, {
    method: 'POST', credentials: 'include', headers: { 'content-type': 'application/json', 'x-ferry': '1' },
    body: JSON.stringify({ name }),
  }).catch(() => null);
  if (!res?.ok) return void alert('Creating a shared list needs a connection to the server. Try again when online.');
  const space = (await res.json()) as Space;
  await ferry.collection<ListDoc>(space.id, 'lists').put(crypto.randomUUID(), { name });
  account = { ...account!, spaces: [...account!.spaces, space] };
  saveAccount(account);
  start();
}

async function invite(list: ListRef, name: string): Promise<string> {
  const res = await fetch(`${ORIGIN}/v1/spaces/${encodeURIComponent(list.space.id)}/members`, {
    method: 'POST', credentials: 'include', headers: { 'content-type': 'application/json', 'x-ferry': '1' },
    body: JSON.stringify({ name }),
  }).catch(() => null);
  if (!res) return 'Inviting needs a connection to the server.';
  const body = (await res.json()) as { added?: boolean; message?: string };
  if (!res.ok) return body.message ?? 'The invitation failed.';
  return body.added ? `${name} can now see and edit "${list.name}".` : `${name} was already a member.`;
}

async function signOut(): Promise<void> {
  await logout(ORIGIN).catch(() => undefined);
  account = null;
  saveAccount(null);
  start();
}

function readAccount(): Account | null {
  try {
    return JSON.parse(localStorage.getItem(ACCOUNT_KEY) ?? 'null') as Account | null;
  } catch {
    return null;
  }
}
function saveAccount(value: Account | null): void {
  if (value) localStorage.setItem(ACCOUNT_KEY, JSON.stringify(value));
  else localStorage.removeItem(ACCOUNT_KEY);
}

void boot().catch((error) => {
  app.replaceChildren(h('div', { class: 'notice bad', role: 'alert' }, `Ferry Lists could not start: ${error instanceof Error ? error.message : String(error)}`));
});

// Ferry Lists: shared lists that work offline. Every edit is a Ferry op; the app never waits for the
// network, and the status bar says where its changes are. Each person on a shared browser has their own
// data on it (createFerry({ user })); signing out stops everything sent for them at once.
import { currentSession, signIn, type Account } from '../index.ts';
import { createFerry, type Ferry, FerryError, type FerryStatus, type MemberRole, registerWorker, type Row } from '../index.ts';
import { createSpace, invite as inviteUser, leave, members, removeMember, renameSpace } from '../index.ts';
import { h, plural } from './dom.ts';
import { listView, sidebar, type ItemDoc, type ListDoc, type ListRef, type Space } from './lists.ts';
import { failedPanel, renderStatus } from './status.ts';

const ORIGIN = location.origin;
const accountKey = (user: string) => `ferry-lists:account:${user}`; // so the app opens offline
const SELECTED_KEY = 'ferry-lists:selected';

const app = document.getElementById('app')!;
let ferry: Ferry | null = null;
let account: Account | null = null;
let lists: ListRef[] = [];
let items = new Map<string, Row<ItemDoc>[]>(); // per space
let status: FerryStatus | null = null;
let unsubscribers: Array<() => void> = [];

async function boot(): Promise<void> {
  registerWorker(); // the shell is cached on the first visit, so the app opens offline even signed out
  const session = await currentSession(ORIGIN).catch(() => ({ user: null, account: null }));
  if (session.user === null) return signedOutView('Sign in to see your lists.');
  account = session.account ?? readAccount(session.user);
  if (account === null) return signedOutView('Sign in to see your lists.');
  saveAccount(account);
  await open(account);
}

/** Opens this person's Ferry and shows their lists. */
async function open(acct: Account): Promise<void> {
  await ferry?.close();
  ferry = await createFerry({ url: ORIGIN, user: acct.user.id });
  ferry.onStatus((s) => {
    const deadChanged = s.deadLetters !== status?.deadLetters;
    const authChanged = (s.state === 'auth-required') !== (status?.state === 'auth-required');
    status = s;
    renderStatus(s, () => void ferry?.syncNow());
    if (s.state === 'signed-out') return void signedOutView('You signed out in another tab.');
    if (deadChanged || authChanged) render();
  });
  // Invitations, removals and renames arrive live: sync what the person may sync now.
  ferry.onSpaces((spaces) => {
    if (!account) return;
    account = { ...account, spaces };
    saveAccount(account);
    start();
  });
  start();
}

/** (Re)subscribes to every space of the account and renders. */
function start(): void {
  for (const stop of unsubscribers) stop();
  unsubscribers = [];
  lists = [];
  items = new Map();
  if (!account || !ferry) return render();
  const f = ferry;
  f.sync(account.spaces.map((s) => s.id));
  for (const space of account.spaces) {
    unsubscribers.push(f.collection<ListDoc>(space.id, 'lists').subscribe((rows) => {
      lists = [...lists.filter((l) => l.space.id !== space.id), ...rows.map((r) => ({ space, key: r.key, name: r.value.name, pending: r.pending }))]
        .sort((a, b) => Number(b.space.personal) - Number(a.space.personal) || a.name.localeCompare(b.name));
      render();
    }));
    unsubscribers.push(f.collection<ItemDoc>(space.id, 'items').subscribe((rows) => {
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
    if (!account || !ferry) return;
    const view = await mainView(ferry, account);
    // A re-render (a remote change, an ack) must not eat what the person is typing, nor their place: carry
    // over the text of every named field, and the focus (every control has a stable id).
    const focus = document.activeElement?.id;
    // And where the caret (or a selection) was in it: text typed next goes where the person meant it.
    const field = document.activeElement instanceof HTMLInputElement && document.activeElement.type === 'text' ? document.activeElement : null;
    const caret = field ? [field.selectionStart, field.selectionEnd] as const : null;
    const typed = [...app.querySelectorAll<HTMLInputElement>('input[id]:not([type=checkbox])')].map((i) => [i.id, i.value] as const);
    const folds = [...app.querySelectorAll<HTMLDetailsElement>('details[id]')].map((d) => [d.id, d.open] as const);
    app.replaceChildren(view);
    for (const [id, open] of folds) {
      const fold = document.getElementById(id) as HTMLDetailsElement | null;
      if (fold) fold.open = open;
    }
    for (const [id, value] of typed) {
      const input = document.getElementById(id) as HTMLInputElement | null;
      // An item's title field shows the server's title unless the person is editing that very field.
      if (input && value && (id === focus || !input.classList.contains('title'))) input.value = value;
    }
    if (focus) document.getElementById(focus)?.focus();
    const again = focus ? document.getElementById(focus) : null;
    if (caret && again instanceof HTMLInputElement && again.value === field!.value) again.setSelectionRange(caret[0], caret[1]);
  });
}

async function mainView(f: Ferry, acct: Account): Promise<HTMLElement> {
  const list = selected();
  const personal = acct.spaces.find((s) => s.personal);
  const failed = await failedPanel(f, render);
  return h('div', {},
    status?.state === 'auth-required'
      ? h('div', { class: 'notice bad', role: 'alert' }, 'Your session has ended. Your changes are kept on this device; sign in again to send them.',
        signInForm(null, acct.user.name))
      : null,
    h('div', { class: 'layout' },
      sidebar(lists, list ? `${list.space.id}/${list.key}` : null, {
        pick: (l) => {
          localStorage.setItem(SELECTED_KEY, `${l.space.id}/${l.key}`);
          // On a phone the lists fold away once one is picked, so its items are on screen.
          const fold = document.getElementById('lists-fold') as HTMLDetailsElement | null;
          if (fold && !matchMedia('(min-width: 760px)').matches) fold.open = false;
          render();
        },
        createPersonal: async (name) => {
          if (!personal) return;
          const key = crypto.randomUUID();
          await f.collection<ListDoc>(personal.id, 'lists').put(key, { name });
          localStorage.setItem(SELECTED_KEY, `${personal.id}/${key}`);
        },
        createShared: (name) => createShared(f, name),
      }),
      h('div', {},
        list
          ? listView(f, list, items.get(list.space.id) ?? [], {
            invite: (who, role) => invite(list, who, role),
            members: () => members(ORIGIN, list.space.id),
            removeMember: (user) => removeMember(ORIGIN, list.space.id, user),
            leave: () => leave(ORIGIN, list.space.id, acct.user.id),
            rename: async (name) => {
              await f.collection<ListDoc>(list.space.id, 'lists').patch(list.key, { name });
              if (!list.space.personal && list.space.role === 'owner') await renameSpace(ORIGIN, list.space.id, name).catch(() => undefined);
            },
            remove: async () => {
              for (const row of items.get(list.space.id) ?? []) if (row.value.list === list.key) await f.collection<ItemDoc>(list.space.id, 'items').delete(row.key);
              await f.collection<ListDoc>(list.space.id, 'lists').delete(list.key);
            },
            self: acct.user.id,
          })
          : h('p', { class: 'empty' }, 'Add a list to begin.'),
        failed,
      ),
    ),
    h('footer', { class: 'foot' },
      h('span', {}, `Signed in as ${acct.user.name}`),
      h('button', { type: 'button', id: 'sync-now', onclick: () => void f.syncNow() }, 'Sync now'),
      h('button', { type: 'button', id: 'sign-out', onclick: () => void signOut(f) }, 'Sign out'),
    ),
  );
}

function signedOutView(message: string | null): void {
  for (const stop of unsubscribers) stop();
  unsubscribers = [];
  account = null;
  status = null;
  renderStatus(null, () => {});
  app.replaceChildren(signInForm(message));
  document.getElementById('signin-name')?.focus();
}

function signInForm(message: string | null, name = ''): HTMLElement {
  const user = h('input', { type: 'text', id: 'signin-name', name: 'username', autocomplete: 'username', value: name, required: true });
  const password = h('input', { type: 'password', id: 'signin-password', name: 'password', autocomplete: 'current-password', required: true });
  const error = h('p', { class: 'tag', role: 'alert' });
  return h('form', {
    class: 'signin', 'aria-labelledby': 'signin-title',
    onsubmit: async (event: Event) => {
      event.preventDefault();
      try {
        const acct = await signIn(ORIGIN, user.value.trim(), password.value);
        const same = ferry !== null && account?.user.id === acct.user.id;
        account = acct;
        saveAccount(acct);
        if (same) {
          await ferry!.signedIn(); // the session had ended: the same person again, their queue resumes
          start();
        } else await open(acct);
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

async function createShared(f: Ferry, name: string): Promise<void> {
  const space = await createSpace(ORIGIN, name).catch(() => null);
  if (space === null) return void alert('Creating a shared list needs a connection to the server. Try again when online.');
  await f.collection<ListDoc>(space.id, 'lists').put(crypto.randomUUID(), { name });
  account = { ...account!, spaces: [...account!.spaces.filter((s) => s.id !== space.id), space] };
  saveAccount(account);
  start();
}

async function invite(list: ListRef, name: string, role: MemberRole): Promise<string> {
  try {
    const answer = await inviteUser(ORIGIN, list.space.id, name, role);
    const can = answer.role === 'viewer' ? 'see' : 'see and edit';
    return answer.added ? `${name} can now ${can} "${list.name}".` : `${name} was already a member (${answer.role}).`;
  } catch (error) {
    if (error instanceof FerryError && error.code === 'network') return 'Inviting needs a connection to the server.';
    return error instanceof Error ? error.message : 'The invitation failed.';
  }
}

/** Signs out; with changes not yet on the server, asks first (and offers to remove this person's data). */
async function signOut(f: Ferry): Promise<void> {
  const pending = f.status().pending;
  const choice = pending > 0 ? await confirmSignOut(pending) : { go: true, wipe: false };
  if (!choice.go) return;
  const user = account?.user.id;
  await f.signOut({ wipe: choice.wipe });
  if (user) localStorage.removeItem(accountKey(user));
  ferry = null;
  signedOutView(choice.wipe ? 'Signed out. Your data was removed from this device.' : 'Signed out.');
}

function confirmSignOut(pending: number): Promise<{ go: boolean; wipe: boolean }> {
  return new Promise((resolve) => {
    const wipe = h('input', { type: 'checkbox', id: 'signout-wipe' });
    const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'signout-title' },
      h('h2', { id: 'signout-title' }, `${plural(pending, 'change')} ${pending === 1 ? 'is' : 'are'} not on the server yet`),
      h('p', {}, 'They are kept on this device and sent when you sign in here again.'),
      h('label', { for: 'signout-wipe', class: 'row' }, wipe, ' Also remove my data (and these changes) from this device'),
      h('div', { class: 'row' },
        h('button', { type: 'button', id: 'signout-wait', class: 'primary', onclick: () => close(false) }, 'Wait'),
        h('button', { type: 'button', id: 'signout-anyway', onclick: () => close(true) }, 'Sign out anyway'),
      ),
    );
    const close = (go: boolean) => {
      dialog.close();
      dialog.remove();
      resolve({ go, wipe: go && wipe.checked });
    };
    dialog.addEventListener('cancel', () => close(false));
    document.body.append(dialog);
    dialog.showModal();
  });
}

function readAccount(user: string): Account | null {
  try {
    return JSON.parse(localStorage.getItem(accountKey(user)) ?? 'null') as Account | null;
  } catch {
    return null;
  }
}
function saveAccount(value: Account): void {
  localStorage.setItem(accountKey(value.user.id), JSON.stringify(value));
}

export type { Space };

void boot().catch((error) => {
  app.replaceChildren(h('div', { class: 'notice bad', role: 'alert' }, `Ferry Lists could not start: ${error instanceof Error ? error.message : String(error)}`));
});

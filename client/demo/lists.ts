// The list screens: the lists of every space the person belongs to, and one list's items. Every refusal
// (a name too long, an empty one, a value the library refuses before queueing) is shown next to the field
// that caused it, and the person's text stays where it was.
import type { Collection, Ferry, MemberRef, MemberRole, Role, Row } from '../index.ts';
import { h, plural } from './dom.ts';
import { moved, nextOrder } from './order.ts';

export interface Space {
  id: string;
  name: string;
  personal: boolean;
  role: Role;
}
export type ListDoc = { name: string };
export type ItemDoc = { list: string; title: string; done: boolean; order: number };
export interface ListRef {
  space: Space;
  key: string;
  name: string;
  pending: boolean;
}

/** What the list screen may do beyond its items (the spaces API for a shared list). */
export interface ListActions {
  invite(name: string, role: MemberRole): Promise<string>;
  members(): Promise<MemberRef[]>;
  removeMember(user: string): Promise<void>;
  leave(): Promise<void>;
  rename(name: string): Promise<void>;
  remove(): Promise<void>;
  /** The signed-in user's id. */
  self: string;
}

const newKey = () => crypto.randomUUID();

/** Empties the field with `id` (the one on screen now) if `done` and it still holds `value`. */
function clearIfStill(id: string, value: string, done: boolean): void {
  const field = document.getElementById(id) as HTMLInputElement | null;
  if (done && field && field.value.trim() === value) field.value = '';
}

/** Runs a write; a refusal is shown in `note` (role=alert) and the person's text is left as it is. */
async function attempt(note: HTMLElement, work: () => Promise<unknown>): Promise<boolean> {
  try {
    await work();
    note.textContent = '';
    return true;
  } catch (error) {
    note.textContent = error instanceof Error ? error.message : String(error);
    return false;
  }
}

export function sidebar(lists: ListRef[], selected: string | null, actions: {
  pick(list: ListRef): void;
  createPersonal(name: string): Promise<void>;
  createShared(name: string): Promise<void>;
}): HTMLElement {
  const name = h('input', { type: 'text', id: 'new-list-name', placeholder: 'New list name', required: true, autocomplete: 'off', maxlength: 200 });
  const note = h('p', { class: 'tag bad-text', role: 'alert', id: 'new-list-note' });
  const create = (shared: boolean) => async (event: Event) => {
    event.preventDefault();
    const value = name.value.trim();
    if (!value) return name.focus();
    clearIfStill('new-list-name', value, await attempt(note, () => (shared ? actions.createShared(value) : actions.createPersonal(value))));
  };
  const current = lists.find((l) => `${l.space.id}/${l.key}` === selected);
  // On a phone the lists fold away once one is open, so the items are on screen first.
  return h('nav', { class: 'lists', 'aria-label': 'Lists' },
    h('details', { class: 'lists-fold', id: 'lists-fold', open: !current || matchMedia('(min-width: 760px)').matches || undefined },
      h('summary', {}, h('h2', {}, current ? `Lists · ${current.name}` : 'Lists')),
      lists.length === 0 ? h('p', { class: 'empty' }, 'No lists yet.') : null,
      h('ul', {}, ...lists.map((list) => h('li', {},
        h('button', {
          type: 'button', class: 'pick', id: `pick-${list.space.id}-${list.key}`, 'aria-current': String(`${list.space.id}/${list.key}` === selected),
          onclick: () => actions.pick(list),
        }, h('span', {}, list.name), h('span', { class: 'tag' }, list.space.personal ? '' : 'shared')),
      ))),
      h('form', { class: 'new-list', onsubmit: create(false) },
        h('label', { for: 'new-list-name', class: 'visually-hidden' }, 'New list name'),
        name,
        h('div', { class: 'row wrap' },
          h('button', { type: 'submit', class: 'primary', id: 'add-list' }, 'Add list'),
          h('button', { type: 'button', id: 'add-shared-list', onclick: create(true), title: 'Needs a connection: creates a list you can share' }, 'Add shared list'),
        ),
        note,
      ),
    ),
  );
}

/** One list: add, rename, check, reorder and delete items; rename or delete the list; its members. */
export function listView(ferry: Ferry, list: ListRef, rows: Row<ItemDoc>[], actions: ListActions): HTMLElement {
  const items = ferry.collection<ItemDoc>(list.space.id, 'items');
  const mine = rows.filter((r) => r.value.list === list.key).sort((a, b) => a.value.order - b.value.order || (a.key < b.key ? -1 : 1));
  const orders = mine.map((r) => r.value.order);
  const title = h('input', { type: 'text', id: 'new-item', placeholder: 'Add an item', autocomplete: 'off' });
  const note = h('p', { class: 'tag bad-text', role: 'alert', id: 'new-item-note' });
  const add = async (event: Event) => {
    event.preventDefault();
    const text = title.value.trim();
    if (!text) return;
    // nextOrder remembers what it handed out: items added faster than the list re-renders stay in order.
    const ok = await attempt(note, () => items.put(newKey(), { list: list.key, title: text, done: false, order: nextOrder(list.key, orders) }));
    // The screen may have been rebuilt meanwhile (the write itself re-renders it): clear the field that is
    // there now, and only if it still holds what was added.
    clearIfStill('new-item', text, ok);
    document.getElementById('new-item')?.focus();
  };
  const done = mine.filter((r) => r.value.done).length;
  return h('section', { class: 'list', 'aria-labelledby': 'list-title' },
    h('div', { class: 'list-head' },
      h('h2', { id: 'list-title' }, list.name),
      h('span', { class: 'tag' }, `${done} of ${plural(mine.length, 'item')} done`),
    ),
    h('form', { class: 'row', onsubmit: add },
      h('label', { for: 'new-item', class: 'visually-hidden' }, 'New item'),
      title,
      h('button', { type: 'submit', class: 'primary', id: 'add-item' }, 'Add'),
    ),
    note,
    list.space.role === 'viewer'
      ? h('p', { class: 'tag', id: 'read-only-note' }, 'You can only read this list: the server refuses changes from a viewer.')
      : null,
    mine.length === 0 ? h('p', { class: 'empty' }, 'Nothing here yet.') : null,
    h('ul', { class: 'items', 'aria-label': `Items of ${list.name}` }, ...mine.map((row, i) => itemRow(items, row, i, orders))),
    listSettings(list, actions),
  );
}

function itemRow(items: Collection<ItemDoc>, row: Row<ItemDoc>, index: number, orders: number[]): HTMLElement {
  const label = row.value.title;
  const note = h('span', { class: 'tag bad-text', role: 'alert', id: `note-${row.key}` });
  const move = (delta: -1 | 1) => async () => {
    const order = moved(orders, index, delta);
    if (order !== null) await attempt(note, () => items.patch(row.key, { order }));
  };
  const rename = h('input', {
    type: 'text', class: 'title', id: `title-${row.key}`, value: label, 'aria-label': `Rename ${label}`,
    onchange: async (e: Event) => {
      const input = e.target as HTMLInputElement;
      const text = input.value.trim();
      if (!text) {
        note.textContent = 'An item needs a name; it keeps the old one.';
        input.value = label;
        return;
      }
      if (text !== label) await attempt(note, () => items.patch(row.key, { title: text }));
    },
  });
  return h('li', { class: `item${row.value.done ? ' done' : ''}`, 'data-key': row.key, 'data-title': label },
    h('input', {
      type: 'checkbox', id: `done-${row.key}`, checked: row.value.done, 'aria-label': `${label} done`,
      onchange: (e: Event) => void attempt(note, () => items.patch(row.key, { done: (e.target as HTMLInputElement).checked })),
    }),
    rename,
    row.pending ? h('span', { class: 'unsynced', title: 'Saved on this device, not yet on the server' }, '●', h('span', { class: 'label' }, ' not synced')) : null,
    h('span', { class: 'moves' },
      h('button', { type: 'button', class: 'icon', id: `up-${row.key}`, 'aria-label': `Move ${label} up`, onclick: move(-1), disabled: index === 0 }, '↑'),
      h('button', { type: 'button', class: 'icon', id: `down-${row.key}`, 'aria-label': `Move ${label} down`, onclick: move(1), disabled: index === orders.length - 1 }, '↓'),
    ),
    h('button', { type: 'button', class: 'icon danger', id: `delete-${row.key}`, 'aria-label': `Delete ${label}`,
      onclick: () => void attempt(note, () => items.delete(row.key)) }, '✕'),
    note,
  );
}

/** Rename or delete the list; for a shared list, its members (invite, remove, leave). */
function listSettings(list: ListRef, actions: ListActions): HTMLElement {
  const name = h('input', { type: 'text', id: 'rename-list', value: list.name, autocomplete: 'off', maxlength: 200 });
  const note = h('p', { class: 'tag', role: 'status', id: 'list-note' });
  const owner = list.space.personal || list.space.role === 'owner';
  return h('details', { class: 'settings', id: 'list-settings' },
    h('summary', {}, list.space.personal ? 'List settings' : 'List settings and members'),
    h('form', {
      class: 'row', 'aria-label': 'Rename the list',
      onsubmit: async (event: Event) => {
        event.preventDefault();
        const value = name.value.trim();
        if (!value) return void (note.textContent = 'A list needs a name.');
        if (await attempt(note, () => actions.rename(value))) note.textContent = `Renamed to "${value}".`;
      },
    },
    h('label', { for: 'rename-list', class: 'visually-hidden' }, 'List name'),
    name,
    h('button', { type: 'submit', id: 'rename-list-button' }, 'Rename')),
    h('button', { type: 'button', class: 'danger', id: 'delete-list', disabled: !owner,
      onclick: () => void attempt(note, () => actions.remove()) }, 'Delete list'),
    note,
    list.space.personal ? null : membersPanel(list, actions),
  );
}

function membersPanel(list: ListRef, actions: ListActions): HTMLElement {
  const box = h('div', { class: 'members', id: 'members' }, h('p', { class: 'tag' }, 'Loading members…'));
  const note = h('p', { class: 'tag', role: 'status', id: 'members-note' });
  const owner = list.space.role === 'owner';
  const show = async () => {
    try {
      const people = await actions.members();
      box.replaceChildren(h('h3', {}, 'Members'), h('ul', {}, ...people.map((m) => h('li', { class: 'row' },
        h('span', {}, `${m.name}${m.role === 'editor' ? '' : ` (${m.role})`}`),
        owner && m.role !== 'owner'
          ? h('button', { type: 'button', id: `remove-${m.id}`, onclick: async () => {
            if (await attempt(note, () => actions.removeMember(m.id))) void show();
          } }, `Remove ${m.name}`)
          : null,
      ))));
    } catch (error) {
      box.replaceChildren(h('p', { class: 'tag' }, error instanceof Error ? error.message : 'Members could not be read.'));
    }
  };
  void show();
  const who = h('input', { type: 'text', id: 'invite-name', placeholder: 'Their user name', autocomplete: 'off' });
  const role = h('select', { id: 'invite-role' },
    h('option', { value: 'editor' }, 'can edit'), h('option', { value: 'viewer' }, 'can only read')) as HTMLSelectElement;
  return h('div', {},
    box,
    owner
      ? h('form', {
        class: 'row', 'aria-label': 'Invite a member',
        onsubmit: async (event: Event) => {
          event.preventDefault();
          if (!who.value.trim()) return;
          note.textContent = await actions.invite(who.value.trim(), role.value === 'viewer' ? 'viewer' : 'editor');
          who.value = '';
          void show();
        },
      },
      h('label', { for: 'invite-name', class: 'visually-hidden' }, 'Invite by user name'),
      who,
      h('label', { for: 'invite-role', class: 'visually-hidden' }, 'What they may do'),
      role,
      h('button', { type: 'submit', id: 'invite' }, 'Invite'))
      : h('button', { type: 'button', id: 'leave-list', onclick: () => void attempt(note, () => actions.leave()) }, 'Leave this list'),
    note,
  );
}

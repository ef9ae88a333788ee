// The list screens: the lists of every space the person belongs to, and one list's items.
import type { Collection, Ferry, Row } from '../index.ts';
import { h, plural } from './dom.ts';
import { between, moved } from './order.ts';

export interface Space {
  id: string;
  name: string;
  personal: boolean;
  role: 'owner' | 'member';
}
export type ListDoc = { name: string };
export type ItemDoc = { list: string; title: string; done: boolean; order: number };
export interface ListRef {
  space: Space;
  key: string;
  name: string;
  pending: boolean;
}

const newKey = () => crypto.randomUUID();

export function sidebar(lists: ListRef[], selected: string | null, actions: {
  pick(list: ListRef): void;
  createPersonal(name: string): Promise<void>;
  createShared(name: string): Promise<void>;
}): HTMLElement {
  const name = h('input', { type: 'text', id: 'new-list-name', placeholder: 'New list name', required: true, autocomplete: 'off' });
  const create = (shared: boolean) => async (event: Event) => {
    event.preventDefault();
    const value = name.value.trim();
    if (!value) return name.focus();
    await (shared ? actions.createShared(value) : actions.createPersonal(value));
    name.value = '';
  };
  return h('nav', { class: 'lists', 'aria-label': 'Lists' },
    h('h2', {}, 'Lists'),
    lists.length === 0 ? h('p', { class: 'empty' }, 'No lists yet.') : null,
    h('ul', {}, ...lists.map((list) => h('li', {},
      h('button', {
        type: 'button', class: 'pick', 'aria-current': String(`${list.space.id}/${list.key}` === selected),
        onclick: () => actions.pick(list),
      }, h('span', {}, list.name), h('span', { class: 'tag' }, list.space.personal ? '' : 'shared')),
    ))),
    h('form', { class: 'new-list', onsubmit: create(false) },
      h('label', { for: 'new-list-name', class: 'visually-hidden' }, 'New list name'),
      name,
      h('div', { class: 'row' },
        h('button', { type: 'submit', class: 'primary' }, 'Add list'),
        h('button', { type: 'button', onclick: create(true), title: 'Needs a connection: creates a list you can share' }, 'Add shared list'),
      ),
    ),
  );
}

/** One list: add, rename, check, reorder and delete items; invite people to a shared list. */
export function listView(ferry: Ferry, list: ListRef, rows: Row<ItemDoc>[], invite: (name: string) => Promise<string>): HTMLElement {
  const items = ferry.collection<ItemDoc>(list.space.id, 'items');
  const mine = rows.filter((r) => r.value.list === list.key).sort((a, b) => a.value.order - b.value.order || (a.key < b.key ? -1 : 1));
  const orders = mine.map((r) => r.value.order);
  const title = h('input', { type: 'text', id: 'new-item', placeholder: 'Add an item', autocomplete: 'off' });
  const add = async (event: Event) => {
    event.preventDefault();
    const text = title.value.trim();
    if (!text) return;
    title.value = '';
    await items.put(newKey(), { list: list.key, title: text, done: false, order: between(orders.at(-1), undefined) });
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
      h('button', { type: 'submit', class: 'primary' }, 'Add'),
    ),
    mine.length === 0 ? h('p', { class: 'empty' }, 'Nothing here yet.') : null,
    h('ul', { class: 'items', 'aria-label': `Items of ${list.name}` }, ...mine.map((row, i) => itemRow(items, row, i, orders))),
    list.space.personal ? null : inviteForm(list, invite),
  );
}

function itemRow(items: Collection<ItemDoc>, row: Row<ItemDoc>, index: number, orders: number[]): HTMLElement {
  const label = row.value.title;
  const move = (delta: -1 | 1) => async () => {
    const order = moved(orders, index, delta);
    if (order !== null) await items.patch(row.key, { order });
  };
  const rename = h('input', {
    type: 'text', class: 'title', id: `title-${row.key}`, value: label, 'aria-label': `Rename ${label}`,
    onchange: (e: Event) => {
      const text = (e.target as HTMLInputElement).value.trim();
      if (text && text !== label) void items.patch(row.key, { title: text });
    },
  });
  return h('li', { class: `item${row.value.done ? ' done' : ''}`, 'data-key': row.key, 'data-title': label },
    h('input', {
      type: 'checkbox', checked: row.value.done, 'aria-label': `${label} done`,
      onchange: (e: Event) => void items.patch(row.key, { done: (e.target as HTMLInputElement).checked }),
    }),
    rename,
    row.pending ? h('span', { class: 'unsynced', title: 'Saved on this device, not yet on the server' }, '●', h('span', { class: 'label' }, ' not synced')) : null,
    h('button', { type: 'button', class: 'icon', 'aria-label': `Move ${label} up`, onclick: move(-1), disabled: index === 0 }, '↑'),
    h('button', { type: 'button', class: 'icon', 'aria-label': `Move ${label} down`, onclick: move(1), disabled: index === orders.length - 1 }, '↓'),
    h('button', { type: 'button', class: 'icon danger', 'aria-label': `Delete ${label}`, onclick: () => void items.delete(row.key) }, '✕'),
  );
}

function inviteForm(list: ListRef, invite: (name: string) => Promise<string>): HTMLElement {
  const who = h('input', { type: 'text', id: 'invite-name', placeholder: 'Their user name', autocomplete: 'off' });
  const note = h('p', { class: 'tag', role: 'status' });
  return h('form', {
    class: 'row', 'aria-label': 'Invite a member',
    onsubmit: async (event: Event) => {
      event.preventDefault();
      if (!who.value.trim()) return;
      note.textContent = await invite(who.value.trim());
      who.value = '';
    },
  },
  h('label', { for: 'invite-name', class: 'visually-hidden' }, 'Invite by user name'),
  who,
  h('button', { type: 'submit', disabled: list.space.role !== 'owner' }, 'Invite'),
  note);
}

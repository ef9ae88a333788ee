// The status bar, progress bar and failed-changes panel: what a person sees of sync.
import type { Ferry, FerryStatus } from '../index.ts';
import { ago, h, plural } from './dom.ts';

/** One sentence per state, the words people expect. */
export function describe(s: FerryStatus, now = Date.now()): string {
  switch (s.state) {
    case 'offline':
      return s.pending > 0 ? 'Offline — changes saved on this device' : 'Offline';
    case 'connecting':
      return 'Connecting…';
    case 'syncing':
      return 'Syncing…';
    case 'synced':
      return 'Synced';
    case 'auth-required':
      return 'Needs sign-in';
    case 'failing':
      return `Failing since ${s.failingSince ? ago(s.failingSince, now) : 'a moment ago'}`;
  }
}

export function renderStatus(s: FerryStatus): void {
  const bar = document.getElementById('status')!;
  bar.dataset.state = s.state;
  document.getElementById('status-text')!.textContent = describe(s);
  const pending = document.getElementById('pending')!;
  pending.textContent = s.pending > 0 ? String(s.pending) : '';
  pending.setAttribute('aria-label', s.pending > 0 ? `${plural(s.pending, 'change')} not yet on the server` : '');
  bar.title = s.lastError ? `Last error: ${s.lastError}` : '';
  const progress = document.getElementById('progress')!;
  const big = s.progress && s.progress.total >= 20 && s.progress.done < s.progress.total;
  progress.hidden = !big;
  if (big && s.progress) {
    const bar = document.getElementById('progress-bar') as HTMLProgressElement;
    bar.max = s.progress.total;
    bar.value = s.progress.done;
    document.getElementById('progress-text')!.textContent = `Sending ${s.progress.done} of ${s.progress.total}`;
  }
}

/** The failed (rejected) changes, each with retry and discard. Empty when there are none. */
export async function failedPanel(ferry: Ferry, onChange: () => void): Promise<HTMLElement | null> {
  const dead = await ferry.deadLetters();
  if (dead.length === 0) return null;
  const act = (fn: () => Promise<void>) => async () => {
    await fn();
    onChange();
  };
  return h('section', { class: 'failed', 'aria-labelledby': 'failed-title' },
    h('h2', { id: 'failed-title' }, `${plural(dead.length, 'change')} the server refused`),
    h('ul', {}, ...dead.map((d) => h('li', {},
      h('div', {}, h('strong', {}, `${d.op.kind} ${d.op.collection}/${d.op.key}`), ` — ${d.message} `, h('span', { class: 'tag' }, `(${d.code})`)),
      h('div', { class: 'row' },
        h('button', { type: 'button', onclick: act(() => ferry.retry(d.seq)) }, 'Retry'),
        h('button', { type: 'button', class: 'danger', onclick: act(() => ferry.discard(d.seq)) }, 'Discard'),
      ),
    ))),
  );
}

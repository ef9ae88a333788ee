// The status bar, its detail line, the progress bar and the failed-changes panel: what a person sees of
// sync. What is wrong is said in words on screen (not in a tooltip a phone cannot show), with when the next
// try is and a Retry now; the times in it move every second.
import type { Ferry, FerryStatus } from '../index.ts';
import { ago, h, plural } from './dom.ts';

/** The words people expect for the state. */
export function describe(s: FerryStatus | null, now = Date.now()): string {
  if (s === null) return 'Signed out';
  switch (s.state) {
    case 'offline':
      return s.pending > 0 ? 'Offline — changes saved on this device' : 'Offline';
    case 'connecting':
      return s.lastError ? 'Connecting… (the server is not answering yet)' : 'Connecting…';
    case 'syncing':
      return 'Syncing…';
    case 'synced':
      return 'Synced';
    case 'auth-required':
      return 'Needs sign-in';
    case 'failing':
      return `Failing: ${problemOf(s)}`;
    case 'signed-out':
      return 'Signed out';
  }
  return s.state satisfies never;
}

/** What is wrong, as a person would put it. */
function problemOf(s: FerryStatus): string {
  switch (s.errorKind) {
    case 'network':
      return "the server can't be reached";
    case 'server':
      return 'the server is having trouble';
    case 'rate_limited':
      return 'the server asked to slow down';
    case 'forbidden':
      return s.lastError ?? 'this account may not sync here';
    default:
      return s.lastError ?? 'changes are not being sent';
  }
}

/**
 * Where unsent changes wait, when the state alone would mislead: without Background Sync nothing is
 * sent while Ferry is closed, and storage that is not persisted may be cleared by the browser.
 */
export function waitingNote(s: FerryStatus): string | null {
  const stuck = s.state === 'offline' || s.state === 'failing' || s.state === 'connecting';
  const notes: string[] = [];
  if (s.pending > 0 && stuck && s.delivery === 'when-open') notes.push(`${plural(s.pending, 'change')} will be sent when Ferry is next open`);
  if (s.unsentAtRisk && (stuck || s.state === 'auth-required' || s.deadLetters > 0)) {
    notes.push('this browser may clear changes not yet sent: install Ferry or keep it open until they are');
  }
  return notes.length > 0 ? notes.join('; ') : null;
}

/** The line under the bar: the reason, what happens next, and since when. Empty when all is well. */
export function detail(s: FerryStatus | null, now = Date.now()): string {
  if (s === null || s.state === 'synced' || s.state === 'syncing' || s.state === 'signed-out') return '';
  const parts: string[] = [];
  if (s.state === 'offline') {
    const note = waitingNote(s);
    if (note) return `${note[0]!.toUpperCase()}${note.slice(1)}.`;
    return s.pending > 0 ? `${plural(s.pending, 'change')} will be sent when you are back online.` : '';
  }
  if (s.lastError && s.state !== 'failing') parts.push(s.lastError);
  if (s.pending > 0) parts.push(`${plural(s.pending, 'change')} kept on this device.`);
  if (s.nextAttemptAt !== null) {
    const inS = Math.max(0, Math.ceil((s.nextAttemptAt - now) / 1000));
    parts.push(inS > 0 ? `Retrying in ${inS} s.` : 'Retrying now…');
  }
  if (s.state === 'failing' && s.failingSince !== null) parts.push(`Since ${ago(s.failingSince, now)}.`);
  const note = waitingNote(s);
  if (note) parts.push(`${note[0]!.toUpperCase()}${note.slice(1)}.`);
  return parts.join(' ');
}

let shown: FerryStatus | null = null;
let retry: () => void = () => {};
let ticker: ReturnType<typeof setInterval> | null = null;

/** Renders `s` (null: signed out) and keeps its times moving while something is being retried. */
export function renderStatus(s: FerryStatus | null, onRetry: () => void): void {
  shown = s;
  retry = onRetry;
  paint();
  const live = s !== null && (s.nextAttemptAt !== null || s.failingSince !== null);
  if (live && ticker === null) ticker = setInterval(paint, 1000);
  if (!live && ticker !== null) {
    clearInterval(ticker);
    ticker = null;
  }
}

function paint(): void {
  const s = shown;
  const now = Date.now();
  const bar = document.getElementById('status')!;
  bar.dataset.state = s?.state ?? 'signed-out';
  document.getElementById('status-text')!.textContent = describe(s, now);
  const count = s && s.pending > 0 ? s.pending : 0;
  document.getElementById('pending')!.textContent = count > 0 ? String(count) : '';
  document.getElementById('pending-label')!.textContent = count > 0 ? `${plural(count, 'change')} not yet on the server` : '';
  const line = document.getElementById('status-detail')!;
  const text = detail(s, now);
  // A reason or a countdown on screen: the person can cut the wait short.
  const retrying = s !== null && (s.state === 'failing' || s.state === 'connecting') && (s.lastError !== null || s.nextAttemptAt !== null);
  line.hidden = text === '' && !retrying;
  line.replaceChildren(h('span', { id: 'status-detail-text' }, text));
  if (retrying) line.append(h('button', { type: 'button', id: 'retry-now', class: 'link', onclick: () => retry() }, 'Retry now'));
  const progress = document.getElementById('progress')!;
  const big = s?.progress && s.progress.total >= 20 && s.progress.done < s.progress.total;
  progress.hidden = !big;
  if (big && s?.progress) {
    const meter = document.getElementById('progress-bar') as HTMLProgressElement;
    meter.max = s.progress.total;
    meter.value = s.progress.done;
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
        h('button', { type: 'button', id: `retry-${d.seq}`, onclick: act(() => ferry.retry(d.seq)) }, 'Retry'),
        h('button', { type: 'button', id: `discard-${d.seq}`, class: 'danger', onclick: act(() => ferry.discard(d.seq)) }, 'Discard'),
      ),
    ))),
  );
}

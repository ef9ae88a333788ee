// What the demo's status bar adds to the state: the truth about when waiting changes leave, and a
// warning while they sit in storage the browser may clear.
import { describe, expect, test } from 'bun:test';
import { aggregate, EMPTY_OUTBOX, IDLE_DRAIN, type StatusParts } from '../../device/status.ts';
import { waitingNote } from './status.ts';

const failing = (change: Partial<StatusParts>) => aggregate({
  online: true, socket: { state: 'waiting', attempt: 3, nextAt: 9_000, lastError: 'The sync server could not be reached.' },
  socketFailingSince: 1, welcomed: false, subscribed: 1, caughtUp: 0, drain: IDLE_DRAIN,
  outbox: { ...EMPTY_OUTBOX, count: 3, bytes: 300, oldestAt: 1 }, serverLag: null, socketError: null,
  signedOut: false, onlineSince: null, background: false, storage: { persisted: true, usage: 1, quota: 10 }, ...change,
}, 100_000);

describe('the status bar\'s note on waiting changes', () => {
  test('without Background Sync: they will be sent when Ferry is next open', () => {
    expect(waitingNote(failing({}))).toBe('3 changes will be sent when Ferry is next open');
    // With Background Sync the browser sends them with Ferry closed: nothing to add.
    expect(waitingNote(failing({ background: true }))).toBeNull();
  });

  test('in storage the browser may clear: a warning', () => {
    const note = waitingNote(failing({ background: true, storage: { persisted: false, usage: 1, quota: 10 } }));
    expect(note).toContain('may clear changes not yet sent');
    expect(waitingNote(failing({ storage: { persisted: null, usage: null, quota: null } })))
      .toBe('3 changes will be sent when Ferry is next open; this browser may clear changes not yet sent: install Ferry or keep it open until they are');
  });

  test('nothing while they are on their way', () => {
    const sending = failing({ socket: { state: 'open', since: 1 }, welcomed: true, storage: { persisted: false, usage: 1, quota: 10 } });
    expect(sending.state).toBe('syncing');
    expect(waitingNote(sending)).toBeNull();
  });
});

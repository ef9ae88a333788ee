// Shared by the kill -9 suites (server-crash: `bun server/cli.ts serve`; chaos-binary: the compiled
// dist/ferry): a seeded PRNG, devices whose ops are each a patch on their own key, the push and the
// "what did the server keep" probe, and the audit of the database file after the final stop.
import { expect } from 'bun:test';
import { createClient } from '@libsql/client';
import type { Op } from '../../core/types.ts';
import { helloSocket } from './socket.ts';
import { rng } from './rng.ts';

export { rng };

export type CrashBatch = Op[];
export interface CrashDevice {
  id: string;
  nextSeq: number;
  /** Every batch ever built, in order. */
  batches: CrashBatch[];
  /** Sent, but no ack received: resent after the restart. */
  unacked: CrashBatch[];
}

export function crashDevices(ids: string[]): CrashDevice[] {
  return ids.map((id) => ({ id, nextSeq: 1, batches: [], unacked: [] }));
}

/** The device's next `size` ops, each a patch `{ n: seq }` on its own key `<device>-<seq>`. */
export function buildBatch(d: CrashDevice, space: string, size: number): CrashBatch {
  const ops = Array.from({ length: size }, (_, i): Op => {
    const seq = d.nextSeq + i;
    return { id: `${d.id}:${seq}`, device: d.id, seq, lamport: seq, space, collection: 'items', key: `${d.id}-${seq}`, kind: 'patch', value: { n: seq }, at: Date.now() };
  });
  d.nextSeq += size;
  d.batches.push(ops);
  return ops;
}

export function pushBatch(base: string, token: string, device: string, ops: CrashBatch, timeoutMs = 10_000) {
  return fetch(`${base}/v1/push`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ protocol: 1, device, ops }),
    signal: AbortSignal.timeout(timeoutMs),
  });
}

export function expectApplied(body: any, ops: CrashBatch) {
  expect(body.through).toBe(ops.at(-1)!.seq);
  expect(body.results.map((r: any) => [r.seq, r.result])).toEqual(ops.map((op) => [op.seq, 'applied']));
}

/** The device's processed seq as the (restarted) server reports it (`welcome.through`, PROTOCOL §7). */
export async function throughOf(base: string, token: string, device: string): Promise<number> {
  const socket = await helloSocket(`${base.replace('http', 'ws')}/v1/sync`, token, device);
  socket.close();
  return socket.frames[0].through;
}

/**
 * After a (re)start: checks that every acked batch survived and every unacked one committed whole or not
 * at all, that the server-wide head moved once per committed op, then resends every unacked batch in
 * order, expecting `duplicate` (first `applied`) exactly for the committed ops. Returns how many resent
 * batches had been committed and how many not.
 */
export async function recoverDevices(base: string, token: string, devices: CrashDevice[]) {
  const counts = { committed: 0, uncommitted: 0 };
  const committed = new Map<string, number>();
  for (const d of devices) committed.set(d.id, await throughOf(base, token, d.id));
  for (const d of devices) {
    const through = committed.get(d.id)!;
    for (const ops of d.batches) {
      // Every acked batch survived the kill (no ack before a durable commit).
      if (!d.unacked.includes(ops)) expect(through).toBeGreaterThanOrEqual(ops.at(-1)!.seq);
      // A batch commits whole or not at all.
      else expect(through >= ops.at(-1)!.seq || through < ops[0]!.seq).toBe(true);
    }
  }
  // Exactly once: every op is a patch on its own key, so each applied op moved the head by one.
  const total = [...committed.values()].reduce((a, b) => a + b, 0);
  expect((await (await fetch(`${base}/healthz`)).json()).serverSeq).toBe(total);

  for (const d of devices) {
    const through = committed.get(d.id)!;
    for (const ops of d.unacked) {
      const res = await pushBatch(base, token, d.id, ops);
      expect(res.status).toBe(200);
      const body = (await res.json()) as any;
      expect(body.through).toBe(ops.at(-1)!.seq);
      const want = ops.map((op) => (op.seq <= through ? [op.seq, 'duplicate', 'applied'] : [op.seq, 'applied', null]));
      expect(body.results.map((r: any) => [r.seq, r.result, r.first ?? null])).toEqual(want);
      if (ops[0]!.seq <= through) counts.committed++;
      else counts.uncommitted++;
    }
    d.unacked = [];
  }
  return counts;
}

/**
 * Audits the file after the final stop: every op sent is in the ledger once, applied, with its own
 * serverSeq; one entity per op holding its own value; each device's ledger is seqs 1..n in insertion
 * order; the file passes `PRAGMA integrity_check`. Returns the number of ops sent.
 */
export async function auditFile(dbUrl: string, devices: CrashDevice[]): Promise<number> {
  const sent = devices.reduce((n, d) => n + d.nextSeq - 1, 0);
  const c = createClient({ url: dbUrl });
  try {
    const one = async (sql: string) => Number((await c.execute(sql)).rows[0]![0]);
    expect(await one('SELECT count(*) FROM ops')).toBe(sent);
    expect(await one("SELECT count(*) FROM ops WHERE result = 'applied'")).toBe(sent);
    expect(await one('SELECT count(DISTINCT server_seq) FROM ops')).toBe(sent);
    expect(await one("SELECT count(*) FROM entities WHERE collection = 'items'")).toBe(sent);
    // One entity write per op: the server-wide serverSeq head (derived, nothing purged here) moved exactly `sent` times.
    expect(await one('SELECT max(server_seq) FROM entities')).toBe(sent);
    // Each op's own key holds its own value, so no op was lost, merged into another, or applied twice.
    const rows = (await c.execute("SELECT key, value FROM entities WHERE collection = 'items'")).rows;
    const wrong = rows.filter((r) => JSON.parse(String(r.value)).n !== Number(String(r.key).split('-').at(-1)));
    expect(wrong).toEqual([]);
    for (const d of devices) {
      const row = (await c.execute({ sql: 'SELECT last_seq, max_lamport FROM devices WHERE id = ?', args: [d.id] })).rows[0]!;
      expect([Number(row.last_seq), Number(row.max_lamport)]).toEqual([d.nextSeq - 1, d.nextSeq - 1]);
      // Ledger = seqs 1..n, in per-device order (insertion order, rowid).
      const seqs = (await c.execute({ sql: 'SELECT seq FROM ops WHERE device = ? ORDER BY rowid', args: [d.id] })).rows.map((r) => Number(r.seq));
      expect(seqs).toEqual(Array.from({ length: d.nextSeq - 1 }, (_, i) => i + 1));
    }
    expect(String((await c.execute('PRAGMA integrity_check')).rows[0]![0])).toBe('ok');
  } finally {
    c.close();
  }
  return sent;
}

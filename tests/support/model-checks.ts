// The end-of-run checks of tests/model.test.ts (DESIGN invariants 1–4), run once every outbox is empty:
//   - ledger: each device's ops are exactly seqs 1..n, once each, none rejected (invariants 1, 2)
//   - per-device order: the ledger's insertion order (rowid) follows seq (invariant 3)
//   - resends of ops committed before a worker restart were answered `duplicate` (invariant 2)
//   - the server's state of every entity equals the merge of every op the devices sent (invariant 4)
//   - each device's `count_<i>` entity holds its last counter value (a lost or stale write shows)
//   - every replica, after folding in the server's changes, holds exactly the server's docs, values
//     AND stamps, tombstones included; `all()` shows the server's live fields (invariant 4)
import { sql } from 'drizzle-orm';
import { applyOp, docEquals } from '../../core/merge.ts';
import type { Doc } from '../../core/types.ts';
import { audit } from '../../device/audit.ts';
import { docOfWire } from '../../device/records.ts';
import { checkResends } from './model-commands.ts';
import type { Device, ModelEnv } from './model-device.ts';
import { rawEntities, stableDoc } from './model-socket-checks.ts';

/** Ledger: exactly seqs 1..n per device, once each, none rejected; per-device order (rowid). */
async function checkLedger(env: ModelEnv, devices: readonly Device[]): Promise<void> {
  const { figures } = env;
  const ids = devices.map((d) => d.id);
  // rowid is the ledger's insertion order, i.e. the order the server processed the ops in. (The
  // ledger's server_seq is the entity's last write of its batch, so it does not order ops.)
  const ledger = await env.server().database.db.all<{ rowid: number; device: string; seq: number; result: string; code: string | null }>(
    sql`SELECT rowid, device, seq, result, code FROM ops WHERE device IN (${sql.join(ids.map((id) => sql`${id}`), sql`, `)})`);
  for (const device of devices) {
    const rows = ledger.filter((row) => row.device === device.id).sort((a, b) => a.seq - b.seq);
    const seqs = rows.map((row) => row.seq);
    const unique = new Set(seqs);
    if (unique.size !== seqs.length) { figures.doubled += seqs.length - unique.size; throw new Error(`device ${device.index}: doubled seqs ${seqs}`); }
    for (let seq = 1; seq <= device.written; seq += 1) {
      if (!unique.has(seq)) { figures.lost += 1; throw new Error(`device ${device.index}: seq ${seq} of ${device.written} missing from the ledger`); }
    }
    if (seqs.length !== device.written) throw new Error(`device ${device.index}: ledger holds ${seqs.length} ops, device wrote ${device.written}`);
    const rejected = rows.filter((row) => row.result === 'rejected');
    if (rejected.length > 0) throw new Error(`device ${device.index}: valid ops rejected: ${JSON.stringify(rejected[0])}`);
    for (let i = 1; i < rows.length; i += 1) {
      if (rows[i]!.rowid <= rows[i - 1]!.rowid) {
        figures.outOfOrder += 1;
        throw new Error(`device ${device.index}: seq ${rows[i]!.seq} was processed before seq ${rows[i - 1]!.seq}`);
      }
    }
    checkResends(device, env);
  }
  figures.ops += devices.reduce((sum, d) => sum + d.written, 0);
}

export async function checkRun(env: ModelEnv, devices: readonly Device[], space: string): Promise<void> {
  await checkLedger(env, devices);
  // What the store keeps to read cheaply (outbox bytes, pending counts, merged docs) agrees with its source.
  for (const device of devices) {
    const problems = await audit(device.store);
    if (problems.length > 0) throw new Error(`device ${device.index}: ${problems.join('; ')}`);
  }
  const server = env.server();

  // The server's state = the merge of every op sent, in any order.
  const serverEntities = await server.app.decorator.ferry.store.changesSince(space, 0, 10_000);
  const serverDocs = new Map(serverEntities.map((e) => [`${e.collection}/${e.key}`, docOfWire(e)]));
  const reference = new Map<string, Doc | null>();
  const shuffled = [...env.sent.values()].sort(() => env.r.next() - 0.5);
  for (const op of shuffled) {
    const id = `${op.collection}/${op.key}`;
    reference.set(id, applyOp(reference.get(id) ?? null, op).doc);
  }
  const total = devices.reduce((sum, d) => sum + d.written, 0);
  if (env.sent.size !== total) throw new Error(`ops sent ${env.sent.size} != ops written ${total}`);
  for (const [id, doc] of reference) {
    const got = serverDocs.get(id) ?? null;
    if (!docEquals(got, doc)) throw new Error(`server ${id}: ${stableDoc(got)} != merge of sent ops ${stableDoc(doc)}`);
  }
  if (serverDocs.size !== reference.size) throw new Error(`server holds ${serverDocs.size} entities, ops touched ${reference.size}`);
  for (const device of devices) {
    if (device.counter === 0) continue;
    const doc = serverDocs.get(`items/count_${device.index}`);
    if (doc?.fields.n !== device.counter) throw new Error(`count_${device.index} = ${doc?.fields.n}, wrote ${device.counter}`);
  }

  // Every replica converges on the server.
  const head = serverEntities.reduce((max, e) => Math.max(max, e.serverSeq), 0);
  const { lamport } = await server.app.decorator.ferry.store.heads();
  for (const device of devices) {
    await device.store.applyChanges(space, serverEntities, head, lamport);
    const records = (await rawEntities(device.factory)).filter((rec) => rec.space === space);
    if (records.length !== serverDocs.size) throw new Error(`device ${device.index} holds ${records.length} entities, server ${serverDocs.size}`);
    for (const rec of records) {
      const want = serverDocs.get(`${rec.collection}/${rec.key}`) ?? null;
      if (rec.pending !== 0 || !docEquals(rec.doc, want)) {
        throw new Error(`device ${device.index} ${rec.collection}/${rec.key}: ${stableDoc(rec.doc)} (pending ${rec.pending}) != server ${stableDoc(want)}`);
      }
    }
    const visible = await device.store.all(space, 'items');
    const live = serverEntities.filter((e) => !e.deleted && e.collection === 'items');
    if (visible.length !== live.length) throw new Error(`device ${device.index} shows ${visible.length} items, server has ${live.length}`);
    for (const item of visible) {
      const want = serverDocs.get(`items/${item.key}`)!;
      if (stableDoc({ ...want, fields: item.fields }) !== stableDoc(want)) throw new Error(`device ${device.index} shows ${item.key} as ${JSON.stringify(item.fields)}`);
    }
  }
}

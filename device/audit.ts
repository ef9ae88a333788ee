// What the device store keeps to make reads cheap, checked against what it is derived from. For tests (the
// property suites, the model suites after every run): a module of its own, so pages never download it.
import { docEquals } from '../core/merge.ts';
import { type EntityRecord, entityKeyOf, groupByEntity, type OutboxRow, settle, viewOf } from './records.ts';
import type { Store } from './store.ts';
import type { Counters } from './store-steps.ts';

/** Every disagreement in `store`'s database, as a sentence (none: an empty list). Reads everything. */
export async function audit(store: Store): Promise<string[]> {
  const { rows, records, counters } = await store.contents();
  return auditReplica(rows, records, counters);
}

/**
 * What the store keeps to make reads cheap, checked against what it is derived from: `outboxBytes`, `outboxCount`
 * and `outboxFirst` against the outbox rows; each entity's `pending` (settled) against its outbox rows, its
 * `through` against the newest of them and its `doc` against its server state with those ops on top; and each
 * row's `prev` link, which an ack relies on to find the entities with ops left. Every disagreement, as a
 * sentence (none: an empty list). `rows` in seq order.
 */
function auditReplica(rows: readonly OutboxRow[], records: readonly EntityRecord[], counters: Counters): string[] {
  const problems: string[] = [];
  const sum = rows.reduce((total, row) => total + row.bytes, 0);
  if (sum !== counters.outboxBytes) problems.push(`outboxBytes is ${String(counters.outboxBytes)}, the outbox rows hold ${sum}`);
  if (counters.outboxCount !== rows.length) problems.push(`outboxCount is ${String(counters.outboxCount)}, the outbox holds ${rows.length} rows`);
  const first = rows[0]?.seq ?? counters.nextSeq;
  if (counters.outboxFirst !== first) problems.push(`outboxFirst is ${String(counters.outboxFirst)}, the outbox starts at ${first}`);
  const pending = new Map(groupByEntity(rows, (row) => row.op).map(([key, group]) => [JSON.stringify(key), group] as const));
  for (const [id, group] of pending) {
    group.forEach((row, i) => {
      const before = group[i - 1];
      // Linked to an op at or after the one before it that still waits: the ack that removes that one finds this.
      if (before !== undefined && !(row.prev !== undefined && row.prev >= before.seq && row.prev < row.seq)) {
        problems.push(`${id}: op ${row.seq} links to ${String(row.prev)}, the op before it waiting is ${before.seq}`);
      }
    });
  }
  for (const stored of records) {
    const record = settle(stored, counters.outboxFirst);
    const id = JSON.stringify(entityKeyOf(record));
    const group = pending.get(id) ?? [];
    const ops = group.map((row) => row.op);
    pending.delete(id);
    if (record.pending !== ops.length) problems.push(`${id}: pending is ${record.pending}, the outbox holds ${ops.length}`);
    const newest = group.at(-1)?.seq;
    if (newest !== undefined && !(record.through !== undefined && record.through >= newest)) {
      problems.push(`${id}: through is ${String(record.through)}, its newest waiting op is ${newest}`);
    }
    if (!docEquals(record.doc, viewOf(record.server, ops))) problems.push(`${id}: doc is not server + pending ops`);
    if (record.server === null && ops.length === 0) problems.push(`${id}: kept with nothing known or pending`);
  }
  for (const id of pending.keys()) problems.push(`${id}: ops wait in the outbox but the replica has no record`);
  return problems;
}

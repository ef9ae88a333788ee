// Checks and commands for tests/model-socket.test.ts, written against a structural `ModelDevice` so any
// model test can use them: the seeded write command, the warping clock drainers back off on, and the
// end-of-run checks of DESIGN invariants 1–4 against the server's ledger and entities (each throws a
// sentence saying what broke). tests/support/model-checks.ts holds the HTTP model's own `checkRun`.
import { sql } from 'drizzle-orm';
import { applyOp, docEquals, mergeDocs } from '../../core/merge.ts';
import type { Doc, Fields, Op } from '../../core/types.ts';
import { type Draft, type EntityRecord, settle } from '../../device/records.ts';
import type { Store } from '../../device/store.ts';
import type { rng } from './rng.ts';
import type { TestServer } from './server.ts';

export type Rng = ReturnType<typeof rng>;

/** Keys every device writes to, so their writes collide. */
export const MODEL_KEYS = ['a', 'b', 'c', 'd'];

/** Counts the ledger checks add to (a run stops at the first failure). */
export interface LedgerFigures {
  lost: number;
  doubled: number;
  outOfOrder: number;
}

/** What the checks need to know of a device. */
export interface ModelDevice {
  index: number;
  id: string;
  store: Store;
  /** Ops written (the device's seqs are 1..written). */
  written: number;
  /** The last value written to the device's own `count_<index>` entity (0: none). */
  counter: number;
}

/** The virtual clock a drainer's backoff runs on: sleeping advances it, nothing really waits. */
/**
 * The clock of the model's tabs: real time, plus every backoff the drainers slept, which returns at once
 * and moves the clock on instead (a device suspended that long). So backoff costs no wall time, while the
 * socket's heartbeat and timers still run on the same clock the drainer reads, as in a browser.
 */
export function warpClock() {
  let warp = 0;
  return { now: () => Date.now() + warp, sleep: async (ms: number) => { warp += ms; } };
}

function valueFor(r: Rng): Fields {
  const value: Fields = {};
  for (const field of ['title', 'n', 'done']) if (r.chance(0.6)) value[field] = field === 'done' ? r.chance(0.5) : r.int(0, 99);
  if (Object.keys(value).length === 0) value.n = r.int(0, 99);
  return value;
}

/** One person's action: a put, patch or delete of a shared key, sometimes with a bump of the device's counter. */
/** One seeded write; `write` carries it out (default the device's store; a page engine's `write` in the socket model). */
export async function writeRandom(device: ModelDevice, space: string, r: Rng, now: number,
  write: (drafts: Draft[]) => Promise<unknown> = (drafts) => device.store.enqueue(drafts, now)): Promise<void> {
  const key = r.pick(MODEL_KEYS);
  const roll = r.next();
  const drafts: Draft[] = [];
  if (roll < 0.4) drafts.push({ space, collection: 'items', key, kind: 'put', value: valueFor(r) });
  else if (roll < 0.8) drafts.push({ space, collection: 'items', key, kind: 'patch', value: valueFor(r) });
  else drafts.push({ space, collection: 'items', key, kind: 'delete' });
  if (r.chance(0.3)) {
    device.counter += 1;
    drafts.push({ space, collection: 'items', key: `count_${device.index}`, kind: 'patch', value: { n: device.counter } });
  }
  await write(drafts);
  device.written += drafts.length;
}

export type RawEntity = EntityRecord;

/** Reads a device's entity records (the replica's docs with their stamps) over its own connection, each as the
 * store reads it: settled against the outbox (device/records.ts `settle`). */
export function rawEntities(factory: IDBFactory, name = 'ferry'): Promise<RawEntity[]> {
  return new Promise((resolve, reject) => {
    const open = factory.open(name);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction(['meta', 'entities'], 'readonly');
      const counters = tx.objectStore('meta').get('counters');
      const get = tx.objectStore('entities').getAll();
      get.onsuccess = () => {
        db.close();
        resolve((get.result as EntityRecord[]).map((record) => settle(record, (counters.result as { outboxFirst: number }).outboxFirst)));
      };
      get.onerror = () => { db.close(); reject(get.error); };
    };
  });
}

/** A doc as JSON with its fields and stamps in key order, for messages and comparisons. */
export function stableDoc(doc: Doc | null): string {
  if (doc === null) return 'null';
  const sortKeys = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));
  return JSON.stringify({ ...doc, fields: sortKeys(doc.fields), stamps: sortKeys(doc.stamps) });
}

/**
 * The ledger holds exactly seqs 1..written of every device, once each, none rejected (invariants 1, 2),
 * in seq order (invariant 3): the ledger's insertion order (rowid) follows seq, and so do the serverSeqs
 * the ops caused. A ledger row's server_seq is its entity's last write of the commit, shared by the
 * batch's ops on that entity, so within one commit (one applied_at) it may go down; across commits a
 * later seq must never have caused an earlier serverSeq.
 */
export async function checkLedger(server: Pick<TestServer, 'database'>, devices: readonly ModelDevice[], figures: LedgerFigures): Promise<void> {
  const ids = devices.map((d) => d.id);
  const ledger = await server.database.db.all<{ rowid: number; device: string; seq: number; result: string; server_seq: number | null; applied_at: number }>(
    sql`SELECT rowid, device, seq, result, code, server_seq, applied_at FROM ops WHERE device IN (${sql.join(ids.map((id) => sql`${id}`), sql`, `)})`);
  for (const device of devices) {
    const rows = ledger.filter((row) => row.device === device.id).sort((a, b) => a.seq - b.seq);
    const seqs = rows.map((row) => row.seq);
    const unique = new Set(seqs);
    if (unique.size !== seqs.length) {
      figures.doubled += seqs.length - unique.size;
      throw new Error(`device ${device.index}: doubled seqs ${seqs}`);
    }
    for (let seq = 1; seq <= device.written; seq += 1) {
      if (!unique.has(seq)) {
        figures.lost += 1;
        throw new Error(`device ${device.index}: seq ${seq} of ${device.written} missing from the ledger`);
      }
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
    const caused = rows.filter((row) => row.server_seq !== null);
    for (const [i, later] of caused.entries()) {
      const earlier = caused.slice(0, i).find((row) => row.server_seq! > later.server_seq! && row.applied_at !== later.applied_at);
      if (earlier !== undefined) {
        figures.outOfOrder += 1;
        throw new Error(`device ${device.index}: seq ${later.seq} caused serverSeq ${later.server_seq}, below seq ${earlier.seq}'s ${earlier.server_seq} of an earlier commit`);
      }
    }
  }
}

/**
 * The server's state is the merge of every op the devices sent, in any order (invariant 4). `purged`:
 * tombstones the server forgot (retention), per `collection/key`; the server's doc joined with them
 * must give the merge. Also: every device's counter entity holds the last value it wrote.
 */
export function checkServerState(serverDocs: ReadonlyMap<string, Doc>, sent: Iterable<Op>, devices: readonly ModelDevice[],
  r: Rng, purged: ReadonlyMap<string, Doc[]> = new Map()): void {
  const reference = new Map<string, Doc | null>();
  const shuffled = [...sent].sort(() => r.next() - 0.5);
  const total = devices.reduce((sum, d) => sum + d.written, 0);
  if (shuffled.length !== total) throw new Error(`ops sent ${shuffled.length} != ops written ${total}`);
  for (const op of shuffled) {
    const id = `${op.collection}/${op.key}`;
    reference.set(id, applyOp(reference.get(id) ?? null, op).doc);
  }
  for (const [id, doc] of reference) {
    let got: Doc | null = serverDocs.get(id) ?? null;
    for (const tombstone of purged.get(id) ?? []) got = mergeDocs(got, tombstone);
    if (!docEquals(got, doc)) throw new Error(`server ${id}: ${stableDoc(got)} != merge of sent ops ${stableDoc(doc)}`);
  }
  for (const id of serverDocs.keys()) if (!reference.has(id)) throw new Error(`server holds ${id}, which no op touched`);
  for (const device of devices) {
    if (device.counter === 0) continue;
    const doc = serverDocs.get(`items/count_${device.index}`);
    if (doc?.fields.n !== device.counter) throw new Error(`count_${device.index} = ${doc?.fields.n}, wrote ${device.counter}`);
  }
}

/** Runs `scenario` for each seed; prints each failure with its replay command. Stops after 5 failures. */
export async function runSeeds(seeds: readonly number[], scenario: (seed: number) => Promise<void>,
  replay: (seed: number) => string, onPass: () => void): Promise<string[]> {
  const failures: string[] = [];
  for (const seed of seeds) {
    try {
      await scenario(seed);
      onPass();
    } catch (error) {
      const message = `seed ${seed}: ${error instanceof Error ? error.message : String(error)}`;
      console.error(`FAILED ${message}  (replay: ${replay(seed)}; add ${seed} to REGRESSIONS)`);
      failures.push(message);
      if (failures.length >= 5) break;
    }
  }
  return failures;
}

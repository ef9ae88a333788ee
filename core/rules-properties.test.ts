// Property tests for write rules (core/logic.ts) in the apply planning (core/apply.ts): whatever a rule
// decides, and whatever fields it computes, every replica converges on the server's state like any other
// write, and a resend is answered with its first result without running the rule again or recording an effect.
//
// A run: three devices of three users write a few ops on two keys; the server receives their batches in a
// random schedule (interleaved, resent whole or straddling, grouped several to a commit) and plans each group
// with `planGroup` under a rule that reads the current entity (a `locked` entity refuses every writer but
// one), rejects by writer and value, and computes fields (one of them overwriting a field the op wrote).
// Then every replica — each device (its acked ops folded in as sent, as device/store.ts does, and every
// `changes` frame, in a random order with repeats) and a bystander (frames only) — must equal the server.
import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { type Batch, type DeviceRow, entityKey, type LedgerRow, ledgerKey, memberKey, planGroup } from './apply.ts';
import type { WriteRule } from './logic.ts';
import { applyOp, docEquals, mergeDocs } from './merge.ts';
import type { Doc, EntityRow, Fields, Op, OpKind, OpResult, Role } from './types.ts';

const RUNS = { numRuns: 400 };
const DEVICES = ['a', 'b', 'c'] as const;
const userOf = (device: string) => `u${device}`;
const SPACE = 's';
const KEYS = ['k1', 'k2'] as const;

/** Reads the current entity, the writer and the op; rejects some; computes fields, rewriting `x`. */
let ruleRuns = 0;
/** What the rule computed for each op it accepted, by op id. */
const computed = new Map<string, Fields>();
const rule: WriteRule = ({ op, current, writer, now }) => {
  ruleRuns += 1;
  if (current?.locked === true && writer.user !== 'ua') return { reject: 'locked', message: 'Only ua may change a locked note.' };
  if (op.value?.x === 3 && writer.user === 'ub') return { reject: 'no_threes', message: 'ub may not write a 3.' };
  const count = typeof current?.count === 'number' ? current.count + 1 : 1;
  const set: Fields = { by: writer.user, count, at: now };
  if (typeof op.value?.x === 'number') set.x = op.value.x * 10;
  computed.set(op.id, set);
  return { set };
};

/**
 * What a person expects to see, computed without the merge: of the accepted ops on a key, the newest decides
 * whether it exists; each field shows the newest write of it not older than the newest put or delete, where an
 * op's computed fields count as written just after the op itself (so they beat the op's own value).
 */
function expected(accepted: Op[]): Fields | null {
  const order = (a: [number, string, number], b: [number, string, number]) =>
    a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0) || a[2] - b[2];
  const sorted = [...accepted].sort((x, y) => order([x.lamport, x.device, 0], [y.lamport, y.device, 0]));
  const last = sorted.at(-1);
  if (last === undefined || last.kind === 'delete') return null;
  const base = sorted.filter((op) => op.kind !== 'patch').at(-1);
  const fields: Fields = {};
  const stampOfField = new Map<string, [number, string, number]>();
  for (const op of sorted) {
    if (base !== undefined && order([op.lamport, op.device, 0], [base.lamport, base.device, 0]) < 0) continue;
    if (op.kind === 'delete') continue;
    for (const [writes, sub] of [[op.value ?? {}, 0], [computed.get(op.id) ?? {}, 1]] as const) {
      for (const [name, value] of Object.entries(writes)) {
        const at: [number, string, number] = [op.lamport, op.device, sub];
        const was = stampOfField.get(name);
        if (was === undefined || order(at, was) > 0) {
          stampOfField.set(name, at);
          fields[name] = value;
        }
      }
    }
  }
  return fields;
}

interface OpSpec { kind: OpKind; key: (typeof KEYS)[number]; value: Fields; gap: number }
const opSpec: fc.Arbitrary<OpSpec> = fc.record({
  kind: fc.constantFrom<OpKind>('put', 'patch', 'patch', 'delete'),
  key: fc.constantFrom(...KEYS),
  value: fc.record({ x: fc.integer({ min: 0, max: 3 }), y: fc.constantFrom('p', 'q'), locked: fc.boolean() }, { requiredKeys: [] }),
  gap: fc.integer({ min: 1, max: 3 }),
});

function opsOf(device: string, specs: OpSpec[]): Op[] {
  let lamport = 0;
  return specs.map((spec, i) => {
    lamport += spec.gap;
    const op: Op = { id: `${device}:${i + 1}`, device, seq: i + 1, lamport, space: SPACE, collection: 'notes', key: spec.key, kind: spec.kind, at: 0 };
    if (spec.kind !== 'delete') op.value = spec.value;
    return op;
  });
}

interface Step { device: number; size: number; resend: number | null; joinNext: boolean }
const step: fc.Arbitrary<Step> = fc.record({
  device: fc.integer({ min: 0, max: 2 }),
  size: fc.integer({ min: 1, max: 3 }),
  resend: fc.option(fc.integer({ min: 0, max: 20 }), { freq: 3 }),
  joinNext: fc.boolean(),
});

/** The server: what its tables hold, keyed as planGroup's input is (as tests/support/fake-server.ts keeps it). */
class Server {
  readonly devices = new Map<string, DeviceRow>();
  readonly ledger = new Map<string, LedgerRow>();
  readonly entities = new Map<string, EntityRow>();
  readonly ids = new Set<string>();
  readonly frames: EntityRow[][] = [];
  /** The op id of every effect row the commits recorded. */
  readonly effects: string[] = [];
  readonly members = new Map<string, Role>(DEVICES.map((d) => [memberKey(userOf(d), SPACE), d === 'c' ? 'owner' : 'editor']));
  serverSeq = 0;
  lamport = 0;
  now = 1_000;

  commit(batches: Batch[]): (OpResult[] | null)[] {
    const all = batches.flatMap((b) => b.ops);
    const plan = planGroup(batches, {
      devices: this.devices, ledger: this.ledger, members: this.members, entities: this.entities,
      takenIds: new Set(all.map((op) => op.id).filter((id) => this.ids.has(id))),
      serverSeq: this.serverSeq, lamport: this.lamport, rules: { notes: rule }, now: (this.now += 1),
      effects: () => ['audit'],
    });
    this.effects.push(...plan.effects.map((e) => e.write.op.id));
    for (const [id, device] of plan.devices) this.devices.set(id, device);
    for (const row of plan.ledger) {
      this.ledger.set(ledgerKey(row.device, row.seq), row);
      if (row.opId !== null) this.ids.add(row.opId);
    }
    for (const e of plan.entities) this.entities.set(entityKey(e.space, e.collection, e.key), e);
    if (plan.entities.length > 0) this.frames.push(plan.entities);
    this.serverSeq = plan.serverSeq;
    this.lamport = plan.lamport;
    return plan.outcomes.map((o) => (o.ok ? o.results : null));
  }
}

/** A tiny deterministic shuffle (mulberry32), so a replica's delivery order comes from the run's seed. */
function shuffle<T>(items: T[], seed: number): T[] {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const stripRow = (e: EntityRow): Doc => ({ fields: e.fields, stamps: e.stamps, base: e.base, live: e.live, deleted: e.deleted });

/** Runs a schedule to the end (every op processed); answers each device's first results and its resends. */
function run(ops: Record<string, Op[]>, steps: Step[]) {
  const server = new Server();
  const next = Object.fromEntries(DEVICES.map((d) => [d, 0]));
  const sent: Record<string, Op[][]> = Object.fromEntries(DEVICES.map((d) => [d, []]));
  const first = new Map<string, OpResult>();
  const resent: { first: OpResult; again: OpResult }[] = [];
  const record = (results: OpResult[] | null) => {
    expect(results).not.toBeNull(); // a schedule never gaps or regresses: every batch is processed
    for (const r of results!) {
      if (r.result === 'duplicate') resent.push({ first: first.get(r.id)!, again: r });
      else first.set(r.id, r);
    }
  };
  let pending: Batch[] = [];
  const flush = () => {
    if (pending.length > 0) for (const results of server.commit(pending)) record(results);
    pending = [];
  };
  const batchFor = (device: string, size: number, resend: number | null): Batch | null => {
    const mine = ops[device]!;
    if (resend !== null && sent[device]!.length > 0) {
      const old = sent[device]![resend % sent[device]!.length]!;
      // Straddling: the old batch plus the next new op, if any (a device resending after a lost ack).
      const extra = mine.slice(next[device]!, next[device]! + 1);
      next[device]! += extra.length;
      return { userId: userOf(device), device, ops: [...old, ...extra] };
    }
    const fresh = mine.slice(next[device]!, next[device]! + size);
    if (fresh.length === 0) return null;
    next[device]! += fresh.length;
    sent[device]!.push(fresh);
    return { userId: userOf(device), device, ops: fresh };
  };
  for (const s of steps) {
    const device = DEVICES[s.device]!;
    // A group holds one batch per device: a device's next batch waits for the previous one's answer.
    if (pending.some((b) => b.device === device)) flush();
    const batch = batchFor(device, s.size, s.resend);
    if (batch) pending.push(batch);
    if (!s.joinNext) flush();
  }
  flush();
  for (const d of DEVICES) {
    const rest = ops[d]!.slice(next[d]!);
    if (rest.length > 0) record(server.commit([{ userId: userOf(d), device: d, ops: rest }])[0]!);
  }
  return { server, first, resent };
}

describe('write rules converge like any other write', () => {
  test('every replica (own ops folded as sent, frames in any order, repeated) equals the server', () => {
    fc.assert(
      fc.property(
        fc.tuple(...DEVICES.map(() => fc.array(opSpec, { maxLength: 6 }))),
        fc.array(step, { maxLength: 14 }),
        fc.integer(),
        (specs, steps, seed) => {
          const ops = Object.fromEntries(DEVICES.map((d, i) => [d, opsOf(d, specs[i]!)]));
          computed.clear();
          const { server, first } = run(ops, steps);
          const truth = (key: string) => {
            const row = server.entities.get(entityKey(SPACE, 'notes', key));
            return row ? stripRow(row) : null;
          };
          // The server shows what the accepted ops and their computed fields say, newest first.
          const accepted = Object.values(ops).flat().filter((op) => first.get(op.id)!.result !== 'rejected');
          for (const key of KEYS) {
            const doc = truth(key);
            expect(doc === null || doc.deleted ? null : doc.fields).toEqual(expected(accepted.filter((op) => op.key === key)));
          }
          const frames = server.frames.flat();
          const replicas: { own: Op[]; label: string }[] = [
            ...DEVICES.map((d) => ({ label: d, own: ops[d]!.filter((op) => first.get(op.id)!.result !== 'rejected') })),
            { label: 'bystander', own: [] },
          ];
          replicas.forEach((replica, i) => {
            // What reaches this replica: its own acked ops (as sent) and every frame, some twice, in any order.
            type Item = { op: Op } | { entity: EntityRow };
            const items: Item[] = [...replica.own.map((op) => ({ op })), ...frames.map((entity) => ({ entity }))];
            const delivered = shuffle([...items, ...items.filter((_, j) => (j + i + seed) % 3 === 0)], seed + i);
            for (const key of KEYS) {
              let doc: Doc | null = null;
              for (const item of delivered) {
                if ('op' in item && item.op.key === key) doc = applyOp(doc, item.op).doc;
                if ('entity' in item && item.entity.key === key) doc = mergeDocs(doc, stripRow(item.entity));
              }
              if (!docEquals(doc, truth(key))) {
                throw new Error(`${replica.label} ${key}: ${JSON.stringify(doc)} != server ${JSON.stringify(truth(key))}`);
              }
            }
          });
        },
      ),
      RUNS,
    );
  });

  test('a resend, whole or straddling, is answered with its first result, never runs the rule again, and records no effect', () => {
    fc.assert(
      fc.property(
        fc.tuple(...DEVICES.map(() => fc.array(opSpec, { minLength: 1, maxLength: 6 }))),
        fc.array(step, { minLength: 1, maxLength: 14 }),
        (specs, steps) => {
          const ops = Object.fromEntries(DEVICES.map((d, i) => [d, opsOf(d, specs[i]!)]));
          ruleRuns = 0;
          const { first, resent, server } = run(ops, steps);
          // Exactly one effect per applied op, whatever the schedule: none for a rejected, superseded or resent op.
          const applied = [...first.values()].filter((r) => r.result === 'applied').map((r) => r.id);
          expect([...server.effects].sort()).toEqual(applied.sort());
          // The rule ran exactly once per op that reached it (every op here passes limits, role and schema).
          expect(ruleRuns).toBe(first.size);
          for (const { first: was, again } of resent) {
            const answer: OpResult = { seq: was.seq, id: was.id, result: 'duplicate', first: was.result as 'applied' | 'superseded' | 'rejected' };
            expect(again).toEqual({
              ...answer,
              ...(was.code ? { code: was.code } : {}), ...(was.message ? { message: was.message } : {}),
            });
          }
        },
      ),
      RUNS,
    );
  });

  test('the schedules reach what they are for: rejections by the rule, computed fields, resends', () => {
    // Not a property: one fixed run shows the generator is not vacuous (a rule that never rejects, or a
    // schedule that never resends, would make the two properties above prove little).
    const ops = {
      a: opsOf('a', [{ kind: 'put', key: 'k1', value: { x: 1, locked: true }, gap: 1 }, { kind: 'patch', key: 'k1', value: { x: 2 }, gap: 5 }]),
      b: opsOf('b', [{ kind: 'patch', key: 'k1', value: { y: 'p' }, gap: 2 }, { kind: 'patch', key: 'k2', value: { x: 3 }, gap: 1 }]),
      c: opsOf('c', []),
    };
    const { server, first, resent } = run(ops, [
      { device: 0, size: 1, resend: null, joinNext: false },
      { device: 1, size: 2, resend: null, joinNext: false },
      { device: 0, size: 1, resend: 0, joinNext: true },
      { device: 1, size: 1, resend: 0, joinNext: false },
    ]);
    expect([...first.values()].map((r) => [r.id, r.result, r.code ?? null])).toEqual([
      ['a:1', 'applied', null], ['b:1', 'rejected', 'locked'], ['b:2', 'rejected', 'no_threes'], ['a:2', 'applied', null],
    ]);
    expect(resent.map((r) => r.again.id)).toEqual(['a:1', 'b:1', 'b:2']);
    expect(server.entities.get(entityKey(SPACE, 'notes', 'k1'))!.fields).toEqual({ x: 20, locked: true, by: 'ua', count: 2, at: 1003 });
  });
});

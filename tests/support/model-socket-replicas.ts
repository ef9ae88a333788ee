// The read side of tests/model-socket.test.ts: what the relay lost on the way to each device, tombstone
// purges (the retention horizon passing), and the end-of-run check that every replica holds exactly the
// server's docs — values and stamps, tombstones included — with two exceptions checked precisely:
//
//   purged tombstone  the server forgot a tombstone (PROTOCOL §7.1) that a replica still holds: the
//                     replica's doc must be the server's doc joined with (some of) the purged tombstones.
//   hole              the relay dropped a `changes` frame mid-stream (or held it past a cut while a later
//                     frame went through). TCP cannot do that; the next frame's `from` shows the device
//                     the gap and it subscribes again (PROTOCOL §7), so a hole is a failure. Reported
//                     (not thrown here) only for an entity whose final server version was in a frame this
//                     device lost and reached it in no other frame or snapshot, with the replica behind
//                     (joined with the server's doc it gives the server's doc); any other difference throws.
import { docEquals, mergeDocs } from '../../core/merge.ts';
import type { Doc } from '../../core/types.ts';
import type { EntityWire } from '../../schema/wire.ts';
import { audit } from '../../device/audit.ts';
import { docOfWire } from '../../device/records.ts';
import type { FaultProxy } from './fault-proxy.ts';
import { rawEntities, stableDoc } from './model-socket-checks.ts';
import type { SocketDevice } from './model-socket-device.ts';
import type { TestServer } from './server.ts';

export interface FrameWatch {
  /** Tombstones purged from the run's space, per `collection/key`. */
  purged: Map<string, Doc[]>;
  /** `changes` frames of the run's space dropped by a fault or lost to a cut on the way to a device. */
  lostFrames: number;
  /** serverSeqs of entity `id` in `changes` frames the relay lost on the way to `device`. */
  lostFor(device: string, id: string): ReadonlySet<number>;
  /** Cuts the device's relayed connections; returns how many were open. */
  cut(device: string): number;
  stop(): void;
}

/** A frame in a line, for FERRY_MODEL_SOCKET_TRACE=1. */
function brief(data: string): string {
  const f = JSON.parse(data) as Record<string, any>;
  if (f.type === 'changes') return `changes cursor ${f.cursor} [${f.entities.map((e: EntityWire) => `${e.key}@${e.serverSeq}`).join(' ')}]`;
  if (f.type === 'push') return `push rid ${f.rid} seqs ${f.ops.map((op: { seq: number }) => op.seq).join(',')}`;
  if (f.type === 'ack') return `ack rid ${f.rid} through ${f.through} [${f.results.map((x: any) => `${x.seq}:${x.result}`).join(' ')}]`;
  return data.slice(0, 160);
}

export function createFrameWatch(proxy: FaultProxy, space: string, trace = false): FrameWatch {
  const deviceOf = new Map<number, string>();
  const connsOf = new Map<string, number[]>();
  const lost = new Map<string, Map<string, Set<number>>>();
  const none: ReadonlySet<number> = new Set();
  const watch: FrameWatch = {
    purged: new Map(),
    lostFrames: 0,
    lostFor: (device, id) => lost.get(device)?.get(id) ?? none,
    cut: (device) => (connsOf.get(device) ?? []).reduce((sum, conn) => sum + proxy.cutWs(conn), 0),
    stop: () => proxy.observeWs(null),
  };
  proxy.observeWs((event) => {
    if (trace) console.log(`  relay #${event.conn} ${deviceOf.get(event.conn)?.slice(0, 4) ?? '?'} ${event.to} ${event.fate} ${brief(event.data)}`);
    if (event.to === 'up') {
      // The hello names the connection's device, whatever became of the frame.
      if (deviceOf.has(event.conn) || !event.data.startsWith('{"type":"hello"')) return;
      const device = (JSON.parse(event.data) as { device: string }).device;
      deviceOf.set(event.conn, device);
      connsOf.set(device, [...(connsOf.get(device) ?? []), event.conn]);
      return;
    }
    if (event.fate === 'delivered' || !event.data.startsWith('{"type":"changes"')) return;
    const device = deviceOf.get(event.conn);
    const frame = JSON.parse(event.data) as { space: string; entities: EntityWire[] };
    if (device === undefined || frame.space !== space) return;
    watch.lostFrames += 1;
    const byEntity = lost.get(device) ?? new Map<string, Set<number>>();
    lost.set(device, byEntity);
    for (const e of frame.entities) {
      const id = `${e.collection}/${e.key}`;
      byEntity.set(id, (byEntity.get(id) ?? new Set()).add(e.serverSeq));
    }
  });
  return watch;
}

/**
 * The retention horizon passes: the server forgets every tombstone of the space. Only at a moment
 * retention assumes — every outbox empty and every device's clock past the server's (raised as a
 * welcome would), so no op older than a purged tombstone can still arrive. False when skipped.
 */
export async function purgeTombstones(server: TestServer, devices: readonly SocketDevice[], space: string, watch: FrameWatch): Promise<boolean> {
  for (const device of devices) if ((await device.store.outboxStats()).count > 0) return false;
  const ferry = server.app.decorator.ferry;
  const { lamport } = await ferry.store.heads();
  for (const device of devices) await device.store.observeLamport(lamport);
  const dead = (await ferry.store.changesSince(space, 0, 10_000)).filter((e) => e.deleted);
  if (dead.length === 0) return false;
  await ferry.store.purgeTombstones(Date.now() + 1);
  for (const e of dead) {
    const id = `${e.collection}/${e.key}`;
    watch.purged.set(id, [...(watch.purged.get(id) ?? []), docOfWire(e)]);
  }
  return true;
}

/** `server` joined with some subset of `tombstones` equals `doc`. */
function withPurged(doc: Doc | null, server: Doc | null, tombstones: readonly Doc[]): boolean {
  for (let mask = 1; mask < 1 << Math.min(tombstones.length, 6); mask += 1) {
    let joined = server;
    tombstones.forEach((t, i) => { if (mask & (1 << i)) joined = mergeDocs(joined, t); });
    if (docEquals(doc, joined)) return true;
  }
  return false;
}

/** Every device's replica of the space against the server's entities; returns the exceptions counted. */
export async function checkReplicas(devices: readonly SocketDevice[], serverEntities: readonly EntityWire[], space: string,
  watch: FrameWatch): Promise<{ holes: string[]; purgedHeld: number }> {
  const tally = { holes: [] as string[], purgedHeld: 0 };
  const server = new Map(serverEntities.map((e) => [`${e.collection}/${e.key}`, e]));
  for (const device of devices) {
    const problems = await audit(device.store);
    if (problems.length > 0) throw new Error(`device ${device.index}: ${problems.join('; ')}`);
    const records = new Map((await rawEntities(device.factory)).filter((rec) => rec.space === space)
      .map((rec) => [`${rec.collection}/${rec.key}`, rec]));
    const behind = new Set<string>();
    for (const id of new Set([...server.keys(), ...records.keys()])) {
      const rec = records.get(id);
      const wire = server.get(id);
      const mine = rec?.doc ?? null;
      const theirs = wire === undefined ? null : docOfWire(wire);
      if (rec !== undefined && rec.pending !== 0) throw new Error(`device ${device.index} ${id}: ${rec.pending} pending ops after quiesce`);
      if (docEquals(mine, theirs)) continue;
      const tombstones = watch.purged.get(id) ?? [];
      if (withPurged(mine, theirs, tombstones)) {
        tally.purgedHeld += 1;
        continue;
      }
      const top = tombstones.reduce<Doc | null>((doc, t) => mergeDocs(doc, t), theirs);
      const lostFinal = wire !== undefined && watch.lostFor(device.id, id).has(wire.serverSeq)
        && !(device.received.get(id)?.has(wire.serverSeq) ?? false);
      if (lostFinal && top !== null && docEquals(mergeDocs(mine, top), top)) {
        tally.holes.push(`device ${device.index} ${id} behind at ${stableDoc(mine)} (serverSeq ${wire.serverSeq} lost)`);
        behind.add(id);
        continue;
      }
      const seen = [...(device.received.get(id) ?? [])].sort((a, b) => a - b);
      throw new Error(`device ${device.index} ${id}: replica ${stableDoc(mine)} != server ${stableDoc(theirs)} (serverSeq ${wire?.serverSeq}; `
        + `received ${seen.join(',') || 'none'}; lost ${[...watch.lostFor(device.id, id)].join(',') || 'none'}; purged ${tombstones.length}; `
        + `session errors: ${device.errors.join(' | ') || 'none'})`);
    }
    // What the person sees: the server's live items, except where the replica is a hole behind.
    const visible = await device.store.all(space, 'items');
    const want = serverEntities.filter((e) => !e.deleted && e.collection === 'items' && !behind.has(`items/${e.key}`));
    const shown = visible.filter((item) => !behind.has(`items/${item.key}`));
    if (shown.length !== want.length) throw new Error(`device ${device.index} shows ${shown.length} items, server has ${want.length} live`);
    for (const item of shown) {
      const e = server.get(`items/${item.key}`);
      if (e === undefined || !docEquals({ ...docOfWire(e), fields: item.fields }, docOfWire(e))) {
        throw new Error(`device ${device.index} shows ${item.key} as ${JSON.stringify(item.fields)}, server ${e === undefined ? 'has none' : JSON.stringify(e.fields)}`);
      }
    }
  }
  return tally;
}

// The fast suites' server: the drainer's Transport over an in-memory database, planned by the very
// function the real server plans with (core/apply.ts `planGroup`), so the fake cannot drift from the
// server's rules (dedupe with first results, seq_gap, lamport floor, per-op rejections, membership).
// It passes the same contract suite as the HTTP and socket transports (tests/transport-contract.test.ts).
//
// What it adds is what a network does: it can be told to fail the way real networks and servers do,
// given as what came over the wire (status and body text) and mapped by core's errorFromResponse, so the
// suites also exercise the mapping the real transport uses. And a proxy's body limit (`maxOpsPerBatch`).
import { type Batch, type DeviceRow, entityKey, type LedgerRow, ledgerKey, memberKey, planGroup } from '../../core/apply.ts';
import { errorFromResponse, networkError, SyncError } from '../../core/errors.ts';
import type { EntityRow, Op } from '../../core/types.ts';
import type { CollectionVersions } from '../../core/versions.ts';
import type { PushRequest, Transport } from '../../device/ports.ts';
import { collectionCheck, type CollectionSchemas } from '../../schema/collections.ts';
import { statusOf } from '../../schema/protocol.ts';
import type { AckBody, ErrorBody } from '../../schema/wire.ts';

/** An answer other than a normal ack: an HTTP status with its body, or no answer at all. */
export type FakeFailure = { status: number; body: string | object } | { network: true };

interface Scripted {
  failure: FakeFailure;
  /** Commit the batch first, then fail: the ack is lost on its way back. */
  afterCommit: boolean;
}

export interface FakeServerOptions {
  /** The user every push comes from. */
  user?: string;
  /** Per-collection schemas, as the real server takes them (AppDeps.collections). */
  collections?: CollectionSchemas;
  /** Per-collection schema versions and upgrades, as the real server takes them (AppDeps.versions). */
  versions?: CollectionVersions;
  /** Spaces the user may write; default every space. */
  member?: (space: string) => boolean;
}

export class FakeServer implements Transport {
  /** Ops of 413s above this many ops, like a proxy's body limit. */
  maxOpsPerBatch = Number.POSITIVE_INFINITY;
  /** Highest lamport other devices wrote; acks carry the greater of it and the device's own. */
  othersLamport = 0;
  /** Every push received, in order: the seqs it held. */
  readonly calls: number[][] = [];
  /** Every op processed and not rejected, in commit order: each must appear once. */
  readonly committed: Op[] = [];
  readonly #user: string;
  readonly #check: ReturnType<typeof collectionCheck>;
  readonly #member: (space: string) => boolean;
  readonly #versions: CollectionVersions | undefined;
  readonly #script: Scripted[] = [];
  // The database: what the server's tables hold, keyed as planGroup's input is.
  readonly #devices = new Map<string, DeviceRow>();
  readonly #ledger = new Map<string, LedgerRow>();
  readonly #ids = new Set<string>();
  readonly #entities = new Map<string, EntityRow>();
  #serverSeq = 0;
  #lamport = 0;
  /** A floor set before the device's first push (see `maxLamport`). */
  #floor = 0;

  constructor(options: FakeServerOptions = {}) {
    this.#user = options.user ?? 'user';
    this.#check = collectionCheck(options.collections);
    this.#member = options.member ?? (() => true);
    this.#versions = options.versions;
  }

  /** Highest seq processed for the (single) device that pushed here. */
  get processed(): number {
    return this.#device()?.lastSeq ?? 0;
  }

  /** The device's lamport floor. Raising it stands for another replica of the device's clock running
   * ahead of this one (the device's clock fell behind): its next push gets `lamport_regression`. */
  get maxLamport(): number {
    return this.#device()?.maxLamport ?? this.#floor;
  }

  set maxLamport(floor: number) {
    this.#floor = floor;
    const device = this.#device();
    if (device !== undefined) device.maxLamport = floor;
  }

  /** The server's current state of every entity. */
  entities(): EntityRow[] {
    return [...this.#entities.values()].sort((a, b) => a.serverSeq - b.serverSeq);
  }

  /** The next push gets `failure` instead of being processed. */
  failNext(failure: FakeFailure, times = 1): this {
    for (let i = 0; i < times; i++) this.#script.push({ failure, afterCommit: false });
    return this;
  }

  /** The next push is committed, then its answer is lost (`failure` comes back instead). */
  commitThenFail(failure: FakeFailure = { network: true }): this {
    this.#script.push({ failure, afterCommit: true });
    return this;
  }

  async push(request: PushRequest): Promise<AckBody> {
    this.calls.push(request.ops.map((op) => op.seq));
    await Promise.resolve(); // answers come back asynchronously, as over a network
    const scripted = this.#script.shift();
    if (scripted !== undefined && !scripted.afterCommit) throw toError(scripted.failure);
    const ack = this.#process({ userId: this.#user, device: request.device, ops: request.ops });
    if (scripted !== undefined) throw toError(scripted.failure);
    return ack;
  }

  #device(): DeviceRow | undefined {
    return this.#devices.values().next().value;
  }

  #process(batch: Batch): AckBody {
    if (batch.ops.length > this.maxOpsPerBatch) throw toError(httpError(413, 'too_large', 'The batch is too large.'));
    if (!this.#devices.has(batch.device) && this.#floor > 0) {
      this.#devices.set(batch.device, { id: batch.device, userId: batch.userId, lastSeq: 0, maxLamport: this.#floor });
    }
    const plan = planGroup([batch], {
      devices: this.#devices,
      ledger: this.#ledger,
      members: new Map(batch.ops.filter((op) => this.#member(op.space)).map((op) => [memberKey(batch.userId, op.space), 'editor'] as const)),
      entities: this.#entities,
      takenIds: new Set(batch.ops.map((op) => op.id).filter((id) => this.#ids.has(id))),
      serverSeq: this.#serverSeq,
      lamport: Math.max(this.#lamport, this.othersLamport),
      ...(this.#check ? { check: this.#check } : {}),
      ...(this.#versions ? { versions: this.#versions } : {}),
    });
    const outcome = plan.outcomes[0]!;
    if (!outcome.ok) throw toError({ status: statusOf(outcome.error.code), body: outcome.error satisfies ErrorBody });
    // Commit: the plan's rows replace the database's, as the real store's statements do.
    for (const [id, device] of plan.devices) this.#devices.set(id, device);
    const bySeq = new Map(batch.ops.map((op) => [op.seq, op] as const));
    for (const row of plan.ledger) {
      this.#ledger.set(ledgerKey(row.device, row.seq), row);
      if (row.opId !== null) this.#ids.add(row.opId);
      if (row.result !== 'rejected') this.committed.push(bySeq.get(row.seq)!);
    }
    for (const entity of plan.entities) this.#entities.set(entityKey(entity.space, entity.collection, entity.key), entity);
    this.#serverSeq = plan.serverSeq;
    this.#lamport = plan.lamport;
    return { through: outcome.through, lamport: Math.max(outcome.lamport, this.othersLamport), results: outcome.results };
  }
}

export function httpError(status: number, code: string, message: string, extra: object = {}): FakeFailure {
  return { status, body: { code, message, ...extra } };
}

function toError(failure: FakeFailure): SyncError {
  if ('network' in failure) return networkError(new TypeError('Failed to fetch'));
  const text = typeof failure.body === 'string' ? failure.body : JSON.stringify(failure.body);
  return errorFromResponse(failure.status, text) ?? new SyncError('protocol', 'The fake was told to fail with a 2xx JSON body.');
}

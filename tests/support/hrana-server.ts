// A stand-in for sqld (the libSQL server) on 127.0.0.1: the Hrana 2 protocol over HTTP (`POST /v2/pipeline`,
// what @libsql/client speaks to an `http://` URL), each stream (baton) a connection of its own to one
// local libSQL file through the `libsql` package (the native engine under @libsql/client). sqld itself is
// not on npm or in Debian, so this is how the remote path of `openDatabase` runs here: the real client,
// real HTTP, interactive write transactions held across requests by baton, SQLITE_BUSY returned (not
// waited for) when another stream holds the write lock, as sqld returns a locked database's error.
//
// Not sqld: no auth, no replication, no v3 protocol (the client falls back to v2), streams never expire.
// Only what the client sends is implemented: execute, batch (with conditions), sequence, store_sql,
// close_sql, get_autocommit, close.
import Database from 'libsql';

type Value = { type: 'null' } | { type: 'integer'; value: string } | { type: 'float'; value: number } | { type: 'text'; value: string } | { type: 'blob'; base64: string };
interface Stmt { sql?: string; sql_id?: number; args?: Value[]; named_args?: Array<{ name: string; value: Value }>; want_rows?: boolean }
type Cond = { type: 'ok' | 'error'; step: number } | { type: 'not'; cond: Cond } | { type: 'and' | 'or'; conds: Cond[] } | { type: 'is_autocommit' };
interface Stream { db: Database.Database; sqls: Map<number, string> }

export interface HranaServer {
  url: string;
  /** Requests answered, and SQLITE_BUSY errors returned (another stream held the write lock). */
  counts: { pipelines: number; busy: number; streams: number };
  stop(): Promise<void>;
}

function decode(value: Value): unknown {
  switch (value.type) {
    case 'null': return null;
    case 'integer': return BigInt(value.value);
    case 'float': return value.value;
    case 'text': return value.value;
    case 'blob': return Buffer.from(value.base64, 'base64');
  }
}

function encode(value: unknown): Value {
  if (value === null || value === undefined) return { type: 'null' };
  if (typeof value === 'bigint') return { type: 'integer', value: value.toString() };
  if (typeof value === 'number') return Number.isInteger(value) ? { type: 'integer', value: String(value) } : { type: 'float', value };
  if (typeof value === 'string') return { type: 'text', value };
  if (value instanceof Uint8Array) return { type: 'blob', base64: Buffer.from(value).toString('base64') };
  throw new Error(`cannot encode ${typeof value}`);
}

function execute(stream: Stream, stmt: Stmt) {
  const sql = stmt.sql ?? stream.sqls.get(stmt.sql_id!);
  if (sql === undefined) throw Object.assign(new Error('unknown sql_id'), { code: 'SQL_NOT_FOUND' });
  const prepared = stream.db.prepare(sql).safeIntegers(true);
  const named = Object.fromEntries((stmt.named_args ?? []).map(({ name, value }) => [name.replace(/^[:@$]/, ''), decode(value)]));
  const args = [...(stmt.args ?? []).map(decode), ...(Object.keys(named).length > 0 ? [named] : [])];
  if (prepared.reader) {
    const rows = prepared.raw(true).all(...args) as unknown[][];
    const cols = prepared.columns().map((c) => ({ name: c.name, decltype: c.type ?? null }));
    return { cols, rows: rows.map((row) => row.map(encode)), affected_row_count: 0, last_insert_rowid: null };
  }
  const info = prepared.run(...args);
  return { cols: [], rows: [], affected_row_count: Number(info.changes), last_insert_rowid: String(info.lastInsertRowid) };
}

function holds(cond: Cond | undefined | null, results: unknown[], errors: unknown[], db: Database.Database): boolean {
  if (!cond) return true;
  switch (cond.type) {
    case 'ok': return results[cond.step] != null;
    case 'error': return errors[cond.step] != null;
    case 'not': return !holds(cond.cond, results, errors, db);
    case 'and': return cond.conds.every((c) => holds(c, results, errors, db));
    case 'or': return cond.conds.some((c) => holds(c, results, errors, db));
    case 'is_autocommit': return !db.inTransaction;
  }
}

export function startHranaServer(file: string): HranaServer {
  const streams = new Map<string, Stream>();
  const counts = { pipelines: 0, busy: 0, streams: 0 };
  const failure = (error: unknown) => {
    const code = String((error as { code?: unknown }).code ?? 'UNKNOWN');
    if (code.startsWith('SQLITE_BUSY')) counts.busy++;
    return { type: 'error', error: { message: error instanceof Error ? error.message : String(error), code } };
  };
  const open = (): Stream => {
    counts.streams++;
    // timeout 0: a BEGIN IMMEDIATE against a held lock answers SQLITE_BUSY at once (a native wait here
    // would stall this whole server, holder included, as in one process it would).
    const db = new Database(file, { timeout: 0 });
    db.exec('PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON');
    return { db, sqls: new Map() };
  };
  const handle = (stream: Stream, request: any): unknown => {
    switch (request.type) {
      case 'execute': return { type: 'execute', result: execute(stream, request.stmt) };
      case 'batch': {
        const results: unknown[] = [];
        const errors: unknown[] = [];
        for (const step of request.batch.steps as Array<{ condition?: Cond; stmt: Stmt }>) {
          if (!holds(step.condition, results, errors, stream.db)) {
            results.push(null);
            errors.push(null);
            continue;
          }
          try {
            results.push(execute(stream, step.stmt));
            errors.push(null);
          } catch (error) {
            results.push(null);
            errors.push(failure(error).error);
          }
        }
        return { type: 'batch', result: { step_results: results, step_errors: errors } };
      }
      case 'sequence':
        stream.db.exec(request.sql ?? stream.sqls.get(request.sql_id));
        return { type: 'sequence' };
      case 'store_sql':
        stream.sqls.set(request.sql_id, request.sql);
        return { type: 'store_sql' };
      case 'close_sql':
        stream.sqls.delete(request.sql_id);
        return { type: 'close_sql' };
      case 'get_autocommit': return { type: 'get_autocommit', is_autocommit: !stream.db.inTransaction };
      case 'close': return { type: 'close' };
      default: throw Object.assign(new Error(`unsupported request ${request.type}`), { code: 'PROTOCOL' });
    }
  };

  const server = Bun.serve({
    hostname: '127.0.0.1', port: 0,
    async fetch(req) {
      const { pathname } = new URL(req.url);
      if (req.method === 'GET') return new Response(pathname === '/v2' ? 'ok' : 'not found', { status: pathname === '/v2' ? 200 : 404 });
      if (req.method !== 'POST' || pathname !== '/v2/pipeline') return new Response('not found', { status: 404 });
      counts.pipelines++;
      const body = (await req.json()) as { baton: string | null; requests: any[] };
      const stream = body.baton ? streams.get(body.baton) : open();
      if (body.baton) streams.delete(body.baton);
      if (!stream) return Response.json({ message: 'unknown baton', code: 'STREAM_EXPIRED' }, { status: 400 });
      let closed = false;
      const results = body.requests.map((request) => {
        try {
          const response = handle(stream, request);
          if (request.type === 'close') closed = true;
          return { type: 'ok', response };
        } catch (error) {
          return failure(error);
        }
      });
      let baton: string | null = null;
      if (closed) stream.db.close();
      else streams.set((baton = crypto.randomUUID()), stream);
      return Response.json({ baton, base_url: null, results });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`, counts,
    async stop() {
      await server.stop(true);
      for (const stream of streams.values()) stream.db.close();
      streams.clear();
    },
  };
}

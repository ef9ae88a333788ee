// The benchmark's WebSocket client: as little work per frame as the measurement allows, the same code
// against Ferry and against every raw baseline, so client costs cancel out of the ratios.
import { wallMs } from './lib.ts';

export interface BenchSocket {
  ws: WebSocket;
  send(message: unknown): void;
  /** Called with every frame, already JSON.parsed, and its arrival time (wallMs). */
  onFrame: (frame: any, at: number) => void;
  /**
   * Sees each frame's text first; returning true consumes it unparsed. Lets thousands of subscribers in
   * one client process receive every frame while only a sample pays for JSON.parse.
   */
  onText: ((text: string) => boolean) | null;
  /** Resolves with the next frame matching `match`; rejects after `ms`. */
  next(match: (frame: any) => boolean, ms?: number): Promise<any>;
  closed: Promise<number>;
  close(): void;
}

export function connect(url: string, protocols: string[] = []): Promise<BenchSocket> {
  const ws = new WebSocket(url, protocols);
  const waiters = new Set<{ match: (f: any) => boolean; resolve: (f: any) => void }>();
  let onClose!: (code: number) => void;
  const closed = new Promise<number>((resolve) => (onClose = resolve));
  const socket: BenchSocket = {
    ws,
    send: (message) => ws.send(typeof message === 'string' ? message : JSON.stringify(message)),
    onFrame: () => {},
    onText: null,
    next(match, ms = 30_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`bench socket: no matching frame within ${ms} ms`));
        }, ms);
        const waiter = { match, resolve: (f: any) => { clearTimeout(timer); resolve(f); } };
        waiters.add(waiter);
      });
    },
    closed,
    close: () => ws.close(),
  };
  ws.addEventListener('message', (event) => {
    const at = wallMs();
    const text = String(event.data);
    if (socket.onText?.(text)) return;
    const frame = JSON.parse(text);
    socket.onFrame(frame, at);
    for (const w of waiters) {
      if (w.match(frame)) {
        waiters.delete(w);
        w.resolve(frame);
      }
    }
  });
  ws.addEventListener('close', (event) => onClose(event.code));
  return new Promise((resolve, reject) => {
    ws.addEventListener('open', () => resolve(socket), { once: true });
    ws.addEventListener('error', () => reject(new Error(`bench socket: failed to open ${url}`)), { once: true });
  });
}

/** Opens a Ferry sync socket with a bearer token and says hello as `device`. */
export async function ferrySocket(url: string, token: string, device: string): Promise<BenchSocket> {
  const socket = await connect(url, ['ferry.v1', `ferry.auth.${token}`]);
  const welcome = socket.next((f) => f.type === 'welcome' || f.type === 'error', 30_000);
  socket.send({ type: 'hello', protocol: 1, device });
  const frame = await welcome;
  if (frame.type !== 'welcome') throw new Error(`bench socket: hello refused: ${JSON.stringify(frame)}`);
  return socket;
}

/**
 * Sends a push frame and resolves with the answer that carries its rid (ack or error), and the round
 * trip in ms. One at a time per call; callers await it before the next.
 */
export async function roundTrip(socket: BenchSocket, frame: { rid: number } & Record<string, unknown>): Promise<{ answer: any; ms: number }> {
  const answer = socket.next((f) => f.rid === frame.rid && (f.type === 'ack' || f.type === 'error'));
  const started = performance.now();
  socket.send(frame);
  const got = await answer;
  return { answer: got, ms: performance.now() - started };
}

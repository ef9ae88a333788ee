// A small test client for /v1/sync: collects frames and waits for the ones a test expects (bounded).
export interface TestSocket {
  ws: WebSocket;
  frames: any[];
  send(message: unknown): void;
  /** Resolves with the first frame (seen or future) that matches; rejects after `ms`. */
  next(match: (frame: any) => boolean, ms?: number): Promise<any>;
  closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

/** `offer`: more subprotocols to offer after `ferry.v1` (e.g. `ferry.from`). */
export function openSocket(url: string, token: string | null, headers: Record<string, string> = {}, offer: string[] = []): Promise<TestSocket> {
  const protocols = ['ferry.v1', ...offer, ...(token ? [`ferry.auth.${token}`] : [])];
  const ws = new WebSocket(url, { protocols, headers } as any);
  const frames: any[] = [];
  const waiters: Array<{ match: (f: any) => boolean; resolve: (f: any) => void }> = [];
  let onClose!: (v: { code: number; reason: string }) => void;
  const closed = new Promise<{ code: number; reason: string }>((r) => (onClose = r));
  ws.addEventListener('message', (event) => {
    const frame = JSON.parse(String(event.data));
    frames.push(frame);
    for (const w of [...waiters]) if (w.match(frame)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(frame); }
  });
  ws.addEventListener('close', (event) => onClose({ code: event.code, reason: event.reason }));
  const socket: TestSocket = {
    ws, frames, closed,
    send: (message) => ws.send(typeof message === 'string' ? message : JSON.stringify(message)),
    next(match, ms = 5000) {
      const seen = frames.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching frame in ${ms} ms; got ${JSON.stringify(frames.slice(-5))}`)), ms);
        waiters.push({ match, resolve: (f) => { clearTimeout(timer); resolve(f); } });
      });
    },
    close: () => ws.close(),
  };
  return new Promise((resolve, reject) => {
    ws.addEventListener('open', () => resolve(socket), { once: true });
    ws.addEventListener('error', () => reject(new Error('socket failed to open')), { once: true });
  });
}

/** Opens, says hello and waits for welcome. */
export async function helloSocket(url: string, token: string, device: string, offer: string[] = []): Promise<TestSocket> {
  const socket = await openSocket(url, token, {}, offer);
  socket.send({ type: 'hello', protocol: 1, device });
  await socket.next((f) => f.type === 'welcome');
  return socket;
}

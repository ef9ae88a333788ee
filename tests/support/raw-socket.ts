// A WebSocket client over a plain TCP socket, written by hand (RFC 6455: upgrade, masked frames out,
// unmasked frames in) so a test can stop READING it: `pause()` leaves the bytes in the kernel, the
// server's send buffer fills, and its backpressure handling shows. A browser or Bun WebSocket always
// reads. It also satisfies the socket manager's `SocketLike` (device/socket-manager.ts), so the real
// client can be handed a socket that a test then makes slow.
import { connect, type Socket } from 'node:net';
import type { SocketLike } from '../../device/socket-manager.ts';

const OPEN = 1;
const CLOSED = 3;

export interface RawSocketOptions {
  host: string;
  port: number;
  path?: string;
  protocols: string[];
}

export class RawWebSocket implements SocketLike {
  readyState = 0;
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  /** Every text frame received, in order (also those received after `pause`, once resumed). */
  readonly texts: string[] = [];
  /** The close frame's code and reason once it arrived (null: the TCP connection ended without one). */
  closeFrame: { code: number; reason: string } | null = null;
  /** Resolves when the TCP connection has ended, whatever the reason. */
  readonly ended: Promise<{ code: number; reason: string }>;
  /** Bytes read off the TCP socket so far (HTTP response included). */
  bytesRead = 0;

  readonly #tcp: Socket;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #handshaken = false;
  #fragments: Buffer[] = [];
  /** Bytes the frame being received needs in all (0: unknown yet). */
  #need = 0;
  #endedResolve!: (v: { code: number; reason: string }) => void;
  #closeNotified = false;

  constructor(options: RawSocketOptions) {
    this.ended = new Promise((resolve) => (this.#endedResolve = resolve));
    const { host, port, path = '/v1/sync', protocols } = options;
    this.#tcp = connect({ host, port });
    this.#tcp.on('connect', () => {
      this.#tcp.write(
        `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('base64')}\r\n` +
          `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${protocols.join(', ')}\r\n\r\n`,
      );
    });
    this.#tcp.on('data', (chunk: Buffer) => {
      this.bytesRead += chunk.length;
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      // A big frame arrives in many chunks: parse once it is whole, not on every chunk.
      if (this.#buffered >= this.#need) this.#parse();
    });
    // As in a browser, a connection that fails after the server's close frame arrived is closed with that
    // frame's code, not failed: Deno may reset the TCP connection before our answering close frame lands.
    this.#tcp.on('error', () => {
      if (this.closeFrame === null) this.onerror?.(new Event('error'));
    });
    this.#tcp.on('close', () => this.#finish());
  }

  /** Stop reading: nothing more is taken off the TCP socket until `resume`. */
  pause(): void {
    this.#tcp.pause();
  }

  resume(): void {
    this.#tcp.resume();
  }

  send(data: string): void {
    if (this.readyState !== OPEN) return;
    this.#tcp.write(frame(0x1, Buffer.from(data)));
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState === CLOSED) return;
    if (this.readyState === OPEN) {
      const body = Buffer.alloc(2 + Buffer.byteLength(reason));
      body.writeUInt16BE(code, 0);
      body.write(reason, 2);
      this.#tcp.write(frame(0x8, body));
    }
    this.readyState = 2;
    this.#tcp.end();
    // Do not wait for the server's answer: a paused socket would never read it.
    setTimeout(() => this.#tcp.destroy(), 1000).unref?.();
  }

  /** Drops the TCP connection at once, without a close frame. */
  destroy(): void {
    this.#tcp.destroy();
  }

  #take(n: number): Buffer {
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#buffered);
    const taken = all.subarray(0, n);
    const rest = all.subarray(n);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#buffered = rest.length;
    return taken;
  }

  /** The first `n` buffered bytes; joins only as many chunks as that takes. */
  #peek(n: number): Buffer {
    let joined = 0;
    let count = 0;
    while (joined < n && count < this.#chunks.length) joined += this.#chunks[count++]!.length;
    if (count > 1) this.#chunks.splice(0, count, Buffer.concat(this.#chunks.slice(0, count), joined));
    return this.#chunks[0]!.subarray(0, n);
  }

  #parse(): void {
    if (!this.#handshaken) {
      const head = this.#peek(this.#buffered);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const response = this.#take(end + 4).toString('latin1');
      if (!/^HTTP\/1\.1 101/.test(response)) {
        this.onerror?.(new Event('error'));
        this.#tcp.destroy();
        return;
      }
      this.#handshaken = true;
      this.readyState = OPEN;
      this.onopen?.(new Event('open'));
    }
    while (this.#buffered >= 2) {
      const head = this.#peek(Math.min(this.#buffered, 10));
      const fin = (head[0]! & 0x80) !== 0;
      const opcode = head[0]! & 0x0f;
      let length = head[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (head.length < 4) return;
        length = head.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (head.length < 10) return;
        length = Number(head.readBigUInt64BE(2));
        offset = 10;
      }
      if ((head[1]! & 0x80) !== 0) throw new Error('a server frame must not be masked');
      if (this.#buffered < offset + length) {
        this.#need = offset + length;
        return;
      }
      this.#need = 0;
      const payload = Buffer.from(this.#take(offset + length).subarray(offset));
      this.#frame(fin, opcode, payload);
    }
  }

  #frame(fin: boolean, opcode: number, payload: Buffer): void {
    if (opcode === 0x9) { // ping → pong with the same payload
      this.#tcp.write(frame(0xa, payload));
      return;
    }
    if (opcode === 0xa) return;
    if (opcode === 0x8) {
      this.closeFrame = payload.length >= 2
        ? { code: payload.readUInt16BE(0), reason: payload.subarray(2).toString('utf8') }
        : { code: 1005, reason: '' };
      if (this.readyState === OPEN) this.close(this.closeFrame.code);
      return;
    }
    if (opcode === 0x1 || opcode === 0x2 || opcode === 0x0) {
      this.#fragments.push(payload);
      if (!fin) return;
      const text = Buffer.concat(this.#fragments).toString('utf8');
      this.#fragments = [];
      this.texts.push(text);
      this.onmessage?.(new MessageEvent('message', { data: text }));
    }
  }

  #finish(): void {
    if (this.#closeNotified) return;
    this.#closeNotified = true;
    this.readyState = CLOSED;
    const { code, reason } = this.closeFrame ?? { code: 1006, reason: '' };
    this.#endedResolve({ code, reason });
    this.onclose?.(new CloseEvent('close', { code, reason, wasClean: this.closeFrame !== null }));
  }
}

/** A client frame: FIN set, masked (RFC 6455 §5.3). */
function frame(opcode: number, payload: Buffer): Buffer {
  const mask = Buffer.from(crypto.getRandomValues(new Uint8Array(4)));
  let header: Buffer;
  if (payload.length < 126) header = Buffer.from([0x80 | opcode, 0x80 | payload.length]);
  else if (payload.length < 65536) {
    header = Buffer.alloc(4);
    header[0] = 0x80 | opcode;
    header[1] = 0x80 | 126;
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  const masked = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) masked[i] = payload[i]! ^ mask[i & 3]!;
  return Buffer.concat([header, mask, masked]);
}

/** Opens a raw socket and resolves once the upgrade is answered (rejects on a refusal or after `ms`). */
export function openRawSocket(options: RawSocketOptions, ms = 5000): Promise<RawWebSocket> {
  const socket = new RawWebSocket(options);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no upgrade in ${ms} ms`)), ms);
    socket.onopen = () => {
      clearTimeout(timer);
      socket.onopen = null;
      resolve(socket);
    };
    socket.onerror = () => {
      clearTimeout(timer);
      reject(new Error('the upgrade failed'));
    };
  });
}

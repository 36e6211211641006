/** Shared by the SMTP listener tests: their hooks and listener (listenerHarness), a config with test defaults, a raw SMTP client. */
import net from 'node:net';
import type { Logger } from 'pino';
import { afterAll, afterEach, beforeAll } from 'vitest';
import type { SmtpListenerConfig } from '../../src/config/schema.js';
import { createEnqueue } from '../../src/send/enqueue.js';
import type { Enqueue } from '../../src/send/types.js';
import { createSmtpListener, type SmtpListener } from '../../src/smtp/server.js';
import type { TreeFs } from '../../src/tree/fs.js';
import { makeWorld, type World } from './send-fixture.js';

export function listenerConfig(over: Partial<SmtpListenerConfig> = {}): SmtpListenerConfig {
  return {
    listen: [{ host: '127.0.0.1', port: 0 }],
    banner: 'ferrypost ESMTP',
    max_size: 100_000,
    max_recipients: 3,
    max_clients: 10,
    allowed_networks: ['127.0.0.0/8', '::1/128'],
    memory_spool_limit: 1 << 20,
    socket_timeout: 10_000,
    ...over,
  };
}

/** A raw SMTP client: cmd() sends a line, data() raw bytes; each resolves with the complete (multi-line) reply. */
export async function rawClient(port: number) {
  const sock = net.connect(port, '127.0.0.1');
  let buf = '';
  const waiters: Array<() => void> = [];
  sock.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    waiters.splice(0).forEach((f) => f());
  });
  const reply = async (): Promise<string> => {
    for (;;) {
      const m = /^(?:\d{3}-.*\r\n)*\d{3} .*\r\n/.exec(buf);
      if (m) {
        buf = buf.slice(m[0].length);
        return m[0].trimEnd();
      }
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  const greeting = await reply();
  return {
    greeting,
    async cmd(line: string): Promise<string> {
      sock.write(`${line}\r\n`);
      return reply();
    },
    async data(bytes: Buffer): Promise<string> {
      sock.write(bytes);
      return reply();
    },
    close: () => sock.destroy(),
  };
}

export interface StartOptions {
  enqueue?: Enqueue;
  log?: Logger;
  /** The listener's host name (default mx.test, which routes nowhere). */
  hostname?: string;
  /** Default: the world's keyring (every peer key usable). */
  peerProblem?: (fingerprint: string) => string | undefined;
}

export interface ListenerHarness {
  /** The keys, router and temp tree of this file's tests (send-fixture.ts). */
  readonly w: World;
  /** The real Enqueue into w's tree, optionally over a faulty TreeFs, with a logger. */
  enqueue(opts?: { fs?: TreeFs; log?: Logger }): Enqueue;
  /** Starts a listener (closed after each test, or by stop()) and resolves with its address. */
  start(cfg: SmtpListenerConfig, opts?: StartOptions): Promise<{ host: string; port: number }>;
  stop(): Promise<void>;
}

/** Registers the hooks the listener tests share: one world per file, a clean tree and no listener after each test. */
export function listenerHarness(): ListenerHarness {
  let world: World | undefined;
  let listener: SmtpListener | undefined;
  const stop = async (): Promise<void> => {
    await listener?.close();
    listener = undefined;
  };
  beforeAll(async () => {
    world = await makeWorld();
  });
  afterAll(() => world?.cleanup());
  afterEach(async () => {
    await stop();
    world?.reset();
  });
  const h: ListenerHarness = {
    get w() {
      if (!world) throw new Error('listenerHarness: the world is made in beforeAll');
      return world;
    },
    enqueue: ({ fs, log } = {}) =>
      createEnqueue({
        keyring: h.w.keyring, router: h.w.router, tree: h.w.tree, spoolDir: h.w.spool, expiryMs: 86_400_000,
        compressionLevel: 6, memorySpoolLimit: 1 << 20, gcPacer: undefined, ...(fs ? { fs } : {}), ...(log ? { log } : {}),
      }),
    async start(cfg, { enqueue = h.enqueue(), log, hostname = 'mx.test', peerProblem = h.w.keyring.peerProblem } = {}) {
      listener = createSmtpListener({ config: cfg, enqueue, router: h.w.router, peerProblem, hostname, ...(log ? { log } : {}) });
      const [addr] = await listener.listen();
      return addr!;
    },
    stop,
  };
  return h;
}

/**
 * Wiring shared by the commands: config → logger → keyring → router → enqueue. Each command opens
 * what it needs and closes it; nothing here is global.
 */
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { loadKeyring, type Keyring } from '../keys/keyring.js';
import { createLogger } from '../log/logger.js';
import { createGcPacer, type GcPacer } from '../memory/gc-pacer.js';
import { openOutbox, recordingEnqueue, type Outbox } from '../queue/outbox.js';
import { createRouter } from '../route/router.js';
import { createEnqueue } from '../send/enqueue.js';
import type { Enqueue } from '../send/types.js';

export interface NodeContext {
  configFile: string;
  cfg: Readonly<Config>;
  log: Logger;
  keyring: Keyring;
  router: ReturnType<typeof createRouter>;
  outbox: Outbox;
  enqueue: Enqueue;
  hostname: string;
  /** One per process: every large stream, sent or received, adds to the same pile of dead Buffers. */
  gcPacer: GcPacer;
  close(): void;
}

export async function openNode(configFile: string, opts: { logLevel?: string } = {}): Promise<NodeContext> {
  const cfg = loadConfig(configFile);
  const log = createLogger({ level: opts.logLevel ?? cfg.log.level, file: cfg.log.file, name: cfg.node.name });
  const keyring = await loadKeyring(cfg);
  const router = createRouter(cfg.peers);
  const outbox = openOutbox(cfg.node.state_dir);
  const gcPacer = createGcPacer();
  const inner = createEnqueue({
    keyring,
    router,
    tree: cfg.node.tree,
    spoolDir: path.join(cfg.node.state_dir, 'spool'),
    expiryMs: cfg.packets.expiry,
    compressionLevel: cfg.packets.compression_level,
    memorySpoolLimit: cfg.smtp?.memory_spool_limit ?? 1_048_576,
    log,
    gcPacer,
  });
  const enqueue = recordingEnqueue(inner, outbox, (err) => log.warn({ evt: 'outbox.error', err }, 'could not index a queued packet'));
  return {
    configFile,
    cfg,
    log,
    keyring,
    router,
    outbox,
    enqueue,
    hostname: cfg.smtp?.hostname ?? os.hostname(),
    gcPacer,
    close: () => outbox.close(),
  };
}

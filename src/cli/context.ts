/**
 * Wiring shared by the commands: config → logger → keyring → router → enqueue. Each command opens
 * what it needs and closes it; nothing here is global.
 */
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { FerryError } from '../errors/index.js';
import { loadKeyring, type Keyring } from '../keys/keyring.js';
import { createLogger } from '../log/logger.js';
import { createGcPacer, type GcPacer } from '../memory/gc-pacer.js';
import { nullOutbox, openOutbox, recordingEnqueue, type Outbox } from '../queue/outbox.js';
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
  requireNodeUser(cfg.node.state_dir, cfg.node.tree);
  requireWritableState(cfg.node.state_dir, ['']);
  const outbox = openOutboxOrNothing(cfg.node.state_dir, log);
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

/**
 * SQLite opens a database it cannot write and fails only at the first write ("attempt to write a
 * readonly database", naming no file): typically files left by a command run as root. Say which file
 * and how to fix it before opening anything.
 */
export function requireWritableState(stateDir: string, which: readonly string[] = ['', 'outbox.sqlite', 'journal.sqlite']): void {
  const files = which.flatMap((f) => (f ? [f, `${f}-wal`, `${f}-shm`] : [f]));
  for (const f of files) {
    const p = path.join(stateDir, f);
    if (!existsSync(p)) continue;
    try {
      accessSync(p, constants.R_OK | constants.W_OK);
    } catch {
      const owner = statSync(p).uid;
      const me = os.userInfo();
      throw new FerryError(
        'CONFIG',
        `${p} is not writable by user ${me.username} (uid ${me.uid}; the file's owner is uid ${owner}): left by a command run as another user, e.g. root? ` +
          `(give the state directory back to the daemon's user: chown -R ${me.username}: ${stateDir})`,
      );
    }
  }
}

/**
 * The outbox index, or one that keeps nothing if it cannot be opened (corrupt, left unwritable by a
 * command run as root): it only feeds `ferrypost queue`, and must never stop mail. Said at error level,
 * with the fix.
 */
function openOutboxOrNothing(stateDir: string, log: Logger): Outbox {
  try {
    requireWritableState(stateDir, ['outbox.sqlite']);
    return openOutbox(stateDir);
  } catch (err) {
    const file = path.join(stateDir, 'outbox.sqlite');
    log.error({ evt: 'outbox.error', file, err: (err as Error).message },
      `the outbox index ${file} cannot be opened: mail goes on, but "ferrypost queue" shows no sender or recipients for what is sent now (fix the file's owner, or remove it: it is only an index)`);
    return nullOutbox();
  }
}

/**
 * Root must not write into a node another user owns: the files it creates (the outbox index, packets,
 * tree directories) are root's, and then the daemon cannot use them and a Syncthing running as the
 * node's user cannot read or delete them. Commands that write (run, sendmail, quarantine release)
 * refuse, naming the fix; root's own nodes (tests, single-user setups) are fine.
 */
export function requireNodeUser(stateDir: string, tree: string): void {
  if (process.getuid?.() !== 0) return;
  for (const dir of [stateDir, tree]) {
    let owner: number;
    try {
      owner = statSync(dir).uid;
    } catch {
      continue; // missing: reported by whatever needs it, with its own message
    }
    if (owner !== 0) {
      throw new FerryError('CONFIG', `${dir} belongs to uid ${owner}, and this command runs as root: files it wrote would be root's, which the daemon and Syncthing cannot use. Run it as the node's user, e.g. sudo -u '#${owner}' ferrypost ...`);
    }
  }
}

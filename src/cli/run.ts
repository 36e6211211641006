/**
 * `ferrypost run`: the daemon. SMTP listener + receiver + injector, until SIGTERM/SIGINT, then a
 * graceful stop: stop accepting, let transactions and packets in hand finish, close the journal.
 */
import path from 'node:path';
import { createInjector } from '../inject/index.js';
import { selfKeyAdvice, unusablePeers } from '../keys/usability.js';
import { reopenLogFile } from '../log/logger.js';
import { DecryptWorker } from '../packet/decrypt-offload.js';
import { createReceiver } from '../receive/receiver.js';
import { removeLeftovers } from '../send/leftovers.js';
import type { CrashPoint, Outcome } from '../receive/process.js';
import { acquireDaemonLock, type DaemonLock } from '../store/daemon-lock.js';
import { openJournal } from '../store/journal.js';
import { openNode, requireWritableState } from './context.js';

export interface RunOptions {
  logLevel?: string;
  /** Resolves when the daemon should stop (tests); default: SIGTERM/SIGINT. */
  until?: Promise<void>;
}

export async function runDaemon(configFile: string, opts: RunOptions = {}): Promise<void> {
  const node = await openNode(configFile, opts.logLevel ? { logLevel: opts.logLevel } : {});
  const { cfg, log } = node;
  // One daemon per state directory (store/daemon-lock.ts): before anything reads the inbox.
  let lock: DaemonLock;
  try {
    lock = acquireDaemonLock(cfg.node.state_dir);
  } catch (e) {
    node.close();
    throw e;
  }
  // What has started, stopped in reverse order: at SIGTERM, and also when the start fails part way
  // (e.g. the SMTP port is taken), because a receiver left running would go on draining the inbox
  // after the lock is given up, next to the daemon that takes it then.
  const stops: Array<() => unknown> = [];
  let failed = false;
  for (const { advice, ...u } of unusablePeers(cfg.peers, node.keyring)) log.warn({ evt: 'keys.peer-unusable', ...u }, advice);
  const selfAdvice = await selfKeyAdvice(node.keyring);
  if (selfAdvice) log.warn({ evt: 'keys.self-aead', fingerprint: node.keyring.self.fingerprint }, selfAdvice);
  try {
    // SIGHUP (logrotate's postrotate, `systemctl reload`): reopen the log file. Unhandled, it killed the
    // daemon (exit 129, which systemd's Restart=on-failure does not restart).
    // Also the listener's TLS certificate and users file are read again (a renewed certificate).
    let reloadSmtp: (() => Promise<void>) | undefined;
    const onHup = () => {
      try {
        const reopened = reopenLogFile(log);
        log.info({ evt: 'node.hup', reopened }, reopened ? 'SIGHUP: log file reopened' : 'SIGHUP: nothing to reopen (logging to stderr)');
      } catch (err) {
        log.error({ evt: 'node.hup', err: (err as Error).message }, 'SIGHUP: could not reopen the log file; still writing to the old one');
      }
      reloadSmtp?.().then(
        () => log.info({ evt: 'smtp.reloaded' }, 'SIGHUP: smtp.tls and auth_users_file read again'),
        (err: unknown) => log.error({ evt: 'smtp.reload-failed', err: (err as Error).message }, 'SIGHUP: smtp.tls or auth_users_file not usable; the ones in use stay'),
      );
    };
    process.on('SIGHUP', onHup);
    stops.push(() => process.off('SIGHUP', onHup));
    requireWritableState(cfg.node.state_dir, ['journal.sqlite']); // the journal, unlike the outbox index, is needed
    const journal = openJournal(path.join(cfg.node.state_dir, 'journal.sqlite'));
    stops.push(() => journal.close());
    const metricsModule = cfg.metrics ? await import('../metrics/metrics.js') : undefined;
    const metrics = metricsModule ? metricsModule.createMetrics(() => journal.inState('deferred').length) : undefined;
    const enqueue = metrics ? metrics.countEnqueue(node.enqueue) : node.enqueue;
    const injector = cfg.delivery ? await createInjector(cfg.delivery, { hostname: node.hostname, log }) : undefined;
    if (injector) stops.push(() => injector.close());
    // Large packets decrypt and inflate on the second core; started now, ~10 MiB of RSS (packet/decrypt-offload.ts).
    const decryptWorker = injector ? new DecryptWorker() : undefined;
    if (decryptWorker) stops.push(() => decryptWorker.close());
    decryptWorker?.warm();
    const receiver = injector
      ? createReceiver({
          tree: cfg.node.tree,
          stateDir: cfg.node.state_dir,
          keyring: node.keyring,
          journal,
          injector,
          enqueue,
          hostname: node.hostname,
          log,
          ...(metrics ? { onOutcome: (_entry: unknown, outcome: Outcome) => metrics.rxOutcome(outcome) } : {}),
          rescanIntervalMs: cfg.receive.rescan_interval,
          concurrency: cfg.receive.concurrency,
          retryInitialMs: cfg.receive.retry_initial,
          retryMaxMs: cfg.receive.retry_max,
          queueLifetimeMs: cfg.receive.queue_lifetime,
          now: Date.now,
          gcPacer: node.gcPacer,
          decryptWorker,
          // Crash tests only: see test/stack/crash.test.ts.
          crashAt: crashPointFromEnv(process.env.FERRYPOST_TEST_CRASH_AT),
        })
      : undefined;
    if (!injector) log.warn({ evt: 'rx.disabled' }, 'no delivery configured: packets for this node wait in the tree');
    // Loaded only when configured: each of these modules costs start-up time and memory.
    const smtp = cfg.smtp ? (await import('../smtp/server.js')).createSmtpListener({ config: cfg.smtp, enqueue, router: node.router, peerProblem: node.keyring.peerProblem, log, hostname: node.hostname }) : undefined;

    if (receiver) stops.push(() => receiver.stop()); // before start(): it may fail after its watcher started
    await receiver?.start();
    // A send-only node crashes too: its temp and spool leftovers (the receiver's start removes them otherwise).
    if (!receiver) {
      await removeLeftovers(cfg.node.tree, cfg.node.state_dir, log, (where, err) =>
        log.warn({ evt: 'rx.scan-skipped', path: where, err: (err as Error).message }, 'cannot read this part of the tree; skipped (check its owner and permissions)'));
    }
    if (smtp) stops.push(() => smtp.close());
    const bound = (await smtp?.listen()) ?? [];
    if (smtp && cfg.smtp?.tls) reloadSmtp = () => smtp.reload();
    const metricsServer = metricsModule && metrics && cfg.metrics ? await metricsModule.serveMetrics(metrics, cfg.metrics.listen.host, cfg.metrics.listen.port, (err) => log.error({ evt: 'metrics.error', err: err.message }, 'metrics server error')) : undefined;
    if (metricsServer) {
      stops.push(() => metricsServer.close());
      log.info({ evt: 'metrics.listening', port: metricsServer.address.port }, 'metrics on /metrics');
    }
    // Bounded memory on large messages depends on it (memory/gc-pacer.ts): say once whether it works.
    if (!node.gcPacer.active()) {
      log.warn({ evt: 'node.gc-pacer-off' }, "GC pacer off (V8's gc() not reachable, or node runs with its own --expose-gc* flag): large messages will use more memory (docs/performance-history.md)");
    }
    log.info({ evt: 'node.started', node: cfg.node.name, fingerprint: node.keyring.self.fingerprint, smtp: bound, tree: cfg.node.tree }, 'ferrypost running');

    const stopSignal =
      opts.until ??
      new Promise<void>((resolve) => {
        process.once('SIGTERM', () => resolve());
        process.once('SIGINT', () => resolve());
      });
    await stopSignal;
    // Stop accepting first (metrics, SMTP), then finish the packets in hand, then close the rest.
    log.info({ evt: 'node.stopping' }, 'stopping: no new mail accepted, finishing work in hand');
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    let stopError: { error: unknown } | undefined;
    for (const stop of stops.splice(0).reverse()) {
      try {
        await stop();
      } catch (error) {
        log.error({ evt: 'node.stop-failed', err: error instanceof Error ? error.message : String(error) }, 'a part of the daemon failed to stop');
        stopError ??= { error }; // every part is still stopped
      }
    }
    try {
      node.close();
    } finally {
      lock.release();
    }
    // After a failed start, the start's error is the one reported.
    if (stopError && !failed) throw stopError.error;
  }
  log.info({ evt: 'node.stopped' }, 'stopped');
  log.flush?.();
}

function crashPointFromEnv(v: string | undefined): CrashPoint | undefined {
  return v === 'after-inject' || v === 'after-delivered' ? v : undefined;
}

/**
 * Prometheus metrics (prom-client) on their own registry (no global default), served on
 * metrics.listen at /metrics. Counters follow the log event names. A scrape failure never affects mail.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import client from 'prom-client';
import { errorCodeOf } from '../errors/index.js';
import type { Outcome } from '../receive/process.js';
import type { Enqueue } from '../send/types.js';

export interface Metrics {
  registry: client.Registry;
  rxOutcome(outcome: Outcome): void;
  /** Wraps an Enqueue to count packets written and failures by error code. */
  countEnqueue(inner: Enqueue): Enqueue;
}

/** deferredCount is read at scrape time (the journal's count of deferred packets). */
export function createMetrics(deferredCount: () => number = () => 0): Metrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'ferrypost_process_' });
  const rx = new client.Counter({ name: 'ferrypost_rx_packets_total', help: 'Inbound packets handled, by outcome', labelNames: ['outcome'], registers: [registry] });
  const written = new client.Counter({ name: 'ferrypost_packets_written_total', help: 'Packets written into the tree', registers: [registry] });
  const messages = new client.Counter({ name: 'ferrypost_enqueue_messages_total', help: 'Messages submitted for enqueue, by result', labelNames: ['result'], registers: [registry] });
  new client.Gauge({
    name: 'ferrypost_rx_deferred_packets',
    help: 'Inbound packets waiting for a retry',
    registers: [registry],
    collect() {
      this.set(deferredCount());
    },
  });
  return {
    registry,
    rxOutcome: (outcome) => rx.inc({ outcome }),
    countEnqueue(inner) {
      return {
        async submit(envelope, message) {
          try {
            const q = await inner.submit(envelope, message);
            written.inc(q.length);
            messages.inc({ result: 'queued' });
            return q;
          } catch (err) {
            messages.inc({ result: errorCodeOf(err) });
            throw err;
          }
        },
      };
    },
  };
}

export async function serveMetrics(metrics: Metrics, host: string, port: number, onError?: (err: Error) => void): Promise<{ address: AddressInfo; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('not found: try /metrics\n');
      return;
    }
    metrics.registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      // Later errors (a scraper's broken socket is the request's; this is the server's) must not be unhandled: that ends the daemon.
      server.on('error', (err) => onError?.(err));
      resolve();
    });
  });
  return {
    address: server.address() as AddressInfo,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

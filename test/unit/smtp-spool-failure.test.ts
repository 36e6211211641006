/**
 * A message larger than memory_spool_limit whose spool write fails (disk full, STATE/spool not
 * writable) gets its 4xx at once: the listener reads and drops the rest of DATA, which was paused for
 * backpressure, instead of leaving the client without a reply until socket_timeout.
 */
import { expect, it } from 'vitest';
import { createEnqueue } from '../../src/send/enqueue.js';
import type { SmtpError } from '../helpers/stack/smtp-client.js';
import { sendSmtp } from '../helpers/stack/smtp-client.js';
import { listenerConfig, listenerHarness } from './smtp-fixture.js';

const h = listenerHarness();

it('spool directory unusable: 451 within seconds, not at socket_timeout', async () => {
  const broken = createEnqueue({
    keyring: h.w.keyring, router: h.w.router, tree: h.w.tree, spoolDir: '/dev/null/spool', expiryMs: 86_400_000,
    compressionLevel: 6, memorySpoolLimit: 1024, gcPacer: undefined,
  });
  const { port } = await h.start(listenerConfig({ max_size: 50_000_000, socket_timeout: 60_000 }), { enqueue: broken });
  const big = Buffer.from(`Subject: big\r\n\r\n${'0123456789abcdef'.repeat(8 * 1024 * 1024 / 16).replace(/(.{64})/g, '$1\r\n')}\r\n`);
  const err = (await sendSmtp(port, { from: 'a@example.org', to: ['b@example.net'], raw: big }).catch((e: unknown) => e)) as SmtpError;
  expect(err.responseCode).toBe(451);
  expect(err.response).toMatch(/^451 4\.3\.0 /);
}, 30_000); // a reply only at socket_timeout (60 s) fails by this test's timeout; no timing is asserted

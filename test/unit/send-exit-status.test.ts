// The errors table's sendmail exit status agrees with its temporary flag: pipe transports (Postfix
// pipe(8), Exim) defer on 75 and bounce on anything else, so a temporary error must exit 75 and a
// permanent one must not. The sendmail path (runSendmail) exits with the table's status.
import { Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runSendmail } from '../../src/cli/sendmail.js';
import { ERROR_CODES, FerryError, replyFor, SYSEXIT } from '../../src/errors/index.js';
import type { Enqueue } from '../../src/send/types.js';

const failing = (err: unknown): Enqueue => ({
  async submit(_env, message) {
    if (!(message instanceof Uint8Array)) for await (const _ of message) void _;
    throw err;
  },
});

const sink = () => new Writable({ write: (_c, _e, cb) => cb() });

describe('sendmail exit status of every error code', () => {
  it.each(ERROR_CODES)('%s: temporary exactly when it exits 75', (code) => {
    const r = replyFor(new FerryError(code, 'x'));
    expect(r.sysexit === SYSEXIT.TEMPFAIL).toBe(r.temporary);
    expect(r.smtp >= 400 && r.smtp < 500).toBe(r.temporary);
  });

  it('CONFIG from the enqueue path (a routed peer without a key) exits 75, not 78', async () => {
    const code = await runSendmail(['-f', 'a@example.org', '--', 'b@example.net'], Readable.from([Buffer.from('x\n')]), {
      enqueue: failing(new FerryError('CONFIG', 'peer bob: no public key loaded')),
      stderr: sink(),
    });
    expect(code).toBe(SYSEXIT.TEMPFAIL);
  });

  it('recipients that do not fit one packet exit 64 (the MTA bounces instead of retrying forever)', async () => {
    const code = await runSendmail(['-f', 'a@example.org', '--', 'b@example.net'], Readable.from([Buffer.from('x\n')]), {
      enqueue: failing(new FerryError('ENVELOPE_TOO_BIG', 'too many recipients')),
      stderr: sink(),
    });
    expect(code).toBe(SYSEXIT.USAGE);
  });
});

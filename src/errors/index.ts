/**
 * One errors module (STYLE.md §8): every failure ferrypost reports carries a stable code, and one
 * table maps that code to an SMTP reply + enhanced status, an NNTP reply and a sendmail exit status.
 * Anything not in the table is treated as temporary (451 4.3.0 / 75), never as success.
 * Invariant (test/unit/send-exit-status.test.ts): a temporary code exits 75 and a permanent one does
 * not, since pipe transports (Postfix pipe(8), Exim) defer on 75 and bounce on every other failure.
 */

export const SYSEXIT = {
  OK: 0,
  USAGE: 64,
  DATAERR: 65,
  NOINPUT: 66,
  NOUSER: 67,
  UNAVAILABLE: 69,
  SOFTWARE: 70,
  CANTCREAT: 73,
  IOERR: 74,
  TEMPFAIL: 75,
  NOPERM: 77,
  CONFIG: 78,
} as const;

interface Reply {
  /** SMTP basic reply code. */
  smtp: number;
  /** RFC 3463 enhanced status code. */
  enhanced: string;
  /** NNTP reply for POST (441/440) or IHAVE (436/437) style refusals. */
  nntp: number;
  /** sendmail(8)-compatible exit status. */
  sysexit: number;
  temporary: boolean;
}

const TABLE = {
  // Temporary: the client must retry; nothing was accepted.
  STORE_FAILED: { smtp: 451, enhanced: '4.3.0', nntp: 436, sysexit: SYSEXIT.TEMPFAIL, temporary: true },
  DISK_FULL: { smtp: 452, enhanced: '4.3.1', nntp: 436, sysexit: SYSEXIT.TEMPFAIL, temporary: true },
  INJECT_TEMPFAIL: { smtp: 451, enhanced: '4.4.1', nntp: 436, sysexit: SYSEXIT.TEMPFAIL, temporary: true },
  SHUTTING_DOWN: { smtp: 421, enhanced: '4.3.2', nntp: 400, sysexit: SYSEXIT.TEMPFAIL, temporary: true },
  TIMEOUT: { smtp: 451, enhanced: '4.4.2', nntp: 436, sysexit: SYSEXIT.TEMPFAIL, temporary: true },
  INTERNAL: { smtp: 451, enhanced: '4.3.0', nntp: 403, sysexit: SYSEXIT.TEMPFAIL, temporary: true },
  // `ferrypost run` while another daemon holds the node's state directory (store/daemon-lock.ts).
  ALREADY_RUNNING: { smtp: 421, enhanced: '4.3.2', nntp: 400, sysexit: SYSEXIT.TEMPFAIL, temporary: true },
  // The peer a recipient routes to has a key that cannot be encrypted to now (expired, revoked): the
  // admin installs its renewed key and the MTA's retry goes through (RFC 3463 X.7.5: key not available).
  PEER_KEY_UNUSABLE: { smtp: 450, enhanced: '4.7.5', nntp: 436, sysexit: SYSEXIT.TEMPFAIL, temporary: true },
  // Permanent: the client must not retry the same thing.
  NO_ROUTE: { smtp: 550, enhanced: '5.1.2', nntp: 437, sysexit: SYSEXIT.NOUSER, temporary: false },
  BAD_ADDRESS: { smtp: 553, enhanced: '5.1.3', nntp: 441, sysexit: SYSEXIT.DATAERR, temporary: false },
  RELAY_DENIED: { smtp: 554, enhanced: '5.7.1', nntp: 502, sysexit: SYSEXIT.NOPERM, temporary: false },
  AUTH_REQUIRED: { smtp: 530, enhanced: '5.7.0', nntp: 480, sysexit: SYSEXIT.NOPERM, temporary: false },
  TOO_BIG: { smtp: 552, enhanced: '5.3.4', nntp: 441, sysexit: SYSEXIT.DATAERR, temporary: false },
  // RCPT: the client sends the remaining recipients in another transaction (RFC 5321 §4.5.3.1.10).
  TOO_MANY_RECIPIENTS: { smtp: 452, enhanced: '4.5.3', nntp: 441, sysexit: SYSEXIT.TEMPFAIL, temporary: true },
  // The recipients routed to one node do not fit in one packet header (send/header-budget.ts): the same
  // list would fail again, so this is permanent (the SMTP listener refuses the RCPT before it happens).
  ENVELOPE_TOO_BIG: { smtp: 552, enhanced: '5.5.3', nntp: 441, sysexit: SYSEXIT.USAGE, temporary: false },
  BAD_MESSAGE: { smtp: 554, enhanced: '5.6.0', nntp: 441, sysexit: SYSEXIT.DATAERR, temporary: false },
  NO_RECIPIENTS: { smtp: 554, enhanced: '5.5.1', nntp: 441, sysexit: SYSEXIT.USAGE, temporary: false },
  INJECT_PERMFAIL: { smtp: 550, enhanced: '5.0.0', nntp: 437, sysexit: SYSEXIT.UNAVAILABLE, temporary: false },
  USAGE: { smtp: 501, enhanced: '5.5.4', nntp: 501, sysexit: SYSEXIT.USAGE, temporary: false },
  // Temporary for mail (an admin fixes the config, the MTA retries): 75, not 78 (EX_CONFIG), which pipe
  // transports bounce. Commands that report a config error to a person exit 78 (cli/main.ts reportError).
  CONFIG: { smtp: 451, enhanced: '4.3.5', nntp: 403, sysexit: SYSEXIT.TEMPFAIL, temporary: true },
  // Packet verification failures (receiver side; the reason a packet is quarantined).
  PACKET_NAME: { smtp: 554, enhanced: '5.6.0', nntp: 437, sysexit: SYSEXIT.DATAERR, temporary: false },
  PACKET_HASH: { smtp: 554, enhanced: '5.6.0', nntp: 437, sysexit: SYSEXIT.DATAERR, temporary: false },
  PACKET_MALFORMED: { smtp: 554, enhanced: '5.6.0', nntp: 437, sysexit: SYSEXIT.DATAERR, temporary: false },
  PACKET_VERSION: { smtp: 554, enhanced: '5.6.0', nntp: 437, sysexit: SYSEXIT.DATAERR, temporary: false },
  PACKET_UNKNOWN_SIGNER: { smtp: 554, enhanced: '5.7.7', nntp: 437, sysexit: SYSEXIT.DATAERR, temporary: false },
  PACKET_BAD_SIGNATURE: { smtp: 554, enhanced: '5.7.7', nntp: 437, sysexit: SYSEXIT.DATAERR, temporary: false },
  PACKET_WRONG_SENDER: { smtp: 554, enhanced: '5.7.7', nntp: 437, sysexit: SYSEXIT.DATAERR, temporary: false },
  PACKET_WRONG_RECIPIENT: { smtp: 554, enhanced: '5.7.7', nntp: 437, sysexit: SYSEXIT.DATAERR, temporary: false },
  PACKET_DECRYPT: { smtp: 554, enhanced: '5.7.5', nntp: 437, sysexit: SYSEXIT.DATAERR, temporary: false },
  PACKET_EXPIRED: { smtp: 554, enhanced: '5.4.7', nntp: 437, sysexit: SYSEXIT.DATAERR, temporary: false },
  PACKET_REPLAY: { smtp: 554, enhanced: '5.7.7', nntp: 437, sysexit: SYSEXIT.DATAERR, temporary: false },
} as const satisfies Record<string, Reply>;

export type ErrorCode = keyof typeof TABLE;

/** Every code, in table order. */
export const ERROR_CODES: readonly ErrorCode[] = Object.freeze(Object.keys(TABLE) as ErrorCode[]);

const UNMAPPED: Reply = TABLE.INTERNAL;

export class FerryError extends Error {
  readonly code: ErrorCode;
  /** Extra text for the protocol reply or the quarantine reason file. */
  readonly detail: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; detail?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FerryError';
    this.code = code;
    this.detail = options?.detail;
  }

  get reply(): Reply {
    return TABLE[this.code];
  }

  get temporary(): boolean {
    return TABLE[this.code].temporary;
  }
}

/** The reply for any thrown value: FerryError by its code, ENOSPC as disk full, the rest temporary. */
export function replyFor(err: unknown): Reply {
  if (err instanceof FerryError) return err.reply;
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  if (errno === 'ENOSPC' || errno === 'EDQUOT') return TABLE.DISK_FULL;
  if (errno === 'EIO' || errno === 'EROFS') return TABLE.STORE_FAILED;
  return UNMAPPED;
}

export function errorCodeOf(err: unknown): ErrorCode {
  if (err instanceof FerryError) return err.code;
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  if (errno === 'ENOSPC' || errno === 'EDQUOT') return 'DISK_FULL';
  return 'INTERNAL';
}

/** SMTP reply text: "4.3.0 message" with the enhanced code first, as Postfix writes it. */
export function smtpText(err: unknown): { responseCode: number; message: string } {
  const r = replyFor(err);
  const msg = err instanceof Error ? err.message : String(err);
  return { responseCode: r.smtp, message: `${r.enhanced} ${msg}` };
}

export function isFerryError(err: unknown, code?: ErrorCode): err is FerryError {
  return err instanceof FerryError && (code === undefined || err.code === code);
}

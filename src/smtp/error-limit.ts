/**
 * Postfix's answer to a client that keeps failing (smtpd_soft_error_limit, smtpd_hard_error_limit,
 * smtpd_error_sleep_time), per session: past SOFT_ERROR_LIMIT refusals each further one is answered
 * ERROR_SLEEP_MS late, and at HARD_ERROR_LIMIT the session ends with 421. Failed AUTH is stricter:
 * every failure is answered late and the third ends the session, so one connection guesses at most
 * three passwords, slowly (it guessed ~7,000 a second). Clients in allowed_networks (the site's own
 * MTA) are not slowed for refused recipients: only AUTH failures count for them.
 */
export const SOFT_ERROR_LIMIT = 10;
export const HARD_ERROR_LIMIT = 20;
export const ERROR_SLEEP_MS = 1000;
export const AUTH_FAILURE_LIMIT = 3;

interface Counts {
  errors: number;
  authFailures: number;
}

export interface ErrorVerdict {
  /** Answer this late. */
  delayMs: number;
  /** Answer 421 and close instead of the refusal. */
  close: boolean;
}

export function createErrorLimits(sleepMs: number = ERROR_SLEEP_MS): {
  refused(session: object): ErrorVerdict;
  authFailed(session: object): ErrorVerdict;
  /** A message was accepted: refusals start over (Postfix counts errors "without delivering mail"); AUTH failures do not. */
  delivered(session: object): void;
} {
  const counts = new WeakMap<object, Counts>();
  const of = (s: object): Counts => {
    let c = counts.get(s);
    if (!c) counts.set(s, (c = { errors: 0, authFailures: 0 }));
    return c;
  };
  return {
    refused(session) {
      const c = of(session);
      c.errors++;
      return { delayMs: c.errors > SOFT_ERROR_LIMIT ? sleepMs : 0, close: c.errors >= HARD_ERROR_LIMIT };
    },
    delivered(session) {
      const c = counts.get(session);
      if (c) c.errors = c.authFailures;
    },
    authFailed(session) {
      const c = of(session);
      c.errors++;
      c.authFailures++;
      return { delayMs: sleepMs, close: c.authFailures >= AUTH_FAILURE_LIMIT || c.errors >= HARD_ERROR_LIMIT };
    },
  };
}

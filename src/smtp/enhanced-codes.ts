/**
 * RFC 2034 ENHANCEDSTATUSCODES: the listener announces it (smtp-server's hideENHANCEDSTATUSCODES:
 * false), so every reply but the greeting, the EHLO/HELO reply and 3xx must start with one RFC 3463
 * code of the reply's class. smtp-server prefixes each reply with a code from its own table (by
 * reply code, or by the command's context), including the text of an error or a DATA callback
 * message, which it cannot take a code from. Our texts already start with the right one (the
 * errors/index.ts table, Postfix's wording: "451 4.3.5 ...", "250 2.0.0 Ok: queued as ..."), and would
 * get smtp-server's in front ("451 4.3.0 4.3.5 ..."). So per connection: a text that starts with a
 * code of the reply's class is sent as it is; one with a code of another class (a bug) loses it and
 * gets smtp-server's, so a client never sees a code that contradicts the reply.
 * Uses smtp-server 3.21's SMTPConnection#send(code, data, context) (context false: no code), the
 * one place it writes replies; test/unit/smtp-enhanced-codes.test.ts fails if that changes.
 */

/** The part of smtp-server's SMTPConnection this needs. */
export interface ReplySender {
  send(code: number, data?: string | string[], context?: string | false): void;
}

const LEADING_CODE = /^([245])\.\d{1,3}\.\d{1,3} +/;

export function keepOneEnhancedCode(connection: ReplySender): void {
  const send = connection.send.bind(connection);
  connection.send = (code, data, context) => {
    const m = typeof data === 'string' ? LEADING_CODE.exec(data) : null;
    if (!m) return send(code, data, context);
    if (m[1] === String(code)[0]) return send(code, data, false);
    return send(code, (data as string).slice(m[0].length), context);
  };
}

/**
 * Half-closed clients: a client may pipeline "<CRLF>.<CRLF>QUIT" and then close its sending side (Exim
 * does; over TLS it sends close_notify + FIN). Our 250 comes only after the packets are durable, so the
 * write side must stay open until the reply to DATA is written, or the client resends (a duplicate).
 *
 * Messages in hand are counted per smtp-server session object (one per connection, kept across
 * STARTTLS), never per address string: smtp-server reports "::ffff:"-mapped IPv4 peers unmapped, and
 * a proxy or XCLIENT may rewrite them. keepWritable is applied to the socket smtp-server first gets
 * (the raw TCP socket) and again to the TLS socket that replaces it after STARTTLS (see watchSocket).
 * Fails: never throws; a connection whose client went away is ended once nothing of it is in hand.
 */
import type { Socket } from 'node:net';

/** smtp-server's DATA stream: ended (writableEnded) once the final "." was parsed. */
interface DataStream {
  readonly writableEnded: boolean;
  readonly destroyed: boolean;
}

/** Messages being stored, per connection (the smtp-server session object). */
export interface InHand {
  /** From onData: `data` is the message's DATA stream, still receiving until its final ".". */
  begin(session: object, data?: DataStream): void;
  end(session: object): void;
  busy(session: object): boolean;
  /** The client is in the middle of a message: its final "." has not arrived. */
  receiving(session: object): boolean;
}

export function createInHand(): InHand {
  const count = new WeakMap<object, number>();
  const data = new WeakMap<object, DataStream>();
  return {
    begin(session, stream) {
      count.set(session, (count.get(session) ?? 0) + 1);
      if (stream) data.set(session, stream);
    },
    end(session) {
      const n = (count.get(session) ?? 1) - 1;
      if (n > 0) count.set(session, n);
      else count.delete(session);
    },
    busy: (session) => (count.get(session) ?? 0) > 0,
    receiving: (session) => {
      const s = data.get(session);
      return s !== undefined && !s.writableEnded && !s.destroyed;
    },
  };
}

/**
 * Lets `socket` stay writable after the client's FIN until nothing of its session is in hand. For the
 * TLS socket smtp-server creates at STARTTLS (allowHalfOpen false: it would end itself on the client's
 * close_notify), half-open is switched on here; Node reads `allowHalfOpen` when the readable side ends.
 */
export function watchSocket(socket: Socket, session: object, inHand: InHand): void {
  socket.allowHalfOpen = true;
  keepWritable(socket, () => inHand.busy(session), () => inHand.receiving(session));
}

/**
 * smtp-server writes a reply only while socket.readyState === 'open', and a half-closed socket reads
 * 'writeOnly': the 250 for a message whose client already sent QUIT and FIN would be dropped, and the
 * client would resend it (a duplicate). Report 'open' for as long as we can still write; the idle
 * socket timeout still closes a half-closed connection that stops talking.
 */
export function keepWritable(socket: Socket, busy: () => boolean, receiving: () => boolean = () => false): void {
  Object.defineProperty(socket, 'readyState', {
    configurable: true,
    get: () => (socket.destroyed ? 'closed' : socket.writable ? 'open' : 'readOnly'),
  });
  // After the client's FIN: a pipelined QUIT is answered and closed by smtp-server itself. For a
  // client that just went away, close our side once nothing of this connection is being stored.
  // onData runs from the DATA command on (a client must wait for 354, even when pipelining), so
  // once the bytes that came with the FIN are parsed, "not busy" means no message is in hand.
  // A client that closed in the middle of a message (no final ".") will never finish it: destroy the
  // socket, so smtp-server ends the transaction now (its spool file removed, its slot freed) instead of
  // at the idle timeout.
  socket.once('end', () => {
    const check = (): void => {
      if (socket.destroyed || !socket.writable) return;
      if (receiving()) socket.destroy();
      else if (busy()) setTimeout(check, 20).unref();
      else socket.end();
    };
    setImmediate(check);
  });
}

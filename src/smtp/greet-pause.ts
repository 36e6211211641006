/**
 * smtp-server holds every new connection 100 ms before its 220 greeting to catch "early talkers"
 * (spam software that speaks first) — a fixed cost per message for an MTA relaying over loopback,
 * where one message per connection is the norm (Postfix smtp, smtp-source): it capped ingest at
 * ~80 msg/s. Like Postfix's postscreen, which never delays mynetworks, trusted clients (the allowed
 * relay networks) get their greeting at once; everyone else keeps the pause.
 *
 * This replaces SMTPServer#connect on one server instance (not the library's prototype) and uses
 * smtp-server 3.21's connection internals; test/unit/smtp-server.test.ts fails if they change.
 * `onConnection` sees each connection's socket with its session object before any byte is read
 * (the half-close handling keys on that pair: half-close.ts), and the connection itself before it
 * sends anything (enhanced-codes.ts wraps its send).
 */
import type { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { ReplySender } from './enhanced-codes.js';

interface ConnectionInternals {
  remoteAddress: string;
  /** The one session object of the connection (smtp-server mutates it, never replaces it). */
  session: object;
  name: string;
  _setListeners(cb: () => void): void;
  connectionReady(): void;
  /** context: smtp-server's key for the reply's enhanced status code; false for none. */
  send(code: number, data?: string | string[], context?: string | false): void;
  on(evt: string, fn: (arg: unknown) => void): void;
  init(): void;
}

interface ServerInternals {
  options: { maxClients?: number };
  connections: Set<unknown>;
  _onError(err: unknown): void;
  _onClientConnect(data: unknown): void;
  connect(socket: unknown, socketOptions: unknown): void;
}

export function greetTrustedAtOnce(
  server: SMTPServer,
  trusted: (address: string) => boolean,
  onConnection?: (socket: unknown, session: object, connection: ReplySender) => void,
): void {
  const srv = server as unknown as ServerInternals;
  const Connection = SMTPConnection as unknown as new (server: unknown, socket: unknown, opts: unknown) => ConnectionInternals;
  srv.connect = function connect(socket: unknown, socketOptions: unknown): void {
    const connection = new Connection(srv, socket, socketOptions);
    srv.connections.add(connection);
    connection.on('error', (err) => srv._onError(err));
    connection.on('connect', (data) => srv._onClientConnect(data));
    onConnection?.(socket, connection.session, connection);
    const address = (socketOptions as { remoteAddress?: string } | undefined)?.remoteAddress ?? connection.remoteAddress;
    if (!trusted(address)) {
      connection.init();
      return;
    }
    connection._setListeners(() => {
      if (srv.options.maxClients && srv.connections.size > srv.options.maxClients) {
        connection.send(421, `${connection.name} Too many connected clients, try again in a moment`, false);
        return;
      }
      connection.connectionReady();
    });
  };
}

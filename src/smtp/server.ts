/**
 * The SMTP listener (smtp-server) over Enqueue. Relay is allowed from allowed_networks, otherwise only
 * after AUTH (offered only over STARTTLS, and only with an auth_users_file). Every recipient is routed
 * at RCPT time; the 250 after DATA is sent only once Enqueue.submit resolved, i.e. every packet is
 * durable in the tree (Postfix: 250 after fsync).
 * Fails per command with Postfix-style replies; a store failure after DATA is a 4xx (452 4.3.1 disk full,
 * 451 4.3.0 otherwise) and nothing is left in the tree. RCPT answers 452 4.5.3 past max_recipients or
 * when a node's recipients would not fit in its packet header (send/header-budget.ts); the client sends
 * the rest in another transaction. A client that half-closes after "." (and QUIT) still gets its reply
 * (half-close.ts). listen() rejects if a port cannot be bound. ENHANCEDSTATUSCODES is announced and
 * every reply carries one code (enhanced-codes.ts); RCPT TO:<Postmaster> is postmaster@<hostname>.
 */
import { readFile } from 'node:fs/promises';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import type { SmtpListenerConfig } from '../config/schema.js';
import { errorCodeOf, FerryError, isFerryError, replyFor, smtpText } from '../errors/index.js';
import { canonicalAddress, hasNonAscii } from '../route/canonical.js';
import { validateAddress, type Router } from '../route/router.js';
import { fixedHeaderBytes, HEADER_BUDGET, recipientHeaderBytes } from '../send/header-budget.js';
import type { Enqueue } from '../send/types.js';
import { createErrorLimits } from './error-limit.js';
import { keepOneEnhancedCode } from './enhanced-codes.js';
import { greetTrustedAtOnce } from './greet-pause.js';
import { createInHand, watchSocket } from './half-close.js';
import { createNetworkList, limitSize, parseUsersFile, type UserTable } from './policy.js';

export { keepWritable } from './half-close.js'; // used by test/helpers/stack/record-server.ts

/** smtp-server honours a per-session disabledCommands list (not in its type declarations). */
type SessionWithDisabled = SMTPServerSession & { disabledCommands?: string[] };

export interface SmtpListenerDeps {
  config: SmtpListenerConfig;
  enqueue: Enqueue;
  router: Router;
  /** Why the key of the peer with this fingerprint cannot be encrypted to now (Keyring.peerProblem). */
  peerProblem: (fingerprint: string) => string | undefined;
  log?: Logger;
  hostname: string;
  /** How late a failing client's answers come (error-limit.ts; tests shorten it). */
  errorSleepMs?: number;
}

export interface SmtpListener {
  /** Binds every configured address; the actual host/port of each (port 0 → the chosen port). */
  listen(): Promise<Array<{ host: string; port: number }>>;
  /**
   * Reads smtp.tls and smtp.auth_users_file again (a renewed certificate, a changed user) and uses them
   * for new connections (SIGHUP); on any error (CONFIG) the ones in use stay.
   */
  reload(): Promise<void>;
  close(): Promise<void>;
}

/** An smtp-server reply error: the text already carries the enhanced status code. */
function reply(code: number, text: string): Error {
  return Object.assign(new Error(text), { responseCode: code });
}

/** RFC 6531 §3.4: a UTF-8 address is refused in a transaction the client did not mark SMTPUTF8. */
const needsUtf8 = (address: string, session: SMTPServerSession): boolean =>
  hasNonAscii(address) && !(session.envelope as { smtpUtf8?: boolean }).smtpUtf8;

/** Client-facing text for a failed DATA: permanent errors say why; temporary ones stay generic. */
function dataError(err: unknown): Error {
  const { responseCode, message } = smtpText(err);
  const r = replyFor(err);
  if (!r.temporary || isFerryError(err, 'TOO_MANY_RECIPIENTS') || isFerryError(err, 'PEER_KEY_UNUSABLE')) return reply(responseCode, message);
  const generic = errorCodeOf(err) === 'DISK_FULL' ? 'Error: insufficient system storage' : 'Error: queue file write error';
  return reply(responseCode, `${r.enhanced} ${generic}`);
}

/**
 * smtp.tls's key and certificate and smtp.auth_users_file, read and checked as `run` will use them
 * (also by `check`): a file that cannot be read, a PEM that is not one, or a key that does not match
 * the certificate is CONFIG naming the setting and the file, not a bare OpenSSL error at start.
 * The users file is used only with TLS (AUTH is offered only after STARTTLS).
 */
export async function loadTlsAndUsers(config: SmtpListenerConfig): Promise<{ tls?: { key: Buffer; cert: Buffer }; users?: UserTable }> {
  if (!config.tls) return {};
  const read = (key: string, file: string) =>
    readFile(file).catch((err: unknown) => {
      throw new FerryError('CONFIG', `smtp.${key}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
    });
  const tls = { key: await read('tls.key', config.tls.key), cert: await read('tls.cert', config.tls.cert) };
  try {
    createSecureContext({ ...tls, minVersion: TLS_MIN_VERSION });
    // OpenSSL keeps a key and a certificate of different types side by side without complaint; the
    // handshakes would fail then. The certificate (the first one in the file) must be the key's.
    if (!new X509Certificate(tls.cert).checkPrivateKey(createPrivateKey(tls.key))) throw new Error('the key does not match the certificate');
  } catch (err) {
    throw new FerryError('CONFIG', `smtp.tls: key ${config.tls.key} and certificate ${config.tls.cert} are not a usable pair: ${(err as Error).message} (PEM files, the key matching the certificate)`, { cause: err });
  }
  const users = config.auth_users_file
    ? parseUsersFile((await read('auth_users_file', config.auth_users_file)).toString('utf8'), config.auth_users_file)
    : undefined;
  return { tls, ...(users ? { users } : {}) };
}

/** TLS 1.0 and 1.1 are refused (smtp-server's own default allows TLS 1.0). */
const TLS_MIN_VERSION = 'TLSv1.2';

export function createSmtpListener(deps: SmtpListenerDeps): SmtpListener {
  const { config, enqueue, router, log } = deps;
  const relayNets = createNetworkList(config.allowed_networks);
  const servers: SMTPServer[] = [];
  /** Messages being stored per connection (its session object), so a half-closed socket is ended only after its reply. */
  const inHand = createInHand();
  /** Packet header bytes the transaction's recipients take per node; keyed on the envelope, which smtp-server renews per transaction. */
  const headerUse = new WeakMap<object, Map<string, number>>();

  const client = (s: SMTPServerSession) => ({ client: s.remoteAddress, session: s.id, user: s.user });
  const limits = createErrorLimits(deps.errorSleepMs);
  /** Open sessions per client address outside allowed_networks, and the sessions counted there. */
  const perClient = new Map<string, number>();
  const counted = new WeakSet<object>();
  const perClientLimit = Math.max(1, Math.floor(config.max_clients / 2));
  /** The users of auth_users_file, as last read (listen, reload). */
  let users: UserTable | undefined;

  async function buildOptions(): Promise<SMTPServerOptions> {
    const { tls, users: table } = await loadTlsAndUsers(config);
    users = table;
    if (!tls && config.auth_users_file) {
      log?.warn({ evt: 'smtp.config', file: config.auth_users_file }, 'smtp.auth_users_file is ignored without smtp.tls: AUTH is only offered over TLS');
    }
    const disabled = [...(tls ? [] : ['STARTTLS']), ...(users ? [] : ['AUTH'])];
    return {
      name: deps.hostname,
      banner: config.banner,
      size: config.max_size,
      maxClients: config.max_clients,
      socketTimeout: config.socket_timeout,
      // On shutdown: transactions in progress get this long to finish, then 421 (no 250 was sent: the client retries).
      closeTimeout: 10_000,
      disabledCommands: disabled,
      authOptional: true,
      allowInsecureAuth: false,
      authMethods: ['PLAIN', 'LOGIN'],
      hideSTARTTLS: !tls,
      useXClient: false,
      useXForward: false,
      lmtp: false,
      disableReverseLookup: true,
      // Announced (smtp-server hides it by default): Postfix then logs and bounces with our RFC 3463
      // codes. Every reply carries exactly one (enhanced-codes.ts).
      hideENHANCEDSTATUSCODES: false,
      logger: false,
      ...(tls ? { ...tls, minVersion: TLS_MIN_VERSION } : {}),

      // AUTH is offered only once the connection is secure (not even advertised before STARTTLS).
      onConnect(session, callback) {
        if (users) (session as SessionWithDisabled).disabledCommands = ['AUTH'];
        // One address outside allowed_networks may hold half the slots at most (Postfix's
        // smtpd_client_connection_count_limit, mynetworks excepted): it cannot lock the site's MTA out.
        const ip = session.remoteAddress;
        if (!relayNets.contains(ip)) {
          const n = perClient.get(ip) ?? 0;
          if (n >= perClientLimit) {
            log?.warn({ evt: 'smtp.rejected', stage: 'connect', ...client(session), connections: n }, 'too many connections from one client');
            return callback(reply(421, `4.7.0 Error: too many connections from ${ip}; try again later`));
          }
          perClient.set(ip, n + 1);
          counted.add(session);
        }
        callback();
      },

      onClose(session) {
        if (!counted.delete(session)) return;
        const n = (perClient.get(session.remoteAddress) ?? 1) - 1;
        if (n > 0) perClient.set(session.remoteAddress, n);
        else perClient.delete(session.remoteAddress);
      },

      onSecure(socket, session, callback) {
        // STARTTLS replaced the socket: the TLS one must stay writable after close_notify + FIN too.
        watchSocket(socket as Socket, session, inHand);
        if (users) (session as SessionWithDisabled).disabledCommands = [];
        callback();
      },

      onAuth(auth, session, callback) {
        const ok = users !== undefined && typeof auth.password === 'string' && users.verify(auth.username ?? '', auth.password);
        if (!ok) {
          const v = limits.authFailed(session);
          log?.warn({ evt: 'smtp.auth_failed', ...client(session), username: auth.username, closing: v.close }, 'authentication failed');
          const answer = v.close ? reply(421, '4.7.0 Error: too many failed authentications; closing') : reply(535, '5.7.8 Error: authentication failed');
          setTimeout(() => callback(answer), v.delayMs).unref();
          return;
        }
        log?.info({ evt: 'smtp.auth', ...client(session), username: auth.username }, 'authenticated');
        callback(null, { user: auth.username });
      },

      onMailFrom(address, session, callback) {
        const from = address.address;
        if (needsUtf8(from, session)) {
          return callback(reply(553, `5.6.7 <${from}>: Sender address rejected: a UTF-8 address needs the SMTPUTF8 parameter (RFC 6531)`));
        }
        if (from !== '') {
          try {
            validateAddress(from);
          } catch (err) {
            log?.info({ evt: 'smtp.rejected', stage: 'mail', from, ...client(session) }, (err as Error).message);
            return callback(reply(553, `5.1.7 <${from}>: Sender address rejected: ${(err as Error).message.replace(/^<[^>]*>: /, '')}`));
          }
        }
        const declared = Number((address.args ? address.args['SIZE'] : undefined) ?? 0);
        if (declared > config.max_size) {
          return callback(reply(552, `5.3.4 Error: message size ${declared} exceeds fixed maximum message size ${config.max_size}`));
        }
        callback();
      },

      onRcptTo(address, session, callback) {
        // RFC 5321 §4.5.1: <Postmaster> without a domain must be accepted. It is this host's
        // postmaster: qualified with our host name as Postfix appends @$myorigin ($myhostname by
        // default), then routed like any address. The envelope keeps the qualified form, so the
        // packet names the host and enqueue routes it the same way. A host name without a dot (the
        // machine's own, when smtp.hostname is unset) would make "postmaster@mail", which a `*` or
        // default route would carry to another site: refused, saying what to set.
        const barePostmaster = /^postmaster$/i.test(address.address);
        if (barePostmaster && qualifiesPostmaster(deps.hostname)) address.address = `${address.address}@${deps.hostname}`;
        const rcpt = address.address;
        const reject = (code: number, text: string) => {
          log?.info({ evt: 'smtp.rejected', stage: 'rcpt', rcpt, code, ...client(session) }, text);
          // The site's own MTA is never slowed; anyone else who keeps failing is (error-limit.ts).
          if (relayNets.contains(session.remoteAddress)) return callback(reply(code, text));
          const v = limits.refused(session);
          const answer = v.close ? reply(421, '4.7.0 Error: too many errors; closing') : reply(code, text);
          if (v.delayMs) setTimeout(() => callback(answer), v.delayMs).unref();
          else callback(answer);
        };
        if (!session.user && !relayNets.contains(session.remoteAddress)) {
          return reject(554, `5.7.1 <${rcpt}>: Relay access denied`);
        }
        if (barePostmaster && !rcpt.includes('@')) { // not qualified: the host name has no dot
          return reject(550, `5.1.1 <${rcpt}>: Recipient address rejected: this host's name (${deps.hostname}) is not a fully qualified domain; set smtp.hostname`);
        }
        if (needsUtf8(rcpt, session)) {
          return reject(553, `5.6.7 <${rcpt}>: Recipient address rejected: a UTF-8 address needs the SMTPUTF8 parameter (RFC 6531)`);
        }
        try {
          validateAddress(rcpt);
        } catch (err) {
          return reject(501, `5.1.3 ${(err as Error).message}`);
        }
        const target = router.route(rcpt);
        if (!target) {
          return reject(550, `5.1.2 <${rcpt}>: Recipient address rejected: no route to a ferrypost node`);
        }
        // Deferred, not refused: the admin installs the peer's renewed key and the MTA's retry goes through.
        const keyProblem = deps.peerProblem(target.fingerprint);
        if (keyProblem) {
          return reject(450, `4.7.5 <${rcpt}>: Recipient address rejected: the key of node ${target.name} ${keyProblem}; mail for it waits until its renewed key is installed`);
        }
        if (session.envelope.rcptTo.length >= config.max_recipients) {
          return reject(452, '4.5.3 Error: too many recipients');
        }
        // One packet per node carries that node's recipients in its header, which has a size limit:
        // refuse the one that would cross it, and the client sends the rest in another transaction.
        let use = headerUse.get(session.envelope);
        if (!use) headerUse.set(session.envelope, (use = new Map()));
        const from = session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address;
        const bytes = (use.get(target.fingerprint) ?? fixedHeaderBytes(from)) + recipientHeaderBytes(rcpt);
        if (bytes > HEADER_BUDGET) return reject(452, '4.5.3 Error: too many recipients');
        use.set(target.fingerprint, bytes);
        callback();
      },

      onData(stream, session, callback) {
        const from = session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address;
        const to = session.envelope.rcptTo.map((a) => a.address);
        const limited = limitSize(stream, config.max_size);
        inHand.begin(session, stream);
        const done = () => inHand.end(session);
        enqueue.submit({ from, to }, limited).finally(done).then(
          (packets) => {
            if (stream.sizeExceeded) {
              // Defensive: the limiter stops at max_size, so submit cannot have succeeded past it.
              log?.error({ evt: 'smtp.internal', ...client(session) }, 'size exceeded after submit');
            }
            limits.delivered(session);
            const ids = packets.map((p) => p.id);
            log?.info(
              // The one line per accepted message: what, from whom, and where in the tree (per packet: peer, file).
              { evt: 'smtp.accepted', packets: ids, peers: packets.map((p) => p.peer), files: packets.map((p) => p.name), from, rcpts: to.length, size: stream.byteLength, ...client(session) },
              'message accepted',
            );
            callback(null, `2.0.0 Ok: queued as ${ids.join(' ')}`);
          },
          (err: unknown) => {
            const tooBig = stream.sizeExceeded || isFerryError(err, 'TOO_BIG');
            const e = tooBig
              ? reply(552, `5.3.4 Error: message exceeds fixed maximum message size ${config.max_size}`)
              : dataError(err);
            const temporary = !tooBig && replyFor(err).temporary;
            const fields = { from, rcpts: to.length, code: (e as Error & { responseCode: number }).responseCode, err: (err as Error).message, ...client(session) };
            if (temporary) log?.warn({ evt: 'smtp.tempfail', ...fields }, 'message not accepted (temporary)');
            else log?.info({ evt: 'smtp.rejected', stage: 'data', ...fields }, 'message rejected');
            callback(e);
          },
        );
      },
    };
  }

  return {
    async reload() {
      if (!config.tls) return;
      const fresh = await loadTlsAndUsers(config);
      for (const server of servers) (server as unknown as { updateSecureContext(o: object): void }).updateSecureContext({ ...fresh.tls, minVersion: TLS_MIN_VERSION });
      // AUTH stays offered as at start (its users file may not appear or vanish at a reload).
      if (users && fresh.users) users = fresh.users;
    },
    async listen() {
      const options = await buildOptions();
      const bound: Array<{ host: string; port: number }> = [];
      for (const addr of config.listen) {
        // allowHalfOpen: a client may pipeline "<CRLF>.<CRLF>QUIT" and half-close (Exim does). Our 250
        // comes only after the fsync, so the write side must stay open until then (half-close.ts).
        const server = new SMTPServer({ ...options, allowHalfOpen: true } as typeof options);
        greetTrustedAtOnce(server, (address) => relayNets.contains(address), (socket, session, connection) => {
          watchSocket(socket as Socket, session, inHand);
          keepOneEnhancedCode(connection);
        });
        // Mostly a client's doing (a failed TLS handshake, a reset): warn, with the client, for fail2ban-style tools.
        server.on('error', (err: Error & { remoteAddress?: string }) =>
          log?.warn({ evt: 'smtp.error', client: err.remoteAddress, err: err.message }, 'smtp connection error'));
        await new Promise<void>((resolve, reject) => {
          const onError = (err: Error) => reject(new FerryError('CONFIG', `smtp: cannot listen on ${addr.host}:${addr.port}: ${err.message}`, { cause: err }));
          server.server.once('error', onError);
          server.listen(addr.port, addr.host, () => {
            server.server.off('error', onError);
            resolve();
          });
        });
        servers.push(server);
        const a = server.server.address() as AddressInfo;
        bound.push({ host: a.address, port: a.port });
        log?.info({ evt: 'smtp.listening', host: a.address, port: a.port }, 'SMTP listener ready');
      }
      return bound;
    },
    async close() {
      const all = servers.splice(0);
      await Promise.all(all.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    },
  };
}

/** A host name a bare <Postmaster> may be qualified with: a valid domain with at least one dot. */
function qualifiesPostmaster(hostname: string): boolean {
  return hostname.includes('.') && canonicalAddress(`postmaster@${hostname}`) !== undefined;
}

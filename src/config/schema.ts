/**
 * The config file's schema (zod). Paths are resolved relative to the config file by load.ts.
 * Every field has a default and a bound, so a two-line config is a working node.
 */
import { z } from 'zod';
import { createNetworkList } from '../smtp/policy.js';
import { formatDuration, parseDuration, parseSize } from './duration.js';
import { canonicalPattern } from '../route/canonical.js';

/** The longest delay setTimeout/setInterval honour (~24.8 days); a larger one fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

const duration = z.union([z.number().nonnegative(), z.string()]).transform((v, ctx) => {
  try {
    return parseDuration(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});

/** A duration within [minMs, maxMs]; the message says what the bound is for. */
const durationIn = (minMs: number, maxMs: number, why: string) =>
  duration.pipe(
    z
      .number()
      .min(minMs, `must be at least ${formatDuration(minMs)} (${why})`)
      .max(maxMs, `must be at most ${formatDuration(maxMs)} (${maxMs === MAX_TIMER_MS ? '~24.8 days, the longest timer Node.js can set' : why})`),
  );

/** A duration that is a timer delay: more than 0, at most MAX_TIMER_MS. */
const timerDuration = (minMs: number, why: string) => durationIn(minMs, MAX_TIMER_MS, why);

const size = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
  try {
    return parseSize(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});

/** Node and peer names: they name key files, directories and log fields. */
export const nodeName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'must start with a letter or digit, then letters, digits, . _ - (at most 63 characters)');

/** An address or CIDR, checked by the same parser the SMTP listener uses, so "check" refuses what "run" would. */
const cidr = z.string().superRefine((v, ctx) => {
  try {
    createNetworkList([v]);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'not an address or CIDR (e.g. 192.168.0.0/16, ::1/128; an IPv4 prefix is at most /32, IPv6 /128)' });
  }
});

const fingerprint = z
  .string()
  .transform((s) => s.replace(/\s+/g, '').toLowerCase())
  .pipe(z.string().regex(/^[0-9a-f]{40}$/, 'must be a 40-hex-digit OpenPGP v4 fingerprint'));

/** host:port, [v6]:port or a bare port (then 127.0.0.1). */
const listenAddress = z.union([z.number().int().min(1).max(65535), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return { host: '127.0.0.1', port: v };
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(v) ?? /^()()(\d{1,5})$/.exec(v);
  const port = m ? Number(m[3]) : NaN;
  // Port 0 would listen on a random port: no MTA could find it.
  if (!m || port > 65535 || port < 1) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not host:port (e.g. 127.0.0.1:2525)` });
    return z.NEVER;
  }
  return { host: m[1] || m[2] || '127.0.0.1', port };
});

/** A host name: labels of letters, digits and inner hyphens (punycode included), an optional final dot. */
const HOST = String.raw`[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.?`;
const MAIL_PATTERN = new RegExp(`^(?:\\*|\\*\\.${HOST}|${HOST}|[^@\\s]+@${HOST})$`);

/**
 * Mail pattern: "example.org" (that domain), "*.example.org" (subdomains), "user@example.org", "*".
 * Stored canonical (route/canonical.ts): an internationalized domain may be written either way and is
 * kept in punycode, a trailing dot is dropped.
 */
export const mailPattern = z
  .string()
  .transform((s) => canonicalPattern(s) ?? s.trim().toLowerCase())
  .pipe(
    z
      .string()
      // Postfix writes "subdomains of" as ".example.org"; here that would match nothing, silently.
      .refine((p) => !p.startsWith('.'), { message: 'a leading "." matches nothing here: write *.example.org for the subdomains of example.org' })
      .refine((p) => MAIL_PATTERN.test(p), { message: 'must be a domain (example.org), *.domain (subdomains) or an address (user@example.org), each label letters, digits and inner hyphens' }),
  );

const peer = z
  .object({
    name: nodeName,
    fingerprint,
    /** Armored public key file of the peer. */
    key: z.string(),
    mail: z.array(mailPattern).default([]),
    default: z.boolean().default(false),
  })
  .strict();

const maildirDelivery = z
  .object({
    method: z.literal('maildir'),
    /** Maildir path; %u = local part, %d = domain, %a = whole address (lower-cased, sanitised). */
    path: z.string(),
    /** If set, only these addresses (or patterns) are delivered; others bounce with 5.1.1. */
    recipients: z.array(mailPattern).optional(),
    /** Add Return-Path and Delivered-To as a local delivery agent does. */
    add_headers: z.boolean().default(true),
  })
  .strict();

const smtpDelivery = z
  .object({
    method: z.enum(['smtp', 'lmtp']),
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(1).max(65535),
    /**
     * Connections kept open to the MTA (messages per connection are unlimited). 10, like smtp-source's
     * sessions and half Postfix's default_destination_concurrency_limit: delivery is latency-bound, and
     * 4 connections left both the MTA and the receiver idle (deliver bench: 4 → 10 gave +20 %).
     */
    max_connections: z.number().int().min(1).max(64).default(10),
    timeout: timerDuration(1000, 'a shorter timeout fails every delivery').prefault(120),
    /** Name sent in EHLO/LHLO. */
    helo_name: z.string().optional(),
  })
  .strict();

const sendmailDelivery = z
  .object({
    method: z.literal('sendmail'),
    /** argv of a sendmail-compatible command; "-i -f SENDER -- RCPT..." is appended. */
    command: z.array(z.string()).min(1),
    timeout: timerDuration(1000, 'a shorter timeout fails every delivery').prefault(300),
    max_processes: z.number().int().min(1).max(64).default(4),
  })
  .strict();

export const deliverySchema = z.discriminatedUnion('method', [maildirDelivery, smtpDelivery, sendmailDelivery]);

const smtpListener = z
  .object({
    listen: z.array(listenAddress).prefault(['127.0.0.1:2525']),
    // Named in the greeting, in Received headers and as the domain of a bare RCPT TO:<Postmaster>.
    hostname: z
      .string()
      .regex(/^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/, 'must be a host name (letters, digits, hyphens and dots), e.g. gw.example.org')
      .optional(),
    banner: z.string().default('ferrypost ESMTP'),
    /**
     * Largest message accepted (552 5.3.4 above it). There is no "unlimited": 0 is refused, unlike Postfix's
     * message_size_limit = 0; set a size (the packets of one message are built and fsync'd before the 250).
     */
    max_size: size
      .pipe(z.number().min(1024, 'must be at least 1k; 0 does not mean "no limit" here (as it does in Postfix): give a size such as 50M')
        .max(2 ** 40, 'at most 1T: a packet is built and fsync\'d before the 250'))
      .prefault(52_428_800),
    max_recipients: z.number().int().min(1).max(100_000).default(1000),
    max_clients: z.number().int().min(1).max(10_000).default(100),
    /** Clients allowed to relay without AUTH (CIDR). Others must AUTH, over TLS. */
    allowed_networks: z.array(cidr).default(['127.0.0.0/8', '::1/128']),
    /** Messages up to this size are kept in memory while packets are built; larger ones are spooled. */
    // At most 256 MiB: each connection may hold this much (a Buffer above 4 GiB cannot even be made).
    memory_spool_limit: size.pipe(z.number().max(268_435_456, 'at most 256M: every connection may hold this much in memory; larger messages are spooled to disk')).prefault(1_048_576),
    socket_timeout: timerDuration(1000, 'clients need time to send a message').prefault(300),
    tls: z.object({ key: z.string(), cert: z.string() }).strict().optional(),
    /** htpasswd-like file "user:{PLAIN}password" or "user:{SHA256}hex"; enables AUTH PLAIN/LOGIN after STARTTLS. */
    auth_users_file: z.string().optional(),
  })
  .strict();

export const configSchema = z
  .object({
    node: z
      .object({
        name: nodeName,
        /** The Syncthing-synced folder. */
        tree: z.string(),
        /** Local state: journal, quarantine, work files. Never inside the tree. */
        state_dir: z.string(),
        /** Armored secret key of this node (mode 0600). */
        key: z.string(),
        passphrase_file: z.string().optional(),
        passphrase_env: z.string().optional(),
      })
      .strict(),
    peers: z.array(peer).default([]),
    packets: z
      .object({
        /** How long a packet may travel before the receiver refuses it. */
        expiry: durationIn(3_600_000, 3650 * 86_400_000, 'packets must outlive their trip; a shorter expiry quarantines them as expired').prefault('30d'),
        /** zlib compression level, 0 = none; incompressible payloads are stored uncompressed. */
        compression_level: z.number().int().min(0).max(9).default(6),
      })
      .strict()
      .prefault({}),
    smtp: smtpListener.optional(),
    receive: z
      .object({
        rescan_interval: timerDuration(100, 'a tighter loop only burns CPU').prefault(30),
        /** Packets verified and injected at once; more than delivery.max_connections keeps them busy. */
        concurrency: z.number().int().min(1).max(64).default(16),
        retry_initial: timerDuration(100, 'a tighter retry loop only hammers the MTA').prefault(60),
        retry_max: timerDuration(100, 'a tighter retry loop only hammers the MTA').prefault(3600),
        /** After this long in temporary failure, the message bounces (Postfix maximal_queue_lifetime). */
        queue_lifetime: durationIn(60_000, 3650 * 86_400_000, 'a shorter lifetime bounces mail at the first hiccup').prefault('5d'),
      })
      .strict()
      .prefault({}),
    delivery: deliverySchema.optional(),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
        file: z.string().optional(),
      })
      .strict()
      .prefault({}),
    metrics: z.object({ listen: listenAddress }).strict().optional(),
  })
  .strict();

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type PeerConfig = Config['peers'][number];
export type DeliveryConfig = z.output<typeof deliverySchema>;
export type SmtpListenerConfig = NonNullable<Config['smtp']>;

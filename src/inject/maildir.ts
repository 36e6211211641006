/**
 * Maildir injector: delivers each recipient's copy into a Maildir chosen by a path template
 * (%u local part, %d domain, %a address, in the canonical form routing uses). Per message and maildir:
 * create the Maildir if missing (fsyncing the parent of every directory made) → write tmp/<unique>
 * (optional Return-Path/Delivered-To + the exact message bytes, every byte: writes may be short) →
 * fsync → close → rename into new/ → fsync new/.
 * Large messages with one maildir can instead be staged (maildir-stage.ts): written once into tmp/ by
 * the receiver and renamed into new/ after verification, the same sequence without the copy.
 * How it fails: never throws for delivery problems. A recipient outside `recipients` is perm 5.1.1, an
 * address that cannot be a safe path component is perm 5.1.3; every filesystem error is temporary
 * (ENOSPC/EIO 4.3.0, EDQUOT 4.2.2, EACCES/EPERM 4.2.0, anything else 4.3.0), so the packet is kept.
 */
import * as nodeFs from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { canonicalDomain, canonicalLocal, hasNonAscii } from '../route/canonical.js';
import { matchesRecipientPattern } from '../route/pattern.js';
import { ensureDir } from '../tree/durable.js';
import { errnoError, type TreeFs } from '../tree/fs.js';

export { matchesRecipientPattern };
import type { DeliveryConfig } from '../config/schema.js';
import { stageInMaildir, writeAll } from './maildir-stage.js';
import { messageStream, type InjectRequest, type Injector, type RecipientResult, type StageRequest, type StagedDelivery } from './types.js';

export type MaildirDeliveryConfig = Extract<DeliveryConfig, { method: 'maildir' }>;

/** The filesystem calls the injector makes; tests may wrap them to inject faults. */
export interface MaildirFs {
  mkdir(path: string, opts: { recursive: true; mode: number }): Promise<unknown>;
  open(path: string, flags: string, mode?: number): Promise<nodeFs.FileHandle>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  stat(path: string): Promise<{ mtimeMs: number; isDirectory(): boolean }>;
}

export interface MaildirInjectorOptions {
  hostname: string;
  log?: Logger;
  fs?: MaildirFs;
}

const SAFE = /^[a-z0-9._+-]+$/;
const SAFE_ADDRESS = /^[a-z0-9._+@-]+$/;
const SUBDIRS = ['tmp', 'new', 'cur'] as const;

/** A template value, or why this recipient has none. */
type Part = { value: string } | { refused: string };

/**
 * %u/%d/%a for one recipient, from the canonical address (route/canonical.ts) that routing and the
 * recipients filter compare: `bob@example.org.`, `"bob"@example.org` and `BOB@Example.org` are one
 * mailbox, and `bob@münchen.example` is under its punycode domain, as the config spells it.
 * A non-ASCII local part is refused, checked before lowercasing: Unicode case mapping folds some
 * characters into ASCII (U+212A KELVIN SIGN → "k"), so `\u212Aate` would land in kate's Maildir, and
 * visually equal names differ by normalization. Such a local part only arrives as SMTPUTF8 mail, which
 * the Maildir path rules never mapped (it failed the safe-name check before): the refusal stays the
 * permanent 5.1.3, with a reason saying why, instead of guessing a mailbox. IDN domains are not
 * refused: IDNA defines which spellings are one domain, and routing already uses it.
 */
function mailboxParts(rcpt: string): Record<'u' | 'd' | 'a', Part> {
  const at = rcpt.lastIndexOf('@');
  const rawLocal = at < 0 ? rcpt : rcpt.slice(0, at);
  const rawDomain = at < 0 ? '' : rcpt.slice(at + 1);
  const domain = at < 0 ? '' : canonicalDomain(rawDomain);
  const d: Part = domain === undefined ? { refused: `domain "${rawDomain}" is not a valid name` } : { value: domain };
  if (hasNonAscii(rawLocal)) {
    const u: Part = { refused: `local part "${rawLocal}" has non-ASCII characters (SMTPUTF8 mailboxes have no Maildir path)` };
    return { u, d, a: u };
  }
  const local = canonicalLocal(rawLocal);
  // No '@' (e.g. RCPT TO:<postmaster>): %a is the local part, as before.
  const a: Part = 'refused' in d ? d : { value: at < 0 ? local : `${local}@${d.value}` };
  return { u: { value: local }, d, a };
}

/** A path component that cannot leave the template's directory or hide (no '/', NUL, '.', '..', leading dot). */
function isSafe(k: 'u' | 'd' | 'a', v: string): boolean {
  return v !== '' && !v.startsWith('.') && !v.includes('/') && !v.includes('\0') && (k === 'a' ? SAFE_ADDRESS : SAFE).test(v);
}

/** Expand %u/%d/%a for one recipient, or return why the address cannot be used as a path. */
export function maildirPathFor(template: string, rcpt: string): { path: string } | { error: string } {
  const parts = mailboxParts(rcpt);
  let bad: string | undefined;
  const path = template.replace(/%([uda%])/g, (_m, k: 'u' | 'd' | 'a' | '%') => {
    if (k === '%') return '%';
    const p = parts[k];
    if ('refused' in p) {
      bad ??= p.refused;
      return '';
    }
    if (!isSafe(k, p.value)) bad ??= `%${k} = "${p.value}" is not a safe mailbox name (letters, digits, . _ + - only, no leading dot)`;
    return p.value;
  });
  return bad ? { error: bad } : { path };
}

/**
 * The MaildirFs as the tree's TreeFs, so that tree/durable.ts's ensureDir creates Maildirs the way it
 * creates tree directories (mkdir -p, then fsync the parent of each directory made, top down).
 */
function treeFsOf(fs: MaildirFs): TreeFs {
  return {
    open: (p, flags, mode) => fs.open(p, flags, mode),
    rename: (from, to) => fs.rename(from, to),
    link: () => Promise.reject(errnoError('ENOSYS', 'link is not used for Maildir directories')),
    unlink: (p) => fs.unlink(p),
    // ensureDir only asks whether a path exists; stat (not lstat) also accepts a Maildir behind a symlink.
    lstat: async (p) => {
      const st = await fs.stat(p);
      return { size: 0, ino: 0, mtimeMs: st.mtimeMs, isFile: () => !st.isDirectory(), isDirectory: () => st.isDirectory() };
    },
    mkdirp: async (p) => {
      const first = await fs.mkdir(p, { recursive: true, mode: 0o700 });
      return typeof first === 'string' ? first : undefined;
    },
  };
}

/** True if new/ or cur/ of this Maildir already holds a file delivered from this packet. */
export async function maildirHasPacket(dir: string, packetId: string): Promise<boolean> {
  const needle = `_${packetId}.`;
  for (const sub of ['new', 'cur']) {
    let names: string[];
    try {
      names = await nodeFs.readdir(join(dir, sub));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    if (names.some((n) => n.includes(needle))) return true;
  }
  return false;
}

function tempResult(rcpt: string, err: unknown): RecipientResult {
  const e = err as NodeJS.ErrnoException;
  const code = e?.code;
  const text = e instanceof Error ? e.message : String(err);
  if (code === 'EDQUOT') return { rcpt, status: 'temp', code: 452, enhanced: '4.2.2', message: `mailbox over quota: ${text}` };
  if (code === 'ENOSPC') return { rcpt, status: 'temp', code: 452, enhanced: '4.3.0', message: `disk full: ${text}` };
  if (code === 'EACCES' || code === 'EPERM')
    return { rcpt, status: 'temp', code: 450, enhanced: '4.2.0', message: `cannot write to mailbox: ${text}` };
  return { rcpt, status: 'temp', code: 451, enhanced: '4.3.0', message: `maildir delivery failed: ${text}` };
}

/** "\r\n" if the message's first line ends in CRLF, else "\n". */
async function firstLineEnding(file: string): Promise<string> {
  const fh = await nodeFs.open(file, 'r');
  try {
    const buf = Buffer.alloc(65536);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return lineEndingOf(buf.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

/** The line ending of the first line; CRLF if there is none. */
function lineEndingOf(bytes: Uint8Array): string {
  const head = bytes.subarray(0, 65536);
  const nl = head.indexOf(0x0a);
  return nl > 0 && head[nl - 1] === 0x0d ? '\r\n' : nl >= 0 ? '\n' : '\r\n';
}

/** Maildir name components must not contain '/' or ':' (the info separator). */
function safeHostname(h: string): string {
  return h.replace(/\//g, '\\057').replace(/:/g, '\\072');
}

export function createMaildirInjector(cfg: MaildirDeliveryConfig, opts: MaildirInjectorOptions): Injector {
  const fs: MaildirFs = opts.fs ?? nodeFs;
  const treeFs = treeFsOf(fs);
  /** Maildir → its ensureMaildir under way: deliveries into it wait until its new directories are durable. */
  const creating = new Map<string, Promise<void>>();
  const host = safeHostname(opts.hostname);
  let counter = 0;
  /** Wall-clock time this process started: tmp/ files older than it are nobody's work in progress. */
  const startedAt = performance.timeOrigin;

  function uniqueName(packetId: string, size: number): string {
    const now = process.hrtime.bigint();
    const wall = Date.now();
    const sec = Math.floor(wall / 1000);
    const usec = (wall % 1000) * 1000 + Number((now / 1000n) % 1000n);
    counter += 1;
    return `${sec}.M${usec}P${process.pid}Q${counter}_${packetId}.${host},S=${size}`;
  }

  /**
   * tmp/, new/ and cur/ exist, and any of them (or the Maildir and its parents) made here are durable:
   * the parent of each is fsync'd, top down, the Maildir itself after its subdirectories, so a power cut
   * after the packet is deleted cannot lose the first message's new directory entries. When the Maildir
   * exists this is one stat per subdirectory (fewer syscalls than the mkdir -p it replaces). A call for a
   * Maildir whose creation is under way joins it: "exists" must not mean "durable" too early.
   */
  function ensureMaildir(dir: string): Promise<void> {
    const under = creating.get(dir);
    if (under) return under;
    const run = (async () => {
      for (const sub of SUBDIRS) await ensureDir(join(dir, sub), treeFs);
    })().finally(() => creating.delete(dir));
    creating.set(dir, run);
    return run;
  }

  async function isMaildir(dir: string): Promise<boolean> {
    for (const sub of SUBDIRS) {
      const st = await fs.stat(join(dir, sub)).catch(() => undefined);
      if (!st?.isDirectory()) return false;
    }
    return true;
  }

  /** fsync a directory; a missing one is nothing to sync. */
  async function syncDir(dir: string): Promise<void> {
    let d;
    try {
      d = await fs.open(dir, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }

  /** tmp/NAME → new/NAME, then fsync new/ so the rename survives a crash; tmp/NAME is removed if the rename failed. */
  async function publish(dir: string, name: string): Promise<void> {
    const tmp = join(dir, 'tmp', name);
    try {
      // A staged file may find the Maildir made by another delivery whose fsyncs have not ended yet.
      await creating.get(dir);
      await fs.rename(tmp, join(dir, 'new', name));
    } catch (e) {
      await fs.unlink(tmp).catch(() => undefined);
      throw e;
    }
    await syncDir(join(dir, 'new'));
  }

  function prefixFor(from: string, rcpt: string, eol: string): Buffer {
    return cfg.add_headers ? Buffer.from(`Return-Path: <${from}>${eol}Delivered-To: ${rcpt}${eol}`, 'utf8') : Buffer.alloc(0);
  }

  async function deliverOne(dir: string, req: InjectRequest, rcpt: string, prefix: Buffer): Promise<string> {
    await ensureMaildir(dir);
    const name = uniqueName(req.packetId, prefix.length + req.size);
    const tmp = join(dir, 'tmp', name);
    const fh = await fs.open(tmp, 'wx', 0o600);
    try {
      try {
        // writeAll: a short write (disk or quota filling up) must not leave a truncated message to publish.
        if (prefix.length) await writeAll(fh, [prefix]);
        for await (const chunk of messageStream(req)) await writeAll(fh, [chunk as Buffer]);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (e) {
      await fs.unlink(tmp).catch(() => undefined);
      throw e;
    }
    await publish(dir, name);
    opts.log?.info({ evt: 'inject.maildir', packet: req.packetId, rcpt, file: join(dir, 'new', name) }, 'delivered');
    return name;
  }

  /** Per recipient: a refusal (perm result) or the maildir it goes to; recipients sharing a maildir get one copy. */
  function route(to: string[]): { results: Array<RecipientResult | undefined>; groups: Map<string, number[]> } {
    const results = new Array<RecipientResult | undefined>(to.length);
    const groups = new Map<string, number[]>();
    to.forEach((rcpt, i) => {
      if (cfg.recipients && !cfg.recipients.some((p) => matchesRecipientPattern(rcpt, p))) {
        results[i] = { rcpt, status: 'perm', code: 550, enhanced: '5.1.1', message: `<${rcpt}>: user unknown` };
        return;
      }
      const p = maildirPathFor(cfg.path, rcpt);
      if ('error' in p) {
        results[i] = { rcpt, status: 'perm', code: 553, enhanced: '5.1.3', message: `<${rcpt}>: ${p.error}` };
        return;
      }
      const g = groups.get(p.path);
      if (g) g.push(i);
      else groups.set(p.path, [i]);
    });
    return { results, groups };
  }

  /**
   * Files a crash left in tmp/ while this packet was staged. Only files older than this process: one
   * being written now (this packet id under another file name) is not a leftover.
   */
  async function removeLeftovers(dir: string, packetId: string): Promise<void> {
    const needle = `_${packetId}.`;
    for (const n of await fs.readdir(join(dir, 'tmp'))) {
      if (!n.includes(needle)) continue;
      const file = join(dir, 'tmp', n);
      const st = await fs.stat(file).catch(() => undefined);
      if (st && st.mtimeMs < startedAt) {
        await fs.unlink(file).catch(() => undefined);
        opts.log?.info({ evt: 'inject.maildir-leftover', packet: packetId, file }, 'removed a temp file left by a crash');
      }
    }
  }

  return {
    name: 'maildir',
    async alreadyDelivered(req: InjectRequest): Promise<string[]> {
      // Only recipients route() delivers: one it refuses (recipients filter, unsafe name) may share a
      // fixed or per-domain Maildir holding this packet, yet it was never delivered and must be bounced.
      const { groups } = route(req.envelope.to);
      const done = new Set<number>();
      for (const [dir, idxs] of groups) {
        if (!(await maildirHasPacket(dir, req.packetId))) continue;
        // Found, but perhaps renamed by an attempt whose fsync of new/ failed: made durable before the
        // receiver records it as delivered (an error here leaves the packet to be retried).
        for (const sub of ['new', 'cur']) await syncDir(join(dir, sub));
        for (const i of idxs) done.add(i);
      }
      return req.envelope.to.filter((_, i) => done.has(i));
    },
    async stage(req: StageRequest): Promise<StagedDelivery | undefined> {
      const { results, groups } = route(req.envelope.to);
      // Only the plain case: every recipient accepted and one maildir (one file). Anything else goes
      // through inject(), which handles refusals and several copies.
      if (groups.size !== 1 || results.some((r) => r !== undefined)) return undefined;
      const [dir, idxs] = [...groups][0]!;
      const rcpt = req.envelope.to[idxs[0]!]!;
      // Staging happens before the packet is authenticated (the header only names the mailbox), so it
      // never creates one: a Maildir that does not exist yet is made by inject(), after every check.
      if (!(await isMaildir(dir))) return undefined;
      await removeLeftovers(dir, req.packetId);
      return stageInMaildir(
        {
          open: (p, flags, mode) => fs.open(p, flags, mode),
          unlink: (p) => fs.unlink(p),
          publish,
          uniqueName,
          prefix: (eol) => prefixFor(req.envelope.from, rcpt, eol),
          lineEnding: lineEndingOf,
          tempResult,
          log: opts.log,
        },
        { dir, packetId: req.packetId, size: req.size, recipients: [...req.envelope.to] },
      );
    },
    async inject(req: InjectRequest): Promise<RecipientResult[]> {
      const { results, groups } = route(req.envelope.to);

      let eol = '\r\n';
      if (cfg.add_headers && groups.size) {
        try {
          eol = req.bytes ? lineEndingOf(req.bytes) : await firstLineEnding(req.file!);
        } catch (e) {
          for (const idxs of groups.values()) for (const i of idxs) results[i] = tempResult(req.envelope.to[i]!, e);
          groups.clear();
        }
      }

      for (const [dir, idxs] of groups) {
        const rcpt = req.envelope.to[idxs[0]!]!;
        const prefix = prefixFor(req.envelope.from, rcpt, eol);
        let r: Omit<RecipientResult, 'rcpt'>;
        try {
          const name = await deliverOne(dir, req, rcpt, prefix);
          r = { status: 'ok', code: 250, enhanced: '2.0.0', message: `delivered to maildir as ${name}` };
        } catch (e) {
          r = tempResult(rcpt, e);
          opts.log?.warn({ evt: 'inject.tempfail', packet: req.packetId, rcpt, dir, err: String(e) }, 'maildir delivery failed');
        }
        for (const i of idxs) results[i] = { ...r, rcpt: req.envelope.to[i]! };
      }
      return results.map((r, i) => r ?? tempResult(req.envelope.to[i]!, new Error('not attempted')));
    },
    async close(): Promise<void> {},
  };
}

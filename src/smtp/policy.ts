/**
 * SMTP listener policy helpers: the relay network list (node:net BlockList over CIDRs, IPv4, IPv6 and
 * v4-mapped ::ffff: addresses), the AUTH users file, and the DATA size limiter.
 * Fails: a malformed CIDR or users-file line throws FerryError('CONFIG') naming it; the size limiter
 * errors its output with FerryError('TOO_BIG') and keeps draining its source.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { Readable } from 'node:stream';
import { FerryError } from '../errors/index.js';

export interface NetworkList {
  contains(ip: string): boolean;
}

function unmap(ip: string): string {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  return m ? m[1]! : ip;
}

export function createNetworkList(cidrs: readonly string[]): NetworkList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [rawAddr = '', prefixText, extra] = cidr.trim().split('/');
    const addr = unmap(rawAddr);
    const family = isIP(addr);
    const max = family === 4 ? 32 : 128;
    // A v4-mapped network (::ffff:10.0.0.0/104) is the IPv4 network 10.0.0.0/8.
    const shift = addr !== rawAddr ? 96 : 0;
    const prefix = prefixText === undefined ? max : Number(prefixText) - shift;
    if (family === 0 || extra !== undefined || !/^\d{1,3}$/.test(prefixText ?? '0') || prefix < 0 || prefix > max) {
      throw new FerryError('CONFIG', `smtp.allowed_networks: "${cidr}" is not an address or CIDR (e.g. 192.168.0.0/16, ::1/128)`);
    }
    list.addSubnet(addr, prefix, family === 4 ? 'ipv4' : 'ipv6');
  }
  return {
    contains(ip: string): boolean {
      const a = unmap(ip);
      const family = isIP(a);
      if (family === 0) return false;
      return list.check(a, family === 4 ? 'ipv4' : 'ipv6');
    },
  };
}

export interface UserTable {
  /** Constant-time check of a user's password. */
  verify(user: string, password: string): boolean;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Parses "user:{PLAIN}password" / "user:{SHA256}hex" lines; blank lines and # comments skipped. */
export function parseUsersFile(text: string, fileName: string): UserTable {
  const users = new Map<string, Buffer>(); // user → sha256(password)
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const m = /^([^:\s]+):\{(PLAIN|SHA256)\}(.*)$/.exec(line);
    const bad = () => new FerryError('CONFIG', `${fileName}:${i + 1}: expected user:{PLAIN}password or user:{SHA256}<64 hex digits>`);
    if (!m) throw bad();
    const [, user, scheme, secret] = m as unknown as [string, string, string, string];
    if (scheme === 'PLAIN') {
      if (secret === '') throw bad();
      users.set(user, sha256(secret));
    } else {
      if (!/^[0-9a-fA-F]{64}$/.test(secret)) throw bad();
      users.set(user, Buffer.from(secret, 'hex'));
    }
  });
  const dummy = sha256('\0no such user\0');
  return {
    verify(user: string, password: string): boolean {
      const want = users.get(user);
      const ok = timingSafeEqual(sha256(password), want ?? dummy);
      return ok && want !== undefined;
    },
  };
}

/**
 * Copies `src` into the returned stream while counting bytes; past `max` the output errors with
 * TOO_BIG and the rest of `src` is read and dropped (smtp-server needs the stream consumed to reply).
 * If `src` closes without ending (client gone), the output errors too; if the output is destroyed
 * first (its consumer failed), the rest of `src` is dropped the same way.
 */
export function limitSize(src: Readable, max: number): Readable {
  let count = 0;
  let failed = false;
  let ended = false;
  const out = new Readable({
    read() {
      if (!failed) src.resume();
    },
  });
  out.on('error', () => undefined); // the consumer sees it through its read; never an uncaught 'error'
  const fail = (err: Error) => {
    if (failed) return;
    failed = true;
    out.destroy(err);
    src.resume();
  };
  src.on('data', (chunk: Buffer) => {
    if (failed) return;
    count += chunk.length;
    if (count > max) {
      fail(new FerryError('TOO_BIG', `Error: message exceeds fixed maximum message size ${max}`));
      return;
    }
    if (!out.push(chunk)) src.pause();
  });
  src.on('end', () => {
    ended = true;
    if (!failed) out.push(null);
  });
  src.on('error', (err) => fail(new FerryError('STORE_FAILED', `connection lost during DATA: ${err.message}`, { cause: err })));
  src.on('close', () => {
    if (!ended) fail(new FerryError('STORE_FAILED', 'connection lost during DATA'));
  });
  // The consumer gave up before the end (the spool write failed: disk full): read and drop the rest,
  // or `src`, paused for backpressure, never ends and smtp-server never sends the 4xx reply.
  out.on('close', () => {
    if (ended || failed) return;
    failed = true;
    src.resume();
  });
  return out;
}

/**
 * Maildir staging for large messages: the receiver decodes the message straight into the Maildir's
 * tmp/ file (per-recipient Return-Path/Delivered-To first), and commit() renames it into new/ once
 * the packet has been verified. One write of the message instead of a work file plus a copy.
 * Why this is safe: tmp/ is invisible to mail readers (Maildir's own protocol writes there before the
 * rename), and only commit() makes the file visible; the receiver calls it only after the MDC, the
 * signature, the name hash and every header check passed. On any failure discard() removes the file.
 * How it fails: a write error surfaces through the sink (the receiver then falls back to inject());
 * commit() never throws, it returns temporary results as inject() would.
 * A crash while writing leaves a tmp/ file: the packet is still in the tree, and staging it again
 * removes files left in tmp/ for the same packet id (Maildir readers also remove tmp/ files after 36 h).
 */
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { headerBlockOf } from '../dsn/headers.js';
import { errnoError } from '../tree/fs.js';
import { EarlyWriteback } from '../tree/writeback.js';
import type { RecipientResult, StagedDelivery } from './types.js';

/** How much of the message is held before the file is opened: the prefix's line ending and the header block are decided on it (the same 64 KiB rules as for a message in memory). */
export const STAGE_HEAD_BYTES = 65536;

/** The Maildir operations staging needs, provided by the injector (one implementation of each). */
export interface StageDeps {
  open(path: string, flags: string, mode?: number): Promise<FileHandle>;
  unlink(path: string): Promise<void>;
  /** Renames tmp/NAME to new/NAME and fsyncs new/ (removing tmp/NAME if the rename failed). */
  publish(dir: string, name: string): Promise<void>;
  /** A unique Maildir file name for this packet and total size. */
  uniqueName(packetId: string, size: number): string;
  /** The lines written before the message (empty without add_headers), given the message's line ending. */
  prefix(eol: string): Buffer;
  /** The line ending of the message's first line, decided on its first STAGE_HEAD_BYTES. */
  lineEnding(head: Buffer): string;
  tempResult(rcpt: string, err: unknown): RecipientResult;
  log?: Logger | undefined;
}

export interface StageTarget {
  dir: string;
  packetId: string;
  /** Message size (without the prefix). */
  size: number;
  recipients: string[];
}

/** Starts a staged delivery into `target.dir` (whose tmp/ and new/ exist). */
export function stageInMaildir(deps: StageDeps, target: StageTarget): StagedDelivery {
  const sink = new TmpFileSink(deps, target);
  let committed = false;
  return {
    sink,
    recipients: target.recipients,
    headerBlock: () => {
      if (!sink.headers) throw new Error('staged message not written yet');
      return sink.headers;
    },
    async commit(): Promise<RecipientResult[]> {
      const name = sink.name;
      if (!sink.writableFinished || name === undefined) throw new Error('commit() before the staged message was written');
      const file = join(target.dir, 'new', name);
      try {
        await deps.publish(target.dir, name);
      } catch (e) {
        deps.log?.warn({ evt: 'inject.tempfail', packet: target.packetId, rcpt: target.recipients[0], dir: target.dir, err: String(e) }, 'maildir delivery failed');
        return target.recipients.map((r) => deps.tempResult(r, e));
      }
      committed = true;
      deps.log?.info({ evt: 'inject.maildir', packet: target.packetId, rcpt: target.recipients[0], file, staged: true }, 'delivered');
      return target.recipients.map((rcpt) => ({ rcpt, status: 'ok', code: 250, enhanced: '2.0.0', message: `delivered to maildir as ${name}` }));
    },
    async discard(): Promise<void> {
      if (committed) return;
      await sink.closeFile();
      if (sink.name !== undefined) {
        await deps.unlink(join(target.dir, 'tmp', sink.name)).catch(() => undefined);
      }
    },
  };
}

/**
 * Writes prefix + message into tmp/<unique name>; fsyncs and closes on end. The file is opened only
 * once the first STAGE_HEAD_BYTES (or the whole message) arrived, because its name carries the total
 * size, which depends on the prefix's line ending, which depends on the message's first line.
 */
class TmpFileSink extends Writable {
  name: string | undefined;
  headers: Buffer | undefined;
  private head: Buffer[] = [];
  private headBytes = 0;
  private fh: FileHandle | undefined;
  /** Flushes a large message while it is written, so the final fsync is short (tree/writeback.ts). */
  private writeback: EarlyWriteback | undefined;
  /** The open or close under way, so destroy and closeFile wait for it instead of racing it. */
  private busy: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: StageDeps, private readonly target: StageTarget) {
    // 1 MiB may wait while a write is under way, and goes out in one writev: fewer, larger writes.
    // Each submission costs the main thread, the large receiver's slower side: 95-101 -> 46-65 ms
    // per 100 MiB in profiles, +5 % in 4 interleaved pairs, same peak RSS (docs/performance-history.md).
    super({ highWaterMark: 1024 * 1024 });
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    const bufs = chunks.map((c) => c.chunk);
    if (this.fh) {
      const fh = this.fh;
      writeAll(fh, bufs).then(() => {
        let n = 0;
        for (const b of bufs) n += b.length;
        this.writeback?.wrote(n);
        cb();
      }, cb);
      return;
    }
    this.head.push(...bufs);
    for (const b of bufs) this.headBytes += b.length;
    if (this.headBytes < STAGE_HEAD_BYTES) return cb();
    this.openWithHead().then(() => cb(), cb);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this._writev([{ chunk }], cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    (async () => {
      if (!this.fh) await this.openWithHead(); // a message shorter than the head
      const fh = this.fh!;
      await this.writeback?.settle();
      await fh.sync();
      this.fh = undefined;
      await fh.close();
    })().then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.closeFile().then(() => cb(err), () => cb(err));
  }

  /** Closes the file if open (after any open under way); the caller may then unlink it. */
  async closeFile(): Promise<void> {
    await this.busy.catch(() => undefined);
    const fh = this.fh;
    this.fh = undefined;
    await this.writeback?.quiesce(); // a flush under way still uses the descriptor
    if (fh) await fh.close().catch(() => undefined);
  }

  private openWithHead(): Promise<void> {
    const run = async (): Promise<void> => {
      const head = Buffer.concat(this.head, this.headBytes);
      this.head = [];
      const prefix = this.deps.prefix(this.deps.lineEnding(head));
      this.headers = headerBlockOf(head);
      const name = this.deps.uniqueName(this.target.packetId, prefix.length + this.target.size);
      const fh = await this.deps.open(join(this.target.dir, 'tmp', name), 'wx', 0o600);
      this.fh = fh;
      this.writeback = new EarlyWriteback(() => fh.datasync());
      this.name = name; // set only once the file is ours: discard() must never remove another file
      await writeAll(this.fh, prefix.length ? [prefix, head] : [head]);
    };
    const p = run();
    this.busy = p;
    return p;
  }
}

/**
 * writev until every byte is written: a file write may be short (a filling disk or quota writes what
 * fits, and only the next write fails). One that writes nothing throws EIO (a temporary failure) rather
 * than looping.
 */
export async function writeAll(fh: Pick<FileHandle, 'writev'>, bufs: Buffer[]): Promise<void> {
  let rest = bufs.filter((b) => b.length > 0);
  while (rest.length) {
    const total = rest.reduce((n, b) => n + b.length, 0);
    const { bytesWritten } = await fh.writev(rest);
    if (bytesWritten === total) return;
    if (!(bytesWritten > 0)) throw errnoError('EIO', 'write returned no progress');
    let skip = bytesWritten;
    const next: Buffer[] = [];
    for (const b of rest) {
      if (skip >= b.length) skip -= b.length;
      else {
        next.push(skip ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    rest = next;
  }
}

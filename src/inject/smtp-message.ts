/**
 * The message as SMTPConnection.send() gets it: a stream that tells how far the transaction went.
 * nodemailer pipes the message only after the server answered DATA with 354, so a message never read
 * cannot be at the next hop and may be sent again; once it was read to the end, the final "." may
 * have arrived and a lost reply to it is no refusal (the next hop may have queued the message).
 * The source is created on the first read: a transaction that fails before DATA opens no file.
 * A message in memory needs no stream for that: SMTPConnection calls pipe() on anything that has one,
 * at the moment it would otherwise write the Buffer (TrackedBuffer; a Readable around every small
 * message cost the receiver ~4 % of its deliver rate into Postfix).
 */
import { Readable, type Writable } from 'node:stream';

/** What the pool needs to know of a message in transit (TrackedMessage, TrackedBuffer). */
export interface Tracked {
  /** nodemailer started sending it: the server answered DATA with 354. */
  readonly started: boolean;
  /** Every byte was handed to nodemailer, which then writes the final ".". */
  readonly sentAll: boolean;
  /** Runs `fn` once every byte was handed over. */
  onSent(fn: () => void): void;
  offSent(fn: () => void): void;
}

/** A message in memory, written by SMTPConnection through pipe(): no stream of its own. */
export class TrackedBuffer implements Tracked {
  started = false;
  sentAll = false;
  private sent: (() => void) | undefined;

  constructor(private readonly bytes: Buffer) {}

  onSent(fn: () => void): void {
    this.sent = fn;
  }

  offSent(fn: () => void): void {
    if (this.sent === fn) this.sent = undefined;
  }

  /** Called by SMTPConnection.send() after 354, where it would write a Buffer and end the stream. */
  pipe<T extends Writable>(dest: T): T {
    this.started = true;
    if (this.bytes.length) dest.write(this.bytes);
    dest.end();
    this.sentAll = true;
    this.sent?.();
    return dest;
  }
}

/** A message read from a file: a Readable that notes its first read (after 354) and its end. */
export class TrackedMessage extends Readable implements Tracked {
  /** nodemailer started reading: the server answered DATA with 354. */
  started = false;
  private inner: Readable | undefined;

  constructor(private readonly source: Buffer | (() => Readable)) {
    super();
  }

  /** Every byte was handed to nodemailer, which then writes the final "." (readableEnded, named). */
  get sentAll(): boolean {
    return this.readableEnded;
  }

  onSent(fn: () => void): void {
    this.once('end', fn);
  }

  offSent(fn: () => void): void {
    this.off('end', fn);
  }

  override _read(): void {
    if (this.started) {
      this.inner?.resume();
      return;
    }
    this.started = true;
    if (Buffer.isBuffer(this.source)) {
      if (this.source.length) this.push(this.source);
      this.push(null);
      return;
    }
    let inner: Readable;
    try {
      inner = this.source();
    } catch (e) {
      this.destroy(e as Error);
      return;
    }
    this.inner = inner;
    inner.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) inner.pause();
    });
    inner.once('end', () => this.push(null));
    inner.once('error', (e) => this.destroy(e));
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.inner?.destroy();
    cb(err);
  }
}

/**
 * The decrypt worker's input side (decrypt-offload.ts): shared input slots, and the pump that hands a
 * packet's ciphertext to the worker through them. Ciphertext that already lies in a slot (read there
 * by a SlotReadable input: the receiver's HashingFileReader) is handed over where it lies, as a range;
 * anything else is copied into a free slot. On a 100 MiB packet the copy and the buffers it was copied
 * from cost the main thread, the large receiver's slower side, more than the file reads themselves
 * (docs/performance-history.md).
 * A slot is reused only when nobody holds it: not the reader (a read into it under way, or its chunk
 * not yet consumed) and not the worker (a range handed over and not yet handed back with 'in-free').
 * Why a mistake here could not deliver wrong mail: it could only change ciphertext, which the MDC,
 * the signature and the payload digest all cover; the packet would be refused, never misdelivered.
 */

export const IN_SLOT = 256 * 1024;
/**
 * 2 MiB of input: the reader holds one slot and reads into another, so the rest (~12 ms of the
 * worker's work) is what the worker can take while the main thread is busy elsewhere. With 4 the
 * worker sat idle 5-36 % of each 100 ms of a 100 MiB packet in a profile, waiting for ciphertext;
 * with 8, 0-11 % (docs/performance-history.md, "2026-11-27, 09:50-10:40").
 */
export const IN_SLOTS = 8;
/**
 * A job starts only with this many slots free: one the reader may hold, one for the pump's copies
 * and the worker (InputPump). Fewer are free only while reads of an ended job are still under way,
 * or stuck (a read that never returns keeps its slot for good); the packet is then decrypted on the
 * main thread.
 */
export const MIN_FREE_AT_START = 2;

/** Lends buffers to read into, and takes them back once their bytes have been consumed. */
export interface BufferLender {
  /** A buffer to read into (a whole slot), once one is free; undefined: read into your own. */
  borrow(): Promise<Uint8Array | undefined>;
  /** Gives back a borrowed buffer: every chunk read into it has been consumed, or nothing was read. */
  giveBack(buffer: Uint8Array): void;
}

/** An input that can read on into buffers it is lent (the receiver's HashingFileReader). */
export interface SlotReadable {
  lendFrom(lender: BufferLender): void;
}

export function isSlotReadable(input: unknown): input is SlotReadable {
  return typeof (input as Partial<SlotReadable> | undefined)?.lendFrom === 'function';
}

/** The shared input slots of one worker, held by count, across jobs. */
export class InputSlots {
  readonly buffer = new SharedArrayBuffer(IN_SLOTS * IN_SLOT);
  private readonly refs = new Array<number>(IN_SLOTS).fill(0);
  private readonly waiting = new Set<() => void>();
  /** Bytes of ciphertext handed over where they lay, and bytes copied, over all jobs (tests check which path ran). */
  readonly stats = { direct: 0, copied: 0 };

  /** Slots held by anyone (0 between packets, once their readers are closed). */
  heldCount(): number {
    return this.refs.filter((n) => n > 0).length;
  }

  freeCount(): number {
    return IN_SLOTS - this.heldCount();
  }

  /** A free slot, now held once; or undefined once `halted` says so. */
  async take(halted: () => boolean): Promise<number | undefined> {
    for (;;) {
      if (halted()) return undefined;
      const slot = this.refs.indexOf(0);
      if (slot >= 0) {
        this.refs[slot] = 1;
        return slot;
      }
      await new Promise<void>((r) => this.waiting.add(r));
    }
  }

  hold(slot: number): void {
    this.refs[slot]!++;
  }

  release(slot: number, n = 1): void {
    if (n === 0) return;
    const left = (this.refs[slot]! -= n);
    if (left < 0) throw new Error(`input slot ${slot} released more often than held`);
    if (left === 0) this.wakeAll();
  }

  /** Wakes everyone waiting in take(), to look again (a slot came free, or a job halted). */
  wakeAll(): void {
    const w = [...this.waiting];
    this.waiting.clear();
    for (const r of w) r();
  }

  /** The slot `bytes` lies in, if it lies within one of these slots. */
  slotOf(bytes: Uint8Array): number | undefined {
    if (bytes.buffer !== this.buffer || bytes.length === 0) return undefined;
    const slot = Math.floor(bytes.byteOffset / IN_SLOT);
    return bytes.byteOffset + bytes.length <= (slot + 1) * IN_SLOT ? slot : undefined;
  }

  view(slot: number): Uint8Array {
    return new Uint8Array(this.buffer, slot * IN_SLOT, IN_SLOT);
  }
}

/**
 * One job's ciphertext into the worker: ranges of slots, in order, each held until handed back.
 * The reader and the pump both wait for free slots, and could wait for each other: the reader gives
 * its slots back only when the pump asks for the next chunk, which the pump does not while it waits
 * for a slot to copy into (or holds one half filled). So the reader holds at most one slot fewer
 * than were free when the job started; the others are the pump's or the worker's, and the worker
 * always hands them back. Slots held when a job starts belong to reads of an ended job still under
 * way (or stuck for good: a read that never returns); DecryptWorker.open starts a job only with
 * MIN_FREE_AT_START free.
 */
export class InputPump {
  /** Ranges handed to the worker and not handed back yet, per slot. */
  private readonly atWorker = new Array<number>(IN_SLOTS).fill(0);
  /** Slots lent to the reader and not given back: only its chunks from these are handed over in place. */
  private readonly lent = new Set<number>();
  /** How many slots the reader may hold at once (above); 0: it reads into its own buffers. Fixed for the job. */
  private readonly readerCap: number;
  /** Borrows waiting for a slot: they count toward the cap from the start. */
  private borrowing = 0;

  constructor(
    private readonly slots: InputSlots,
    private readonly send: (slot: number, off: number, len: number) => void,
    private readonly sendEnd: () => void,
    /** The job is over or aborted: hand nothing more over. */
    private readonly halted: () => boolean,
  ) {
    this.readerCap = Math.max(0, slots.freeCount() - 1);
  }

  readonly lender: BufferLender = {
    borrow: async () => {
      if (this.lent.size + this.borrowing >= this.readerCap) return undefined;
      this.borrowing++;
      let slot: number | undefined;
      try {
        slot = await this.slots.take(this.halted);
      } finally {
        this.borrowing--;
      }
      if (slot === undefined) return undefined;
      this.lent.add(slot);
      return this.slots.view(slot);
    },
    giveBack: (buffer) => {
      const slot = this.slots.slotOf(buffer);
      if (slot === undefined || !this.lent.delete(slot)) return;
      this.slots.release(slot);
    },
  };

  /** Hands the ciphertext over; ends with 'end' unless halted. Rejects if the input fails. */
  async run(ciphertext: AsyncIterable<Uint8Array>): Promise<void> {
    let slot: number | undefined; // a slot being filled by copies
    let fill = 0;
    try {
      for await (const chunk of ciphertext) {
        // Checked before touching a slot: the job may have ended while this read was pending.
        if (this.halted()) return;
        const lies = this.slots.slotOf(chunk);
        if (lies !== undefined) {
          // Its reader holds the slot until it is asked for the next chunk, which has not happened
          // yet; if it does not, the input was closed under the decoder, which has given up.
          if (!this.lent.has(lies)) throw new Error('the packet input was closed while its ciphertext was being handed over');
          if (slot !== undefined) this.handOver(slot, 0, fill); // in order: the copies before it first
          slot = undefined;
          this.slots.hold(lies);
          this.handOver(lies, chunk.byteOffset - lies * IN_SLOT, chunk.length);
          this.slots.stats.direct += chunk.length;
          continue;
        }
        let off = 0;
        while (off < chunk.length) {
          if (slot === undefined) {
            slot = await this.slots.take(this.halted);
            if (slot === undefined) return;
            fill = 0;
          }
          const n = Math.min(IN_SLOT - fill, chunk.length - off);
          new Uint8Array(this.slots.buffer, slot * IN_SLOT + fill, n).set(chunk.subarray(off, off + n));
          fill += n;
          off += n;
          this.slots.stats.copied += n;
          if (fill === IN_SLOT) {
            this.handOver(slot, 0, fill);
            slot = undefined;
          }
        }
      }
      if (this.halted()) return;
      if (slot !== undefined && fill > 0) this.handOver(slot, 0, fill);
      slot = undefined;
      this.sendEnd();
    } finally {
      if (slot !== undefined) this.slots.release(slot); // taken for copies, never handed over
    }
  }

  /** The worker handed a range of `slot` back ('in-free'). */
  handedBack(slot: number): void {
    if (this.atWorker[slot]! === 0) return;
    this.atWorker[slot]!--;
    this.slots.release(slot);
  }

  /** The job has ended: the worker holds nothing of it any more, handed back or not. */
  releaseAll(): void {
    for (let s = 0; s < IN_SLOTS; s++) {
      this.slots.release(s, this.atWorker[s]!);
      this.atWorker[s] = 0;
    }
  }

  /** A copy slot's hold passes to the worker; a range where it lay was held for it just before. */
  private handOver(slot: number, off: number, len: number): void {
    this.atWorker[slot]!++;
    this.send(slot, off, len);
  }
}

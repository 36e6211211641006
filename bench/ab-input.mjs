// ab-input: the large receiver's input path A/B inside one process, without the daemon or the sender, so that
// the machine's swings (gpg's own rate moves by 25 % within minutes here) matter less than in
// bench/large-message.mjs. One LARGE_MIB (100) MiB message (base64 CRLF lines) is encoded once; then REPS (8)
// rounds, each decoding it from its file once per mode, with one warm DecryptWorker as the daemon has:
//   stream: fs.createReadStream piped through a hashing Transform (the receiver before ce06c60);
//   reader: src/tree/hashing-reader.ts without lending (ce06c60);
//   lent:   HashingFileReader reading into the worker's input slots (decrypt-input.ts).
// Prints the median MiB/s and CPU (user+system, all threads) per mode. Not part of `npm run bench`.
// Env: DIST (default ../dist), LARGE_MIB, REPS, MODES (comma-separated). Run with the daemon's flags:
//   node --max-semi-space-size=4 --expose-gc bench/ab-input.mjs
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Transform, pipeline as pipe } from 'node:stream';
import { writeLargePacket } from './lib/large-packet.mjs';
const D = process.env.DIST ?? new URL('../dist', import.meta.url).pathname;
const { generateNodeKey } = await import(`${D}/keys/generate.js`);
const { decodePacket } = await import(`${D}/packet/decode.js`);
const { encodePacket } = await import(`${D}/packet/encode.js`);
const { DecryptWorker } = await import(`${D}/packet/decrypt-offload.js`);
const { HashingFileReader } = await import(`${D}/tree/hashing-reader.js`);
const MIB = Number(process.env.LARGE_MIB ?? 100);
const REPS = Number(process.env.REPS ?? 8);
const CHUNK = 256 * 1024; // the receiver's read size (src/receive/verify.ts)
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ab-input-'));
const msg = Buffer.from(crypto.randomBytes(MIB * 786432).toString('base64').replace(/.{76}/g, '$&\r\n'));
const packet = path.join(dir, 'packet.pgp');
const { A, B } = await writeLargePacket({ generateNodeKey, encodePacket }, msg, packet);
const decryptWorker = new DecryptWorker();
decryptWorker.warm(); // as the daemon does
await new Promise((r) => setTimeout(r, 500));

/** Each mode's packet input: bytes in order, hashed for the name check as the receiver does, and destroy(). */
const inputs = {
  stream: () => {
    const h = crypto.createHash('sha256');
    const tap = new Transform({ transform(c, _e, cb) { h.update(c); cb(null, c); } });
    pipe(fs.createReadStream(packet, { highWaterMark: CHUNK }), tap, () => {});
    return tap;
  },
  reader: () => {
    const r = new HashingFileReader(packet, { chunk: CHUNK });
    return { [Symbol.asyncIterator]: () => r[Symbol.asyncIterator](), destroy: () => r.destroy() }; // no lendFrom
  },
  lent: () => new HashingFileReader(packet, { chunk: CHUNK }),
};
const modes = (process.env.MODES ?? 'stream,reader,lent').split(',');
const rows = {};
try {
  for (let i = 0; i < REPS; i++) {
    for (const m of modes) {
      const c0 = process.cpuUsage(), t0 = performance.now();
      const r = await decodePacket({
        input: inputs[m](), decryptionKey: B, verificationKeys: [A.toPublic()], decryptWorker, inputBytes: fs.statSync(packet).size,
        payloadSink: () => fs.createWriteStream(path.join(dir, 'out'), { highWaterMark: 1 << 20 }),
      });
      const s = (performance.now() - t0) / 1000, c = process.cpuUsage(c0);
      if (r.header.size !== msg.length) throw new Error(`${m}: wrong size`);
      (rows[m] ??= []).push({ mibps: msg.length / 1048576 / s, cpu: (c.user + c.system) / 1e6 });
    }
  }
} finally {
  await decryptWorker.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`== ab-input: ${(msg.length / 1048576).toFixed(1)} MiB message, ${REPS} rounds (${new Date().toISOString()})`);
for (const m of modes) {
  const r = rows[m];
  console.log(`  ${m.padEnd(7)} ${med(r.map((x) => x.mibps)).toFixed(1).padStart(6)} MiB/s | CPU ${med(r.map((x) => x.cpu)).toFixed(3)} s | runs: ${r.map((x) => x.mibps.toFixed(0)).join(' ')}`);
}

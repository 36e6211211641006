// decode-large: where the large receiver's time goes, without the daemon. One LARGE_MIB (50) MiB
// message (base64 CRLF lines, as bench/large-message.mjs) is encoded once into a packet; then, REPS
// times each, in this process:
//   decoder: dist/packet/decode.js decodePacket from the packet file into a file (what the receiver
//     runs: the file read by dist/tree/hashing-reader.js, async generators, a write stream; all on
//     this thread, or with DECODE_WORKER=1 decryption and inflation on the daemon's decrypt worker,
//     dist/packet/decrypt-offload.js, the file read straight into its input slots);
//   floor:   the same primitives as ONE synchronous loop on the same bytes (zlib stream, AES-256-CFB,
//     no OpenPGP framing): 256 KiB reads into one buffer, decrypt, SHA-1 (MDC), inflate through the
//     zlib handle's writeSync into one reused buffer, SHA-512 (signature) + SHA-256 (payload), write.
// Prints MiB/s of output, wall, CPU (user+system, all threads) and minor page faults per run. The
// floor is what a synchronous push decoder could reach on one thread; the gap is the decoder's
// per-chunk machinery (docs/performance-history.md). Not part of `npm run bench`. Env: LARGE_MIB, REPS,
// DECODE_WORKER=1.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { generateNodeKey } from '../dist/keys/generate.js';
import { decodePacket } from '../dist/packet/decode.js';
import { encodePacket } from '../dist/packet/encode.js';
import { DecryptWorker } from '../dist/packet/decrypt-offload.js';
import { HashingFileReader } from '../dist/tree/hashing-reader.js';
import { writeLargePacket } from './lib/large-packet.mjs';
import { isMain, rm, tmp } from './lib/stack.mjs';

const MIB = Number(process.env.LARGE_MIB ?? 50);
const REPS = Number(process.env.REPS ?? 4);
const CHUNK = 256 * 1024;

const faults = () => Number(fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[7]);

function message() {
  return Buffer.from(crypto.randomBytes(MIB * 786432).toString('base64').replace(/.{76}/g, '$&\r\n'));
}

async function timed(label, outBytes, fn) {
  const f0 = faults(), c0 = process.cpuUsage(), t0 = performance.now();
  await fn();
  const s = (performance.now() - t0) / 1000, c = process.cpuUsage(c0);
  const row = { label, mibps: outBytes / 1048576 / s, wall: s, cpu: (c.user + c.system) / 1e6, faults: faults() - f0 };
  console.log(`  ${label.padEnd(8)} ${row.mibps.toFixed(1).padStart(6)} MiB/s | wall ${s.toFixed(3)} s | CPU ${row.cpu.toFixed(3)} s | minor faults ${row.faults}`);
  return row;
}

/** The floor: one synchronous loop over read → AES-CFB → SHA-1 → inflate → SHA-512 + SHA-256 → write. */
function floorDecode(file, key, out) {
  const fd = fs.openSync(file, 'r'), wfd = fs.openSync(out, 'w');
  const inBuf = Buffer.allocUnsafeSlow(CHUNK), outBuf = Buffer.allocUnsafeSlow(CHUNK);
  const dec = crypto.createDecipheriv('aes-256-cfb', key, Buffer.alloc(16));
  const mdc = crypto.createHash('sha1'), sig = crypto.createHash('sha512'), body = crypto.createHash('sha256');
  const z = zlib.createInflate();
  const handle = z._handle, state = z._writeState; // node:zlib internals, the same calls inflateSync makes
  let total = 0;
  try {
    for (let n; (n = fs.readSync(fd, inBuf, 0, CHUNK, null)) > 0;) {
      const plain = dec.update(inBuf.subarray(0, n));
      mdc.update(plain);
      for (let off = 0, left = plain.length; ;) {
        handle.writeSync(zlib.constants.Z_NO_FLUSH, plain, off, left, outBuf, 0, CHUNK);
        const [availOut, availIn] = state;
        const o = outBuf.subarray(0, CHUNK - availOut);
        sig.update(o);
        body.update(o);
        fs.writeSync(wfd, o);
        total += o.length;
        off += left - availIn;
        left = availIn;
        if (availOut !== 0) break;
      }
    }
    mdc.digest(); sig.digest(); body.digest();
  } finally {
    fs.closeSync(fd);
    fs.closeSync(wfd);
    z.close();
  }
  return total;
}

export async function main() {
  const dir = tmp('decode-large');
  const decryptWorker = process.env.DECODE_WORKER === '1' ? new DecryptWorker() : undefined;
  decryptWorker?.warm(); // as the daemon does
  try {
    const msg = message();
    console.log(`== decode-large: ${(msg.length / 1048576).toFixed(1)} MiB message, ${REPS} runs each (2 cores; see docs/performance.md)`);
    // The real packet, through the real encoder.
    const packet = path.join(dir, 'packet.pgp');
    const { A, B } = await writeLargePacket({ generateNodeKey, encodePacket }, msg, packet);
    // The floor's input: the same message deflated at the same level, AES-256-CFB encrypted.
    const key = crypto.randomBytes(32);
    const c = crypto.createCipheriv('aes-256-cfb', key, Buffer.alloc(16));
    const raw = path.join(dir, 'floor.bin');
    fs.writeFileSync(raw, Buffer.concat([c.update(zlib.deflateSync(msg, { level: 6 })), c.final()]));
    const rows = [];
    for (let i = 0; i < REPS; i++) {
      rows.push(await timed('decoder', msg.length, async () => {
        const input = new HashingFileReader(packet, { chunk: CHUNK });
        const r = await decodePacket({ input, decryptionKey: B, verificationKeys: [A.toPublic()], payloadSink: () => fs.createWriteStream(path.join(dir, 'out.decoder'), { highWaterMark: CHUNK }), decryptWorker, inputBytes: fs.statSync(packet).size });
        input.destroy();
        if (r.header.size !== msg.length) throw new Error('decoder: wrong size');
      }));
      rows.push(await timed('floor', msg.length, async () => {
        if (floorDecode(raw, key, path.join(dir, 'out.floor')) !== msg.length) throw new Error('floor: wrong size');
      }));
    }
    const med = (label, k) => { const xs = rows.filter((r) => r.label === label).map((r) => r[k]).sort((x, y) => x - y); return xs[Math.floor(xs.length / 2)]; };
    console.log(`  median: decoder ${med('decoder', 'mibps').toFixed(1)} MiB/s (${med('decoder', 'cpu').toFixed(3)} s CPU), floor ${med('floor', 'mibps').toFixed(1)} MiB/s (${med('floor', 'cpu').toFixed(3)} s CPU); decoder / floor ${(med('decoder', 'mibps') / med('floor', 'mibps')).toFixed(2)}`);
    console.log(`BENCH-JSON ${JSON.stringify({ bench: 'decode-large', rows })}`);
    return rows;
  } finally {
    await decryptWorker?.close();
    rm(dir);
  }
}

if (isMain(import.meta.url)) await main();

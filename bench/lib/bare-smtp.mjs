// A bare smtp-server 3.21 listener for bench/ingest-floor.mjs: the same options and greeting as
// ferrypost's listener (no TLS, no AUTH, trusted loopback greeted at once), and per message either
// nothing (`discard`) or one durable file (`durable`: write a temp file, fsync, close, rename; the
// directory is not fsync'd, ferrypost group-commits that). Two more modes measure a design ferrypost
// does not have (several messages per packet), with ferrypost's own codec and durable write (dist/):
//   `packet`: one real packet per message (sign + compress + encrypt, temp file, fsync, link, group-
//     committed directory fsync), without routing, logging or spooling: the lean listener's cost;
//   `batch`: the same, but the messages that arrive while a packet is being written wait and go
//     into the next packet together (group commit; BATCH_MAX, default 64), each answered 250 only
//     after its packet is durable. The batch's framing is a stand-in (4-byte length + message),
//     the header names the first message's envelope only.
// Prints its port on stdout.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { SMTPServer } from 'smtp-server';
import { encodePacket } from '../../dist/packet/codec.js';
import { newPacketId } from '../../dist/packet/header.js';
import { generateNodeKey } from '../../dist/keys/generate.js';
import { createDirSync, writeDurable } from '../../dist/tree/durable.js';
import { greetTrustedAtOnce } from '../../dist/smtp/greet-pause.js';

const [mode = 'discard', dir] = process.argv.slice(2);
const BATCH_MAX = Number(process.env.BATCH_MAX ?? 64);
let seq = 0;
let answered = 0;
const keys = mode === 'packet' || mode === 'batch' ? await packetKeys() : undefined;
const dirSync = createDirSync();
const batchSizes = [];

async function packetKeys() {
  const gen = async (name) => openpgp.readPrivateKey({ armoredKey: (await generateNodeKey({ name })).privateArmored });
  const [a, b] = [await gen('a'), await gen('b')];
  return { sign: a, enc: b.toPublic(), from: a.getFingerprint().toLowerCase(), to: b.getFingerprint().toLowerCase() };
}

async function writePacket(payload) {
  const now = Date.now();
  const header = {
    v: 1, type: 'mail', id: newPacketId(), from_node: keys.from, to_node: keys.to,
    created: new Date(now).toISOString(), expires: new Date(now + 7 * 86400_000).toISOString(),
    envelope: { from: 'bench@gw.test', to: ['sink@discard.test'] },
    size: payload.length, sha256: createHash('sha256').update(payload).digest('hex'),
  };
  const encoded = await encodePacket({ header, payload, signingKey: keys.sign, encryptionKey: keys.enc, compressionLevel: 6 });
  await writeDurable(dir, encoded, (sha) => `${sha.toString('hex')}.pkt`, { dirSync, mode: 0o640 });
}

const pending = [];
let writing = false;
function batchKick() {
  if (writing || pending.length === 0) return;
  writing = true;
  const batch = pending.splice(0, BATCH_MAX);
  batchSizes.push(batch.length);
  const parts = [];
  for (const m of batch) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(m.bytes.length);
    parts.push(len, m.bytes);
  }
  writePacket(Buffer.concat(parts)).then(
    () => { answered += batch.length; answerAll(batch); },
    (err) => answerAll(batch, err),
  ).finally(() => { writing = false; batchKick(); });
}
/** Answers every message of a batch, each once; a callback that throws does not keep the others unanswered. */
function answerAll(batch, err) {
  for (const m of batch) {
    try {
      m.cb(err);
    } catch (e) {
      process.stderr.write(`bare-smtp: answering a message failed: ${e}\n`);
    }
  }
}
// ingest-floor reads how many messages were answered 250 (its check that the rate is of durable
// messages) and the batch sizes (median, mean) from stderr when it stops the server.
process.on('SIGTERM', () => {
  process.stderr.write(`bare-smtp answered ${answered}\n`);
  if (batchSizes.length) {
    const s = [...batchSizes].sort((x, y) => x - y);
    process.stderr.write(`  (batch: ${s.length} packets, messages per packet median ${s[s.length >> 1]}, mean ${(s.reduce((x, y) => x + y, 0) / s.length).toFixed(2)}, max ${s.at(-1)})\n`);
  }
  process.exit(0);
});

async function durable(bytes) {
  const name = `${process.pid}.${++seq}`;
  const tmpPath = path.join(dir, `.${name}.tmp`);
  const fh = await fs.promises.open(tmpPath, 'wx', 0o600);
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.promises.rename(tmpPath, path.join(dir, name));
}

const server = new SMTPServer({
  authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], hideSTARTTLS: true, logger: false, disableReverseLookup: true, size: 10 << 20,
  onData(stream, _session, cb) {
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => {
      const ok = () => { answered++; cb(); };
      if (mode === 'discard') return ok();
      if (mode === 'durable') return durable(Buffer.concat(chunks)).then(ok, cb);
      if (mode === 'packet') return writePacket(Buffer.concat(chunks)).then(ok, cb);
      pending.push({ bytes: Buffer.concat(chunks), cb });
      batchKick();
    });
  },
});
greetTrustedAtOnce(server, () => true);
server.listen(0, '127.0.0.1', () => console.log(server.server.address().port));

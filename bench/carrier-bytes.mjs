// carrier-bytes: bytes in the tree / raw message bytes, for (1) a corpus of generated text mail
// (RFC 5322 headers + prose, 1–30 KiB) plus the real messages of fixtures/mail (each also shown
// alone), and (2) mail carrying already-compressed
// attachments (random bytes, base64, as image/jpeg and application/zip, 20–400 KiB), sent over SMTP
// into node A (B not running), one at a time, each packet matched to its message; anchor: gzip -6 of
// each same message (node:zlib, level 6). The attachment target is checked per message (its largest ratio).
// The text corpus is deterministic (seeded PRNG); the attachments are fresh random bytes each run
// (incompressible either way, so their ratios do not move). Throws if a message is refused or no packet appears.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import nodemailer from 'nodemailer';
import { benchMessageBytes, isMain, nodePair, report, rm, ROOT, startNode, tmp } from './lib/stack.mjs';

const WORDS = ('the ferry leaves at dawn and the mail goes with it; please find the minutes of the meeting below, ' +
  'we agreed to repair the roof before winter, the generator needs diesel, the school asks for books, ' +
  'thank you for your letter, I will call when the boat is back, regards from the cabin, water pump pressure ' +
  'invoice attached schedule tomorrow harbour weather forecast wind north east visit doctor supplies list').split(/[ ,;]+/);

function rng(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0) / 2 ** 32);
}

function prose(r, bytes) {
  const lines = [];
  let n = 0;
  while (n < bytes) {
    const line = [];
    for (let w = 0; w < 8 + Math.floor(r() * 6); w++) line.push(WORDS[Math.floor(r() * WORDS.length)]);
    const s = line.join(' ');
    lines.push(r() < 0.08 ? `> ${s}` : s);
    if (r() < 0.15) lines.push('');
    n += s.length + 2;
  }
  return lines.join('\r\n');
}

function headers(r, i, extra = '') {
  const d = new Date(Date.UTC(2026, 0, 1) + i * 3_600_000).toUTCString().replace('GMT', '+0000');
  return `Return-Path: <user${i % 7}@offline.test>\r\nReceived: from mx.offline.test (mx.offline.test [10.0.0.${i % 250}])\r\n\tby gw.home.test (Postfix) with ESMTPS id ${crypto.createHash('sha1').update(String(i)).digest('hex').slice(0, 10).toUpperCase()}\r\n\tfor <friend${i % 11}@example.org>; ${d}\r\n` +
    `From: User ${i % 7} <user${i % 7}@offline.test>\r\nTo: Friend <friend${i % 11}@example.org>\r\nSubject: ${prose(r, 30).split('\r\n')[0].slice(0, 60)}\r\nDate: ${d}\r\n` +
    `Message-ID: <${i}.${crypto.createHash('md5').update(String(i)).digest('hex')}@offline.test>\r\nMIME-Version: 1.0\r\n${extra}`;
}

/** 150 generated messages (a ~60-word vocabulary: it deflates better than real prose), the 7 real fixtures and the benchmarks' 4 KiB message. */
function textCorpus() {
  const r = rng(42), generated = [];
  for (let i = 0; i < 150; i++) generated.push(Buffer.from(`${headers(r, i)}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${prose(r, 1024 + Math.floor(r() ** 2 * 30 * 1024))}\r\n`));
  const fx = path.join(ROOT, 'fixtures/mail');
  const fixtures = fs.readdirSync(fx).filter((n) => n.endsWith('.eml')).sort().map((f) => fs.readFileSync(path.join(fx, f)));
  fixtures.push(benchMessageBytes()); // the 4 KiB message of the other benchmarks
  return { generated, fixtures };
}

function attachmentCorpus() {
  const r = rng(7), out = [];
  for (let i = 0; i < 40; i++) {
    const size = 20 * 1024 + Math.floor(r() * 380 * 1024);
    const [type, name] = i % 2 ? ['image/jpeg', `IMG_${1000 + i}.jpg`] : ['application/zip', `report-${i}.zip`];
    const b64 = crypto.randomBytes(size).toString('base64').replace(/.{76}/g, '$&\r\n');
    const body = `--b${i}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${prose(r, 600)}\r\n--b${i}\r\nContent-Type: ${type}; name="${name}"\r\nContent-Disposition: attachment; filename="${name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64}\r\n--b${i}--\r\n`;
    out.push(Buffer.from(`${headers(r, 1000 + i, `Content-Type: multipart/mixed; boundary="b${i}"\r\n`)}\r\n${body}`));
  }
  return out;
}

/** Sends each message alone and finds its packet (the one new file), so every message has its own ratio. */
async function measure(pair, outbox, msgs) {
  fs.rmSync(outbox, { recursive: true, force: true });
  const tr = nodemailer.createTransport({ host: '127.0.0.1', port: pair.a.port, secure: false, ignoreTLS: true, name: 'bench.test' });
  const seen = new Set();
  const per = [];
  try {
    for (const raw of msgs) {
      await tr.sendMail({ envelope: { from: 'user@offline.test', to: ['friend@example.org'] }, raw });
      const fresh = (fs.existsSync(outbox) ? fs.readdirSync(outbox) : []).filter((n) => !n.startsWith('.') && !seen.has(n));
      if (fresh.length !== 1) throw new Error(`${fresh.length} new packets for one message`);
      seen.add(fresh[0]);
      per.push({ raw: raw.length, tree: fs.statSync(path.join(outbox, fresh[0])).size, gz: zlib.gzipSync(raw, { level: 6 }).length });
    }
  } finally {
    tr.close();
  }
  const sum = (k) => per.reduce((s, m) => s + m[k], 0);
  return { raw: sum('raw'), tree: sum('tree'), gz: sum('gz'), n: per.length, maxTreeRaw: Math.max(...per.map((m) => m.tree / m.raw)), maxTreeGz: Math.max(...per.map((m) => m.tree / m.gz)) };
}

const add = (a, b) => ({ raw: a.raw + b.raw, tree: a.tree + b.tree, gz: a.gz + b.gz, n: a.n + b.n, maxTreeRaw: Math.max(a.maxTreeRaw, b.maxTreeRaw), maxTreeGz: Math.max(a.maxTreeGz, b.maxTreeGz) });

export async function main() {
  const base = tmp('carrier');
  const pair = await nodePair(base);
  const outbox = path.join(pair.tree, pair.b.fpr, pair.a.fpr);
  const node = await startNode(pair.a);
  let generated, fixtures, att;
  try {
    const corpus = textCorpus();
    generated = await measure(pair, outbox, corpus.generated);
    fixtures = await measure(pair, outbox, corpus.fixtures);
    att = await measure(pair, outbox, attachmentCorpus());
  } finally {
    await node.stop();
    rm(base);
  }
  const text = add(generated, fixtures);
  const row = (label, m, target, met) => ({ figure: `${label}: tree/raw (${m.n} msgs, ${(m.raw / 1024).toFixed(0)} KiB raw)`, value: m.tree / m.raw, unit: '', anchor: 'gzip -6 per message / raw', anchorValue: m.gz / m.raw, ratio: m.tree / m.gz, target, met });
  report('carrier-bytes', [
    row('text mail', text, '<= 0.4x raw and <= gzip -6', text.tree / text.raw <= 0.4 && text.tree <= text.gz),
    row('  of which generated (60-word vocabulary)', generated),
    row('  of which real (fixtures/mail, bench/lib/message-4k.eml)', fixtures),
    row('compressed attachments (jpeg/zip, base64)', att),
    { figure: `compressed attachments: the largest tree/raw of one message (of ${att.n})`, value: att.maxTreeRaw, unit: '', target: 'never over 1.01x raw', met: att.maxTreeRaw <= 1.01 },
  ], { text, generated, fixtures, attachments: att });
}

if (isMain(import.meta.url)) await main();

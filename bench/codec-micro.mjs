/**
 * Packet codec micro-benchmark (issue 3): 4 KiB encode/decode per second on one core, and 100 MiB
 * encode / decode throughput and peak RSS (each in its own child process, so maxRSS is that phase's),
 * next to gpg 2.2 on the same bytes with the same compression. Imports from dist/ (or from DIST, another
 * build, for an A/B): run `npm run build` first. Usage: node bench/codec-micro.mjs [--small] [--large]
 * [--gpg] (default: all).
 * Fails loudly (non-zero exit) if a round trip does not give back the same bytes.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import * as openpgp from 'openpgp';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = process.env.DIST ?? path.join(here, '..', 'dist'); // DIST: another build (A/B)
const { encodePacket, decodePacket } = await import(path.join(dist, 'packet', 'codec.js'));
const { newPacketId } = await import(path.join(dist, 'packet', 'header.js'));
const { generateNodeKey } = await import(path.join(dist, 'keys', 'generate.js'));

const MiB = 2 ** 20;
const LARGE = Number(process.env.BENCH_LARGE_MIB ?? 100) * MiB;
const LEVEL = Number(process.env.BENCH_LEVEL ?? 6);

function header(from, to, size, sha256) {
  return {
    v: 1, type: 'mail', id: newPacketId(), from_node: from.fpr, to_node: to.fpr,
    created: '2026-01-01T00:00:00.000Z', expires: '2026-01-31T00:00:00.000Z',
    envelope: { from: 'alice@example.org', to: ['bob@example.net'] }, size, sha256,
  };
}
const sha = (b) => createHash('sha256').update(b).digest('hex');

async function loadKeys(dir) {
  const read = async (n) => openpgp.readPrivateKey({ armoredKey: await readFile(path.join(dir, n), 'utf8') });
  const [a, b] = [await read('alice.sec'), await read('bob.sec')];
  return {
    alice: { priv: a, pub: a.toPublic(), fpr: a.getFingerprint().toLowerCase() },
    bob: { priv: b, pub: b.toPublic(), fpr: b.getFingerprint().toLowerCase() },
  };
}

class Sink extends Writable {
  chunks = [];
  _write(c, _e, cb) { this.chunks.push(c); cb(); }
}
async function readAll(r) { const out = []; for await (const c of r) out.push(c); return Buffer.concat(out); }

function textMail(size) {
  const line = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n';
  return Buffer.from(('Subject: bench\r\nFrom: a@example.org\r\n\r\n' + line.repeat(Math.ceil(size / line.length))).slice(0, size));
}
function* pseudoRandom(total) {
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16, 0));
  const zero = Buffer.alloc(MiB);
  for (let done = 0; done < total; done += MiB) yield cipher.update(zero.subarray(0, Math.min(MiB, total - done)));
}

async function opsPerSec(fn, seconds = 2) {
  for (let i = 0; i < 20; i++) await fn(); // warm up
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) { await fn(); n++; }
  return n / ((performance.now() - t0) / 1000);
}

async function small(dir) {
  const { alice, bob } = await loadKeys(dir);
  for (const [kind, payload] of [['text', textMail(4096)], ['random', Buffer.from(pseudoRandom(4096).next().value)]]) {
    const h = header(alice, bob, payload.length, sha(payload));
    for (const level of [0, 6]) {
      const enc = () => encodePacket({ header: h, payload, signingKey: alice.priv, encryptionKey: bob.pub, compressionLevel: level }).then(readAll);
      const packet = await enc();
      const dec = async () => {
        const sink = new Sink();
        await decodePacket({ input: Readable.from([packet]), decryptionKey: bob.priv, verificationKeys: [alice.pub], payloadSink: sink });
        if (!Buffer.concat(sink.chunks).equals(payload)) throw new Error('4 KiB round trip differs');
      };
      await dec();
      const e = await opsPerSec(enc);
      const d = await opsPerSec(dec);
      console.log(`4 KiB ${kind.padEnd(6)} level ${level}: encode ${e.toFixed(0)}/s  decode ${d.toFixed(0)}/s  packet ${packet.length} B`);
    }
  }
}

/** Child phases: --phase=encode|decode DIR; prints one JSON line. */
async function phase(name, dir) {
  const { alice, bob } = await loadKeys(dir);
  const file = path.join(dir, 'large.pgp');
  const t0 = performance.now();
  if (name === 'encode') {
    const h = header(alice, bob, LARGE, await readFile(path.join(dir, 'large.sha'), 'utf8'));
    const out = await encodePacket({ header: h, payload: Readable.from(pseudoRandom(LARGE)), signingKey: alice.priv, encryptionKey: bob.pub, compressionLevel: LEVEL });
    await pipeline(out, createWriteStream(file));
  } else {
    const sinkFile = path.join(dir, 'large.out');
    await decodePacket({ input: createReadStream(file), decryptionKey: bob.priv, verificationKeys: [alice.pub], payloadSink: createWriteStream(sinkFile) });
    if ((await stat(sinkFile)).size !== LARGE) throw new Error('decoded size differs');
  }
  const secs = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ secs, maxRssMiB: process.resourceUsage().maxRSS / 1024, packetBytes: (await stat(file)).size }));
}

function child(name, dir) {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), `--phase=${name}`, dir], { encoding: 'utf8', env: process.env });
  if (r.status !== 0) throw new Error(`${name} phase failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

async function gpgTimes(dir) {
  const home = path.join(dir, 'gnupg');
  await mkdir(home, { mode: 0o700 });
  const env = { ...process.env, GNUPGHOME: home };
  const g = (args, out = 'ignore') => {
    const t0 = performance.now();
    const r = spawnSync('/usr/bin/time', ['-f', '%M', 'gpg', '--batch', '--no-tty', '--trust-model', 'always', ...args], { env, encoding: 'utf8', stdio: ['ignore', out, 'pipe'] });
    if (r.status !== 0) throw new Error(`gpg ${args.join(' ')}: ${r.stderr}`);
    return { secs: (performance.now() - t0) / 1000, maxRssMiB: Number(r.stderr.trim().split('\n').pop()) / 1024 };
  };
  execFileSync('gpg', ['--batch', '--import', path.join(dir, 'alice.sec'), path.join(dir, 'bob.sec')], { env, stdio: 'ignore' });
  const plain = path.join(dir, 'large.plain');
  const enc = g(['-z', String(LEVEL), '--compress-algo', 'zlib', '-u', 'alice', '-r', 'bob', '--sign', '--encrypt', '--output', path.join(dir, 'gpg.pgp'), plain]);
  const decOurs = g(['--output', '/dev/null', '--decrypt', path.join(dir, 'large.pgp')]);
  const decGpg = g(['--output', '/dev/null', '--decrypt', path.join(dir, 'gpg.pgp')]);
  spawnSync('gpgconf', ['--kill', 'all'], { env });
  return { enc, decOurs, decGpg };
}

async function main() {
  const argv = process.argv.slice(2);
  const ph = argv.find((a) => a.startsWith('--phase='));
  if (ph) return phase(ph.slice(8), argv[1]);
  const all = !argv.some((a) => ['--small', '--large', '--gpg'].includes(a));
  const dir = await mkdtemp(path.join(tmpdir(), 'ferrypost-bench-'));
  try {
    await chmod(dir, 0o700);
    for (const n of ['alice', 'bob']) {
      const k = await generateNodeKey({ name: n, email: `${n}@bench.invalid` });
      await writeFile(path.join(dir, `${n}.sec`), k.privateArmored);
    }
    await chmod(dir, 0o700);
    console.log(`node ${process.version}, codec from ${dist}, level ${LEVEL}, ${LARGE / MiB} MiB incompressible (AES-CTR) payload`);
    if (all || argv.includes('--small')) await small(dir);
    if (all || argv.includes('--large') || argv.includes('--gpg')) {
      const h = createHash('sha256');
      for (const c of pseudoRandom(LARGE)) h.update(c);
      await writeFile(path.join(dir, 'large.sha'), h.digest('hex'));
      const e = child('encode', dir);
      const d = child('decode', dir);
      const mib = LARGE / MiB;
      console.log(`${mib} MiB encode: ${(mib / e.secs).toFixed(0)} MiB/s, peak RSS ${e.maxRssMiB.toFixed(0)} MiB, packet ${(e.packetBytes / LARGE).toFixed(4)}x raw`);
      console.log(`${mib} MiB decode: ${(mib / d.secs).toFixed(0)} MiB/s, peak RSS ${d.maxRssMiB.toFixed(0)} MiB`);
      if (all || argv.includes('--gpg')) {
        await pipeline(Readable.from(pseudoRandom(LARGE)), createWriteStream(path.join(dir, 'large.plain')));
        const g = await gpgTimes(dir);
        console.log(`gpg -z ${LEVEL} sign+encrypt: ${(mib / g.enc.secs).toFixed(0)} MiB/s, peak RSS ${g.enc.maxRssMiB.toFixed(0)} MiB  (ours/gpg ${(g.enc.secs / e.secs).toFixed(2)}x)`);
        console.log(`gpg --decrypt of our packet: ${(mib / g.decOurs.secs).toFixed(0)} MiB/s, peak RSS ${g.decOurs.maxRssMiB.toFixed(0)} MiB  (ours/gpg ${(g.decOurs.secs / d.secs).toFixed(2)}x)`);
        console.log(`gpg --decrypt of gpg's packet: ${(mib / g.decGpg.secs).toFixed(0)} MiB/s, peak RSS ${g.decGpg.maxRssMiB.toFixed(0)} MiB`);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
await main();

// Benchmark harness (plain JS, no build step): real ferrypost nodes (node dist/cli/main.js), a
// throwaway Postfix rendered from deploy/postfix, Postfix's smtp-sink and smtp-source, timing and
// report helpers. Everything listens on 127.0.0.1. Every helper throws with the child's output on
// failure; callers must stop what they start (try/finally), temp dirs go under os.tmpdir().
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// BENCH_CLI: another build of ferrypost's CLI (e.g. a snapshot of HEAD while dist/ is being rebuilt).
export const CLI = process.env.BENCH_CLI ? path.resolve(process.env.BENCH_CLI) : path.join(ROOT, 'dist/cli/main.js');

/**
 * The 4 KiB message every small-message benchmark sends, ferrypost and its anchors alike (smtp-source
 * -F; NNCP's sendmail gets the same bytes): a real-looking reply with headers and prose, so it
 * deflates as mail does (gzip -6: ~0.51 of its size). smtp-source -l would send runs of 'X' that
 * deflate to ~135 bytes (no less realistic for Postfix, and in principle kinder to the side that compresses).
 */
export const BENCH_MESSAGE = path.join(ROOT, 'bench/lib/message-4k.eml');
/** BENCH_MESSAGE as sent on the wire (CRLF line ends, 4,096 bytes). */
export const benchMessageBytes = () => Buffer.from(fs.readFileSync(BENCH_MESSAGE, 'utf8').replace(/\n/g, '\r\n'));

/** True when the module at metaUrl is the script node was started with (also through a symlink). */
export function isMain(metaUrl) {
  try {
    return fileURLToPath(metaUrl) === fs.realpathSync(process.argv[1] ?? '');
  } catch {
    return false;
  }
}

export function tmp(prefix) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `fp-bench-${prefix}-`));
  fs.chmodSync(d, 0o755);
  return d;
}

export function rm(dir) {
  if (process.env.FERRYPOST_KEEP_BENCH !== '1') fs.rmSync(dir, { recursive: true, force: true });
}

export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { input: opts.input, encoding: opts.encoding ?? 'utf8', timeout: opts.timeout ?? 600_000, env: opts.env ?? process.env, maxBuffer: 1 << 28 });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}: ${r.stdout}${r.stderr}`);
  return r;
}

/**
 * sync(1) before a timed step: dirty pages left by the step before (gpg's unsynced 100 MiB output, a
 * removed packet set, Postfix's queue files) would otherwise be written back inside the next step's
 * fsyncs (ext4 data=ordered commits them with its journal), charging one tool for another's writes.
 */
export function settleDisk() {
  run('sync', []);
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((res) => {
      const c = net.connect({ port, host: '127.0.0.1' });
      c.once('connect', () => (c.destroy(), res(true)));
      c.once('error', () => (c.destroy(), res(false)));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port}`);
    await sleep(50);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what, timeoutMs, probe, intervalMs = 20) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timeout after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------- ferrypost nodes

export function cli(args, config) {
  const full = config ? ['--config', config, ...args] : args;
  return run(process.execPath, [CLI, ...full]);
}

function initNode(dir, name, args) {
  const r = cli(['init', '--dir', dir, '--name', name, ...args]);
  const fpr = /fingerprint:\s+([0-9A-F ]+)/.exec(r.stdout)?.[1]?.replace(/\s/g, '').toLowerCase();
  if (!fpr) throw new Error(`no fingerprint in init output: ${r.stdout}`);
  return nodeHandle(dir, name, fpr);
}

function nodeHandle(dir, name, fpr) {
  const config = path.join(dir, 'ferrypost.yaml');
  return {
    name, dir, config, fpr, publicKey: path.join(dir, 'keys', 'node.asc'),
    /** What the config sets for receiving and delivery (for the report: what the figures were taken with). */
    receiverSettings() {
      const doc = parseDocument(fs.readFileSync(config, 'utf8'));
      const d = doc.getIn(['delivery'])?.toJSON?.() ?? {};
      return { 'receive.concurrency': doc.getIn(['receive', 'concurrency']) ?? 'default', 'delivery.method': d.method, 'delivery.max_connections': d.max_connections ?? 'default' };
    },
    edit(fn) {
      const doc = parseDocument(fs.readFileSync(config, 'utf8'));
      fn(doc);
      fs.writeFileSync(config, doc.toString());
    },
  };
}

/**
 * Two nodes sharing one tree (as Syncthing would give them): A sends everything to B (default
 * route), B delivers with `delivery` (a config object). Both listen for SMTP on free ports.
 */
export async function nodePair(base, { delivery, aDelivery, tune, existing } = {}) {
  let a, b, tree;
  if (existing) {
    // a pair made earlier (cached packet set): same dirs and keys, fresh ports
    tree = existing.tree;
    a = { ...nodeHandle(existing.a.dir, 'a', existing.a.fpr) };
    b = { ...nodeHandle(existing.b.dir, 'b', existing.b.fpr) };
  } else {
    tree = path.join(base, 'tree');
    a = initNode(path.join(base, 'a'), 'a', ['--tree', tree, '--no-self-peer']);
    b = initNode(path.join(base, 'b'), 'b', ['--tree', tree, '--no-self-peer']);
    cli(['peer', 'add', b.publicKey, '--name', 'b', '--default'], a.config);
    cli(['peer', 'add', a.publicKey, '--name', 'a', '--mail', 'offline.test'], b.config);
  }
  a.port = await freePort();
  b.port = await freePort();
  for (const [n, d] of [[a, aDelivery], [b, delivery]]) {
    n.edit((doc) => {
      doc.setIn(['smtp', 'listen'], [`127.0.0.1:${n.port}`]);
      doc.setIn(['smtp', 'hostname'], `ferrypost.${n.name}.test`);
      doc.setIn(['smtp', 'max_size'], '200M');
      if (d) doc.setIn(['delivery'], d);
      doc.setIn(['receive', 'retry_initial'], '1s');
      doc.setIn(['receive', 'retry_max'], '2s');
      doc.setIn(['log', 'level'], 'warn');
      // The receiver's concurrency is the default unless DELIVER_CONCURRENCY asks otherwise, on every
      // call: cached configs outlive the run that tuned them (a 64 once stuck in them unnoticed).
      if (process.env.DELIVER_CONCURRENCY) doc.setIn(['receive', 'concurrency'], Number(process.env.DELIVER_CONCURRENCY));
      else doc.deleteIn(['receive', 'concurrency']);
      tune?.(doc, n.name);
    });
  }
  return { a, b, tree, inboxB: path.join(tree, b.fpr, a.fpr) };
}

/** The V8 flags of the installed `ferrypost` command's interpreter line (src/cli/main.ts). */
export const DAEMON_NODE_FLAGS = ['--max-semi-space-size=4', '--expose-gc'];
/** BENCH_NODE_FLAGS: extra V8/Node flags for the daemon, after the default ones (A/B of runtime flags). */
const extraNodeFlags = () => (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);

/**
 * Starts `ferrypost run`; resolves once it logged node.started. nodeArgs e.g. ['--cpu-prof']; cli: another
 * build's dist/cli/main.js (A/B scripts), default CLI.
 */
export async function startNode(node, { nodeArgs = [], logLevel = 'info', cli = CLI } = {}) {
  const proc = spawn(process.execPath, [...DAEMON_NODE_FLAGS, ...extraNodeFlags(), ...nodeArgs, cli, '--config', node.config, 'run', '--log-level', logLevel], { stdio: ['ignore', 'pipe', 'pipe'], cwd: node.dir });
  let buf = '';
  // Log events counted as they stream (buf keeps only the tail): a bounced packet leaves the inbox
  // like a delivered one, so a drain checks rx.delivered and rx.bounce, not only the inbox.
  const events = new Map();
  const partial = { stdout: '', stderr: '' }; // one line buffer per stream: their chunks interleave
  const count = (stream, text) => {
    const lines = (partial[stream] + text).split('\n');
    partial[stream] = lines.pop();
    for (const l of lines) {
      const m = /"evt":"([^"]+)"/.exec(l);
      if (m) events.set(m[1], (events.get(m[1]) ?? 0) + 1);
    }
  };
  // BENCH_DAEMON_OUT=FILE: every daemon's stdout and stderr also appended there whole (e.g. V8's --trace-deopt).
  const out = process.env.BENCH_DAEMON_OUT ? fs.openSync(process.env.BENCH_DAEMON_OUT, 'a') : undefined;
  const onData = (stream) => (t) => { if (out !== undefined) fs.writeSync(out, t); count(stream, t); buf += t; if (buf.length > 4e6) buf = buf.slice(-2e6); };
  // Strings, not Buffers: a UTF-8 character split between two chunks stays whole.
  proc.stdout.setEncoding('utf8').on('data', onData('stdout'));
  proc.stderr.setEncoding('utf8').on('data', onData('stderr'));
  const exited = new Promise((res) => proc.once('exit', (code, sig) => res(code ?? sig)));
  if (out !== undefined) proc.once('close', () => fs.closeSync(out));
  try {
    await waitFor(`${node.name} node.started`, 30_000, () => {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${node.name} exited ${proc.exitCode ?? proc.signalCode}: ${buf.slice(-3000)}`);
      return buf.includes('"node.started"');
    });
    if (node.port) await waitForPort(node.port);
  } catch (e) {
    // A daemon that never said it started must not outlive the benchmark: left running, it keeps
    // draining the (cached) tree and its journal turns the next run's packets into replays.
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
    throw e;
  }
  return {
    proc, pid: proc.pid, logs: () => buf,
    /** How many log lines with this evt the daemon wrote so far (at --log-level info: rx.delivered, rx.bounce, ...). */
    events: (evt) => events.get(evt) ?? 0,
    /**
     * Rejects unless the daemon logged n more rx.delivered than `before` (= events('rx.delivered') then)
     * and no rx.bounce at all: an empty inbox alone does not tell delivered from bounced. The packet
     * is removed before its log line is written, so this waits (up to 10 s) for the lines to arrive.
     */
    async assertDelivered(n, before, what) {
      const delivered = () => (events.get('rx.delivered') ?? 0) - before;
      await waitFor(`${what}: ${n} rx.delivered log lines`, 10_000, () => delivered() >= n).catch(() => undefined);
      const bounced = events.get('rx.bounce') ?? 0;
      if (delivered() !== n || bounced > 0) throw new Error(`${what}: ${delivered()} of ${n} packets delivered, ${bounced} recipients bounced: not a delivery rate. ${buf.slice(-2000)}`);
    },
    /** VmHWM (peak RSS) in KiB from /proc, while the process runs. */
    vmHWM: () => Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8'))?.[1]),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

/** Busy CPU ms of the whole machine, all cores (user nice system irq softirq of /proc/stat's cpu line). */
export function machineBusyMs() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6]) * 10; // USER_HZ 100
}

export function countFiles(dir) {
  try {
    return fs.readdirSync(dir).filter((n) => !n.startsWith('.')).length;
  } catch {
    return 0;
  }
}

/** Bytes of all non-dot files under dir, recursively. */
export function treeBytes(dir) {
  let sum = 0, count = 0;
  for (const rel of fs.readdirSync(dir, { recursive: true })) {
    if (path.basename(rel).startsWith('.')) continue;
    const st = fs.statSync(path.join(dir, rel));
    if (st.isFile()) { sum += st.size; count++; }
  }
  return { bytes: sum, count };
}

// ---------------------------------------------------------------- Postfix

function render(rel, dest, vars) {
  const text = fs.readFileSync(path.join(ROOT, 'deploy', rel), 'utf8').replace(/@([A-Z][A-Z0-9_]*)@/g, (w, n) => {
    if (vars[n] === undefined) throw new Error(`deploy/${rel}: no value for ${w}`);
    return String(vars[n]);
  });
  fs.writeFileSync(dest, text);
}

function ids(user) {
  const f = run('getent', ['passwd', user]).stdout.trim().split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/**
 * A Postfix instance rendered from deploy/postfix (as test/helpers/stack/postfix.ts does) where
 * discard.test goes to discard(8): the "Postfix accepts into its queue" anchor.
 */
export async function startPostfix(name = 'bench') {
  const port = await freePort();
  const dir = tmp(`postfix-${name}`);
  const d = (s) => path.join(dir, s);
  for (const s of ['etc', 'spool', 'data', 'mail']) fs.mkdirSync(d(s), { mode: 0o755 });
  const pf = ids('postfix');
  fs.chownSync(d('data'), pf.uid, pf.gid);
  const vm = ids('vmail');
  fs.chownSync(d('mail'), vm.uid, vm.gid);
  const vars = {
    INSTANCE_NAME: name, HOSTNAME: 'mx.bench.test', CONFIG_DIR: d('etc'), QUEUE_DIR: d('spool'), DATA_DIR: d('data'),
    MAILLOG_FILE: d('maillog'), MAILLOG_PREFIX: dir, LOCAL_DOMAIN: 'local.test', MAIL_DIR: d('mail'),
    VIRTUAL_MAILBOXES: 'alice@local.test=alice/Maildir/', RELAY_DOMAINS: 'discard.test, offline.test',
    TRANSPORT_ENTRIES: 'discard.test=discard:, offline.test=discard:, .offline.test=discard:', FERRYPOST_PORT: 9, SMTPD_PORT: port, FERRYPOST_SENDMAIL: '/usr/bin/false', FERRYPOST_PIPE_USER: 'nobody',
  };
  render('postfix/main.cf', d('etc/main.cf'), vars);
  render('postfix/master.cf', d('etc/master.cf'), vars);
  run('/usr/sbin/postfix', ['-c', d('etc'), 'check']);
  run('/usr/sbin/postfix', ['-c', d('etc'), 'start']);
  await waitForPort(port);
  const maillog = () => { try { return fs.readFileSync(d('maillog'), 'utf8'); } catch { return ''; } };
  return {
    port, dir, etc: d('etc'), maillog,
    /** Messages discard(8) has finished ("status=sent" lines). */
    discarded: () => (maillog().match(/status=sent/g) ?? []).length,
    /**
     * Runs a timed step with Postfix's queue empty and the disk synced before it, then waits for the
     * queue to empty again and throws unless discard(8) delivered `n` more messages (at least `n` with
     * atLeast: a step that also sends warm-up messages). Resolves with the step's result.
     */
    async expectDiscards(what, n, step, { atLeast = false } = {}) {
      await this.idle();
      settleDisk();
      const d0 = this.discarded();
      const r = await step();
      await this.idle();
      const got = this.discarded() - d0;
      if (atLeast ? got < n : got !== n) throw new Error(`${what}: Postfix delivered (discard) ${got} messages, expected ${atLeast ? 'at least ' : ''}${n}`);
      return r;
    },
    /**
     * Waits until Postfix's queue is empty: after a run, qmgr and discard(8) are still working off what
     * smtpd accepted, on the same two cores, and the next measurement (ferrypost's or Postfix's own)
     * must not share them with that.
     */
    async idle(timeoutMs = 300_000) {
      const queued = () => ['maildrop', 'incoming', 'active', 'deferred', 'hold'].reduce((n, q) => {
        try {
          return n + fs.readdirSync(d(`spool/${q}`), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;
        } catch (e) {
          if (e.code === 'ENOENT') return n; // a queue Postfix has not made yet
          throw e;
        }
      }, 0);
      // Two empty readings in a row: qmgr may move a file between queues while they are read.
      let empty = 0;
      await waitFor(`postfix ${name}: queue empty`, timeoutMs, () => (empty = queued() === 0 ? empty + 1 : 0) >= 2, 100);
    },
    async stop() {
      const pid = Number(fs.readFileSync(d('spool/pid/master.pid'), 'utf8').trim());
      run('/usr/sbin/postfix', ['-c', d('etc'), 'stop'], { allowFail: true });
      await waitFor('postfix master exit', 15_000, () => { try { process.kill(pid, 0); return /\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return true; } });
      rm(dir);
    },
  };
}

export async function startSmtpSink(port) {
  port ??= await freePort();
  const child = spawn('/usr/sbin/smtp-sink', ['-u', 'nobody', `127.0.0.1:${port}`, '256'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise((r) => child.once('exit', r));
  await waitForPort(port);
  return { port, async stop() { child.kill('SIGTERM'); await exited; } };
}

/**
 * Runs smtp-source under /usr/bin/time; resolves with wall seconds and smtp-source's own CPU ms.
 * sessions: -s, count: -m, message: -F (default BENCH_MESSAGE for the default 4 KiB), else size: -l;
 * reuse: -d (keep each connection for the next message; default: a connection per message).
 */
export function smtpSourceRun(port, { sessions = 10, count, size = 4096, message = size === 4096 ? BENCH_MESSAGE : undefined, to = 'sink@discard.test', from = 'bench@gw.test', oneSession = false, reuse = false }) {
  return new Promise((resolve, reject) => {
    const args = ['-s', String(sessions), '-m', String(count), ...(message ? ['-F', message] : ['-l', String(size)]), '-f', from, '-t', to];
    if (reuse) args.push('-d'); // several messages per connection, as a pooling client sends them
    if (!oneSession) args.push('-c'); // -c prints a counter; harmless
    args.push(`127.0.0.1:${port}`);
    const t0 = process.hrtime.bigint();
    const child = spawn('/usr/bin/time', ['-f', 'CPU %U %S', '/usr/sbin/smtp-source', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    child.once('exit', (code) => {
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      const cpu = /CPU ([\d.]+) ([\d.]+)\s*$/.exec(err);
      const own = cpu ? err.slice(0, cpu.index) : err;
      if (code !== 0 || !cpu || /error|refused|fatal/i.test(own)) reject(new Error(`smtp-source exited ${code}: ${err.slice(-2000)}`));
      else resolve({ s, cpuMs: (Number(cpu[1]) + Number(cpu[2])) * 1000 });
    });
  });
}

/** Runs smtp-source; resolves with wall seconds. */
export const smtpSource = (port, opts) => smtpSourceRun(port, opts).then((r) => r.s);

/** The fields of /proc/PID/stat after the command name (index 0 = state, 7 = minflt, 11 = utime, 12 = stime). */
export function procStatFields(pid) {
  return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
}

/** Minor page faults of a running process so far. */
export const minorFaults = (pid) => Number(procStatFields(pid)[7]);

/** [user, system] ms per thread of a running process, keyed "tid:name" (the main thread's tid is the pid). */
export function threadCpuMs(pid) {
  const out = {};
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const s = fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      const f = s.split(') ')[1].split(' ');
      out[`${t}:${s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'))}`] = [Number(f[11]) * 10, Number(f[12]) * 10];
    } catch { /* the thread ended meanwhile */ }
  }
  return out;
}

/**
 * CPU ms (user + system) a process has used; with children, also its live children and, through
 * its cutime/cstime, the children it has reaped (e.g. Postfix's master and every smtpd, cleanup, ...).
 */
export function processCpuMs(pid, { children = false } = {}) {
  const times = (p) => {
    const f = procStatFields(p);
    return { self: (Number(f[11]) + Number(f[12])) * 10, reaped: (Number(f[13]) + Number(f[14])) * 10, ppid: Number(f[1]) }; // USER_HZ 100
  };
  const root = times(pid);
  if (!children) return root.self;
  let sum = root.self + root.reaped;
  for (const p of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const t = times(Number(p));
      if (t.ppid === pid) sum += t.self;
    } catch { /* exited meanwhile */ }
  }
  return sum;
}

// ---------------------------------------------------------------- figures

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * The median of paired ratios xs[i] / ys[i]: each run measured ferrypost and its anchor back to back,
 * so each ratio compares the same minutes of this shared machine (its speed drifts between runs).
 */
export const medianRatio = (xs, ys) => median(xs.map((x, i) => x / ys[i]));

export function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

export function machine() {
  const cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '?';
  return { nproc: os.cpus().length, cpu, node: process.version, date: new Date().toISOString() };
}

/**
 * Prints one benchmark's result as a human line per figure plus one JSON line (prefix BENCH-JSON)
 * that run-all.mjs collects. rows: [{ figure, value, unit, anchor, anchorValue, ratio, target, met }].
 */
export function report(bench, rows, extra = {}) {
  console.log(`\n== ${bench} (${machine().cpu}, ${machine().nproc} cores, ${machine().date})`);
  for (const r of rows) {
    const fmt = (v) => (typeof v === 'number' ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3)) : v ?? '-');
    console.log(`  ${r.figure}: ${fmt(r.value)} ${r.unit ?? ''}` + (r.anchor ? ` | ${r.anchor}: ${fmt(r.anchorValue)} ${r.unit ?? ''}` : '') +
      (r.ratio !== undefined ? ` | ratio ${fmt(r.ratio)}` : '') + (r.target ? ` | target ${r.target} ${r.met === undefined ? '' : r.met ? 'MET' : 'NOT MET'}` : ''));
  }
  for (const [k, v] of Object.entries(extra)) console.log(`  ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  console.log(`BENCH-JSON ${JSON.stringify({ bench, rows, extra, machine: machine() })}`);
}

export function runs() {
  const n = Number(process.env.BENCH_RUNS ?? 3);
  return Number.isInteger(n) && n > 0 ? n : 3;
}

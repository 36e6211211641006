/**
 * Test helper: real ferrypost nodes as real processes (node dist/cli/main.js), so that tests can
 * SIGTERM and kill -9 them. Nodes are created with the real CLI (init, key export, peer add).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseDocument } from 'yaml';

export const CLI = path.resolve('dist/cli/main.js');

export interface CliResult { status: number; stdout: string; stderr: string }

export function cli(args: string[], opts: { config?: string; input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): CliResult {
  const full = opts.config ? ['--config', opts.config, ...args] : args;
  const r = spawnSync(process.execPath, [CLI, ...full], { input: opts.input, env: { ...process.env, ...opts.env }, timeout: 60_000 });
  return { status: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

export interface TestNode {
  name: string;
  dir: string;
  config: string;
  fingerprint: string;
  publicKey: string;
  /** Edit the YAML config (keeps comments). */
  edit(fn: (doc: ReturnType<typeof parseDocument>) => void): void;
}

export function tmpdir(prefix = 'fp-test-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function initNode(dir: string, name: string, args: string[] = []): TestNode {
  const r = cli(['init', '--dir', dir, '--name', name, ...args]);
  if (r.status !== 0) throw new Error(`ferrypost init failed (${r.status}): ${r.stderr}`);
  const fpr = /fingerprint:\s+([0-9A-F ]+)/.exec(r.stdout)?.[1]?.replace(/\s/g, '').toLowerCase();
  if (!fpr) throw new Error(`no fingerprint in: ${r.stdout}`);
  const config = path.join(dir, 'ferrypost.yaml');
  const node: TestNode = {
    name,
    dir,
    config,
    fingerprint: fpr,
    publicKey: path.join(dir, 'keys', 'node.asc'),
    edit(fn) {
      const doc = parseDocument(readFileSync(config, 'utf8'));
      fn(doc);
      writeFileSync(config, doc.toString());
    },
  };
  return node;
}

export function addPeer(node: TestNode, peer: TestNode, args: string[]): void {
  const r = cli(['peer', 'add', peer.publicKey, '--name', peer.name, ...args], { config: node.config });
  if (r.status !== 0) throw new Error(`peer add failed (${r.status}): ${r.stderr}`);
}

/**
 * Two nodes sharing one tree directory (what Syncthing gives both of them): A is the offline site
 * (mail for offlineDomain is delivered there), B the connected one (default route from A).
 */
export function nodePair(base: string, opts: { offlineDomain: string; aArgs?: string[]; bArgs?: string[]; treeDir?: string }): { a: TestNode; b: TestNode; tree: string } {
  const tree = opts.treeDir ?? path.join(base, 'tree');
  const a = initNode(path.join(base, 'a'), 'a', ['--tree', tree, '--no-self-peer', ...(opts.aArgs ?? [])]);
  const b = initNode(path.join(base, 'b'), 'b', ['--tree', tree, '--no-self-peer', ...(opts.bArgs ?? [])]);
  addPeer(a, b, ['--default']);
  addPeer(b, a, ['--mail', opts.offlineDomain, '--mail', `*.${opts.offlineDomain}`]);
  return { a, b, tree };
}

export interface RunningNode {
  proc: ChildProcess;
  logs(): string;
  /** Resolves with the first log line (parsed) whose evt matches. */
  waitForEvent(evt: string, timeoutMs?: number, pred?: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  events(evt: string): Array<Record<string, unknown>>;
  stop(): Promise<number | null>;
  kill9(): Promise<void>;
}

export async function startNode(node: TestNode, extraEnv: NodeJS.ProcessEnv = {}, as?: { uid: number; gid: number }): Promise<RunningNode> {
  const proc = spawn(process.execPath, ['--max-semi-space-size=4', '--expose-gc', CLI, '--config', node.config, 'run', '--log-level', 'debug'], {
    env: { ...process.env, ...extraEnv },
    ...(as ?? {}),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let buf = '';
  const waiters: Array<() => void> = [];
  const onData = (d: Buffer) => {
    buf += d.toString();
    for (const w of waiters.splice(0)) w();
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const parsed = (): Array<Record<string, unknown>> =>
    buf.split('\n').flatMap((l) => {
      try {
        return l.startsWith('{') ? [JSON.parse(l) as Record<string, unknown>] : [];
      } catch {
        return [];
      }
    });
  const running: RunningNode = {
    proc,
    logs: () => buf,
    events: (evt) => parsed().filter((l) => l.evt === evt),
    waitForEvent(evt, timeoutMs = 20_000, pred = () => true) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timeout waiting for ${evt} from ${node.name}; log:\n${buf.slice(-4000)}`)), timeoutMs);
        const check = () => {
          const hit = parsed().find((l) => l.evt === evt && pred(l));
          if (hit) {
            clearTimeout(timer);
            resolve(hit);
          } else if (proc.exitCode !== null) {
            clearTimeout(timer);
            reject(new Error(`${node.name} exited (${proc.exitCode}) while waiting for ${evt}; log:\n${buf.slice(-4000)}`));
          } else waiters.push(check);
        };
        check();
      });
    },
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      return exited;
    },
    async kill9() {
      if (proc.exitCode !== null) return;
      proc.kill('SIGKILL');
      await exited;
    },
  };
  await running.waitForEvent('node.started', 30_000);
  return running;
}

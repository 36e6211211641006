// Starts a throwaway Syncthing (1.19) instance for end-to-end tests: home in a temp dir, GUI/REST
// and sync listener on free 127.0.0.1 ports, a fixed API key, discovery/relays/NAT/usage reporting
// off, reconnectionIntervalS 5 written to config.xml before start. Driven over the REST API.
// Fails (throws) if generate fails, config.xml lacks an element we edit, REST does not answer within
// 30 s (the error carries the log tail), or a REST call returns non-2xx. stop() always cleans up:
// REST shutdown, then SIGKILL to the process group if the monitor + child have not exited.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../ports.js';
import { readIfExists, removeTempDir, waitFor } from './proc.js';

const SYNCTHING = '/usr/bin/syncthing';

export interface SyncthingOptions {
  /** reconnectionIntervalS in config.xml (Syncthing's minimum is 5). */
  reconnectionIntervalS?: number;
}

/** Anything with a device ID: another instance, or a plain {deviceId}. */
export interface SyncthingDevice {
  deviceId: string;
  name?: string;
  address?: string;
}

export interface FolderCompletion {
  completion: number;
  globalBytes: number;
  needBytes: number;
  globalItems: number;
  needItems: number;
  needDeletes: number;
  remoteState?: string;
}

export interface SyncthingInstance {
  name: string;
  home: string;
  deviceId: string;
  apiKey: string;
  guiPort: number;
  syncPort: number;
  /** tcp://127.0.0.1:<syncPort> */
  address: string;
  pid: number;
  /** GET/POST/PUT/PATCH a REST path; parsed JSON (or undefined for an empty body). */
  api(method: string, p: string, body?: unknown): Promise<unknown>;
  addDevice(other: SyncthingDevice): Promise<void>;
  /** A sendreceive folder with the fs watcher on (delay 1 s), rescan every 10 s, shared with devices. */
  shareFolder(id: string, dir: string, devices: SyncthingDevice[]): Promise<void>;
  pause(device: SyncthingDevice): Promise<void>;
  resume(device: SyncthingDevice): Promise<void>;
  connected(device: SyncthingDevice): Promise<boolean>;
  waitConnected(device: SyncthingDevice, timeoutMs?: number): Promise<void>;
  completion(folder: string, device: SyncthingDevice): Promise<FolderCompletion>;
  /** The ignore patterns Syncthing loaded for a folder (from its .stignore). */
  ignores(folder: string): Promise<string[]>;
  log(): string;
  stop(): Promise<void>;
}

/** Edits the generated config.xml: loopback only, no discovery/relays/NAT/UR, our GUI address and key. */
export function loopbackConfig(xml: string, v: { gui: string; apiKey: string; listen: string; reconnectionIntervalS: number }): string {
  const section = (tag: string, fn: (s: string) => string) => {
    const re = new RegExp(`<${tag}[\\s>][\\s\\S]*?</${tag}>`);
    const m = re.exec(xml);
    if (!m) throw new Error(`syncthing config.xml: no <${tag}> element`);
    xml = xml.slice(0, m.index) + fn(m[0]) + xml.slice(m.index + m[0].length);
  };
  const set = (s: string, tag: string, value: string) => {
    const re = new RegExp(`<${tag}>[^<]*</${tag}>`);
    if (!re.test(s)) throw new Error(`syncthing config.xml: no <${tag}> to set`);
    return s.replace(re, `<${tag}>${value}</${tag}>`);
  };
  section('gui', (g) => set(set(g.replace(/^<gui[^>]*>/, '<gui enabled="true" tls="false" debugging="false">'), 'address', v.gui), 'apikey', v.apiKey));
  section('options', (o) => {
    for (const [tag, value] of Object.entries({
      listenAddress: v.listen,
      globalAnnounceServer: '',
      globalAnnounceEnabled: 'false',
      localAnnounceEnabled: 'false',
      relaysEnabled: 'false',
      natEnabled: 'false',
      urAccepted: '-1',
      urSeen: '3',
      autoUpgradeIntervalH: '0',
      crashReportingEnabled: 'false',
      startBrowser: 'false',
      announceLANAddresses: 'false',
      setLowPriority: 'false',
      reconnectionIntervalS: String(v.reconnectionIntervalS),
    })) o = set(o, tag, value);
    return o;
  });
  return xml;
}

/** pids (not zombies) whose process group is pgid, from /proc. */
function groupPids(pgid: number): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const stat = readIfExists(`/proc/${e}/stat`);
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f[0] !== 'Z' && Number(f[2]) === pgid) out.push(Number(e));
  }
  return out;
}

export async function startSyncthing(name: string, opts: SyncthingOptions = {}): Promise<SyncthingInstance> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `fp-syncthing-${name}-`));
  const home = path.join(dir, 'home');
  const logFile = path.join(dir, 'syncthing.log');
  const gen = spawnSync(SYNCTHING, ['generate', `--home=${home}`, '--no-default-folder', '--skip-port-probing'], { encoding: 'utf8', timeout: 30_000 });
  if (gen.status !== 0) throw new Error(`syncthing generate failed (${gen.status ?? gen.signal}): ${gen.stdout}${gen.stderr}`);
  const guiPort = await freePort();
  let syncPort = await freePort();
  while (syncPort === guiPort) syncPort = await freePort();
  const apiKey = `fp-test-key-${name}-${process.pid}`;
  const address = `tcp://127.0.0.1:${syncPort}`;
  const configFile = path.join(home, 'config.xml');
  fs.writeFileSync(configFile, loopbackConfig(fs.readFileSync(configFile, 'utf8'), { gui: `127.0.0.1:${guiPort}`, apiKey, listen: address, reconnectionIntervalS: opts.reconnectionIntervalS ?? 5 }));
  const idRun = spawnSync(SYNCTHING, ['serve', `--home=${home}`, '--device-id'], { encoding: 'utf8', timeout: 30_000 });
  const deviceId = /[A-Z2-7]{7}(?:-[A-Z2-7]{7}){7}/.exec(idRun.stdout)?.[0];
  if (!deviceId) throw new Error(`syncthing --device-id: no ID in ${idRun.stdout}${idRun.stderr}`);

  const logFd = fs.openSync(logFile, 'a');
  const proc: ChildProcess = spawn(SYNCTHING, ['serve', `--home=${home}`, '--no-browser', '--no-restart', '--no-upgrade', '--logflags=3'], {
    env: { ...process.env, STNORESTART: '1', STNOUPGRADE: '1', STNODEFAULTFOLDER: '1' },
    stdio: ['ignore', logFd, logFd],
    detached: true, // own process group: the SIGKILL fallback reaches monitor and child
  });
  fs.closeSync(logFd);
  const pid = proc.pid!;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const killGroup = () => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  };
  process.once('exit', killGroup); // the test runner dies: do not leave daemons behind
  const log = () => readIfExists(logFile);
  const base = `http://127.0.0.1:${guiPort}`;

  async function api(method: string, p: string, body?: unknown): Promise<unknown> {
    const res = await fetch(base + p, {
      method,
      headers: { 'X-API-Key': apiKey, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`syncthing ${name}: ${method} ${p} -> ${res.status} ${text}`);
    return text && (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : undefined;
  }

  let stopped = false;
  async function stop(): Promise<void> {
    if (stopped) return;
    stopped = true;
    try {
      if (proc.exitCode === null && proc.signalCode === null) {
        await api('POST', '/rest/system/shutdown').catch(() => proc.kill('SIGTERM'));
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      }
      await waitFor(`syncthing ${name} processes to exit`, 5_000, () => groupPids(pid).length === 0).catch(() => undefined);
      if (groupPids(pid).length) {
        killGroup();
        await waitFor(`syncthing ${name} to die after SIGKILL`, 5_000, () => groupPids(pid).length === 0);
      }
    } finally {
      process.removeListener('exit', killGroup);
      removeTempDir(dir);
    }
  }

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) {
      await stop();
      throw new Error(`syncthing ${name} exited (${proc.exitCode}) at start:\n${log().slice(-3000)}`);
    }
    const ok = await api('GET', '/rest/system/ping').then(() => true, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`syncthing ${name}: REST did not answer on ${guiPort} in 30 s:\n${log().slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  const q = (d: SyncthingDevice) => encodeURIComponent(d.deviceId);
  const self: SyncthingInstance = {
    name,
    home,
    deviceId,
    apiKey,
    guiPort,
    syncPort,
    address,
    pid,
    api,
    async addDevice(other) {
      await api('PUT', `/rest/config/devices/${q(other)}`, {
        deviceID: other.deviceId,
        name: other.name ?? other.deviceId.slice(0, 7),
        addresses: [other.address ?? 'dynamic'],
        autoAcceptFolders: false,
      });
    },
    async shareFolder(id, folderDir, devices) {
      fs.mkdirSync(folderDir, { recursive: true });
      await api('PUT', `/rest/config/folders/${encodeURIComponent(id)}`, {
        id,
        label: id,
        path: folderDir,
        type: 'sendreceive',
        devices: [{ deviceID: deviceId }, ...devices.map((d) => ({ deviceID: d.deviceId }))],
        rescanIntervalS: 10,
        fsWatcherEnabled: true,
        fsWatcherDelayS: 1,
      });
    },
    async pause(d) {
      await api('POST', `/rest/system/pause?device=${q(d)}`);
    },
    async resume(d) {
      await api('POST', `/rest/system/resume?device=${q(d)}`);
    },
    async connected(d) {
      const c = (await api('GET', '/rest/system/connections')) as { connections: Record<string, { connected: boolean }> };
      return c.connections[d.deviceId]?.connected === true;
    },
    async waitConnected(d, timeoutMs = 30_000) {
      const end = Date.now() + timeoutMs;
      while (!(await self.connected(d))) {
        if (Date.now() > end) throw new Error(`syncthing ${name}: not connected to ${d.name ?? d.deviceId} after ${timeoutMs} ms\n${log().slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async completion(folder, d) {
      return (await api('GET', `/rest/db/completion?folder=${encodeURIComponent(folder)}&device=${q(d)}`)) as FolderCompletion;
    },
    async ignores(folder) {
      const r = (await api('GET', `/rest/db/ignores?folder=${encodeURIComponent(folder)}`)) as { ignore: string[] | null };
      return r.ignore ?? [];
    },
    log,
    stop,
  };
  return self;
}

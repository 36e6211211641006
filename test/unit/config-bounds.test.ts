/** Config values that load but cannot work are refused at load time, so `check` reports what `run` would hit. */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { formatDuration } from '../../src/config/duration.js';
import { MAX_TIMER_MS } from '../../src/config/schema.js';

const minimal = `node: { name: a, tree: tree, state_dir: state, key: keys/node.key }\n`;
const load = (extra: string, file = '/srv/fp/ferrypost.yaml') => parseConfig(minimal + extra, file);

describe('config bounds', () => {
  it.each([
    ['receive: { rescan_interval: 0 }', /receive\.rescan_interval: must be at least 100ms/],
    ['receive: { rescan_interval: 25d }', /receive\.rescan_interval: must be at most 2147483647ms \(~24\.8 days, the longest timer/],
    ['receive: { retry_initial: 0 }', /receive\.retry_initial: must be at least/],
    ['receive: { retry_max: 30d }', /receive\.retry_max: must be at most/],
    ['receive: { queue_lifetime: 0 }', /receive\.queue_lifetime: must be at least 1m/],
    ['packets: { expiry: 0 }', /packets\.expiry: must be at least 1h \(packets must outlive their trip/],
    ['packets: { expiry: 10m }', /packets\.expiry: must be at least 1h/],
    ['smtp: { max_size: 0 }', /smtp\.max_size: must be at least 1k; 0 does not mean "no limit"/],
    ['smtp: { socket_timeout: 0 }', /smtp\.socket_timeout: must be at least 1s/],
    ['smtp: { memory_spool_limit: 5G }', /smtp\.memory_spool_limit: at most 256M/],
    ['smtp: { max_size: 99999999999999999999G }', /smtp\.max_size: at most 1T/],
    ["smtp: { listen: ['127.0.0.1:0'] }", /is not host:port/],
    ['metrics: { listen: 0 }', /metrics\.listen/],
    ['smtp: { hostname: gw_1.example.org }', /smtp\.hostname: must be a host name \(letters, digits, hyphens and dots\), e\.g\. gw\.example\.org/],
    ["smtp: { hostname: 'gw example.org' }", /smtp\.hostname: must be a host name/],
    ['delivery: { method: smtp, port: 25, timeout: 0 }', /delivery\.timeout: must be at least 1s/],
    ['delivery: { method: sendmail, command: [x], timeout: 90d }', /delivery\.timeout: must be at most/],
  ])('%s is refused', (extra, msg) => {
    expect(() => load(extra)).toThrow(msg);
  });

  it('keeps working values, at the bounds too', () => {
    const cfg = load('receive: { rescan_interval: 100ms, retry_max: 2147483647ms }\npackets: { expiry: 1h }\nsmtp: { max_size: 1k, hostname: mx-1.gw.example.org }\n');
    expect(cfg.smtp?.hostname).toBe('mx-1.gw.example.org');
    expect(cfg.receive.rescan_interval).toBe(100);
    expect(cfg.receive.retry_max).toBe(MAX_TIMER_MS);
    expect(cfg.packets.expiry).toBe(3_600_000);
    expect(cfg.smtp?.max_size).toBe(1024);
    expect(formatDuration(86_400_000)).toBe('1d');
    expect(formatDuration(1500)).toBe('1500ms');
  });

  it('checks smtp.allowed_networks as the SMTP listener does (what run refuses, check refuses)', () => {
    for (const bad of ['10.0.0.0/33', '::1/129', 'example.org', '10.0.0.0/8/1', '10.0.0.0/x']) {
      expect(() => load(`smtp: { allowed_networks: ["${bad}"] }\n`)).toThrow(/smtp\.allowed_networks\.0: not an address or CIDR.*got "/);
    }
    const cfg = load('smtp: { allowed_networks: ["10.0.0.0/8", "192.168.1.7", "::ffff:10.0.0.0/104", "fd00::/8"] }\n');
    expect(cfg.smtp?.allowed_networks).toHaveLength(4);
  });

  it('names a node name that is not a file-safe word', () => {
    expect(() => parseConfig(`node: { name: _cabin, tree: t, state_dir: s, key: k }\n`, 'f.yaml')).toThrow(/node\.name: must start with a letter or digit/);
  });
});

describe('the tree is kept apart from state, keys and Maildir', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'fp-config-tree-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const cfg = (node: string, delivery = '') => parseConfig(`node: { name: a, ${node} }\n${delivery}`, path.join(tmp, 'ferrypost.yaml'));

  it.each([
    ['tree: ., state_dir: state, key: keys/node.key', '', /node\.tree \S+ contains node\.state_dir/],
    ['tree: state/tree, state_dir: state, key: keys/node.key', '', /node\.tree \S+ is inside node\.state_dir/],
    ['tree: shared, state_dir: /var/lib/x, key: shared/keys/node.key', '', /contains the directory of node\.key .*share the secret key/],
    ['tree: mail, state_dir: state, key: keys/node.key', 'delivery: { method: maildir, path: mail/%u }\n', /contains delivery\.path/],
    ['tree: Maildir/t, state_dir: state, key: keys/node.key', 'delivery: { method: maildir, path: Maildir }\n', /is inside delivery\.path/],
  ])('%s %s is refused', (node, delivery, msg) => {
    expect(() => cfg(node, delivery)).toThrow(msg);
  });

  it('sees through a symlink to the node directory', () => {
    mkdirSync(path.join(tmp, 'node', 'keys'), { recursive: true });
    symlinkSync(path.join(tmp, 'node'), path.join(tmp, 'link'));
    expect(() => cfg(`tree: link, state_dir: node/state, key: node/keys/node.key`)).toThrow(/contains node\.state_dir/);
  });

  it('accepts the layout init makes, and a Maildir template rooted at the node directory', () => {
    expect(cfg('tree: tree, state_dir: state, key: keys/node.key', 'delivery: { method: maildir, path: Maildir }\n').node.tree).toBe(path.join(tmp, 'tree'));
    expect(() => cfg('tree: tree, state_dir: state, key: keys/node.key', 'delivery: { method: maildir, path: "%u/Maildir" }\n')).not.toThrow();
    expect(() => cfg('tree: /srv/ferrypost/tree, state_dir: /var/lib/ferrypost/state, key: /var/lib/ferrypost/keys/node.key')).not.toThrow();
    // below the key's directory is not sharing the key (a config with its key beside it, tree below)
    expect(() => cfg('tree: t, state_dir: s, key: k.key')).not.toThrow();
  });
});

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { parseDuration, parseSize } from '../../src/config/duration.js';
import { FerryError } from '../../src/errors/index.js';

const minimal = `node: { name: a, tree: t, state_dir: s, key: k.key }\n`;

describe('config', () => {
  it('loads the shipped example with every section', () => {
    const file = path.resolve('config/ferrypost.example.yaml');
    const cfg = parseConfig(readFileSync(file, 'utf8'), file);
    // the layout of the README's two-site setup and the systemd unit
    expect(cfg.node.tree).toBe('/srv/ferrypost/tree');
    expect(cfg.node.key).toBe('/var/lib/ferrypost/keys/node.key');
    expect(cfg.peers[0]?.key).toBe('/var/lib/ferrypost/keys/peers/home.asc');
    expect(cfg.smtp?.max_size).toBe(50 * 1024 * 1024);
    expect(cfg.smtp?.listen).toEqual([{ host: '127.0.0.1', port: 2525 }]);
    expect(cfg.receive.retry_initial).toBe(60_000);
    expect(cfg.packets.expiry).toBe(30 * 86_400_000);
    expect(cfg.delivery).toMatchObject({ method: 'smtp', port: 25, timeout: 120_000 });
    expect(Object.isFrozen(cfg.node)).toBe(true);
  });

  it('fills defaults for a minimal config and resolves paths against the file', () => {
    const cfg = parseConfig(minimal, '/etc/fp/ferrypost.yaml');
    expect(cfg.node.key).toBe('/etc/fp/k.key');
    expect(cfg.receive.rescan_interval).toBe(30_000);
    expect(cfg.receive.queue_lifetime).toBe(5 * 86_400_000);
    expect(cfg.log.level).toBe('info');
  });

  it('names the key, the value and what is valid', () => {
    const bad = minimal + `receive: { retry_max: "soon" }\npeers: [{ name: x, fingerprint: "abc", key: k }]\n`;
    let err: unknown;
    try {
      parseConfig(bad, 'f.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FerryError);
    const msg = (err as Error).message;
    expect(msg).toContain('f.yaml');
    expect(msg).toMatch(/receive\.retry_max: "soon" is not a duration.*got "soon"/);
    expect(msg).toMatch(/peers\.0\.fingerprint: must be a 40-hex-digit/);
  });

  it('rejects unknown keys, bad YAML, two default peers', () => {
    expect(() => parseConfig(minimal + 'smtpp: {}\n', 'f.yaml')).toThrow(/smtpp/);
    expect(() => parseConfig('node: [\n', 'f.yaml')).toThrow(/not valid YAML/);
    const fpr = 'a'.repeat(40);
    const two = minimal + `peers:\n  - { name: a, fingerprint: ${fpr}, key: a, default: true }\n  - { name: b, fingerprint: ${'b'.repeat(40)}, key: b, default: true }\n`;
    expect(() => parseConfig(two, 'f.yaml')).toThrow(/only one peer may have default/);
  });

  it('parses durations and sizes', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration(2)).toBe(2000);
    expect(parseDuration('7d')).toBe(7 * 86_400_000);
    expect(() => parseDuration('7 weeks')).toThrow();
    expect(parseSize('50M')).toBe(52_428_800);
    expect(parseSize('512k')).toBe(524_288);
    expect(() => parseSize('lots')).toThrow();
  });
});

// Pure layout: packet names from hashes (RFC 4648 base32), node ids, directories, ignored names.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  base32Encode,
  conflictOriginal,
  hashFromPacketName,
  inboxDir,
  isIgnoredName,
  isNodeId,
  packetDir,
  packetNameForHash,
  STIGNORE_LINES,
} from '../../src/tree/layout.js';

describe('packet names', () => {
  it('matches the RFC 4648 base32 test vectors (lowercase, unpadded)', () => {
    const vectors: Array<[string, string]> = [
      ['', ''],
      ['f', 'my'],
      ['fo', 'mzxq'],
      ['foo', 'mzxw6'],
      ['foob', 'mzxw6yq'],
      ['fooba', 'mzxw6ytb'],
      ['foobar', 'mzxw6ytboi'],
    ];
    for (const [plain, enc] of vectors) expect(base32Encode(Buffer.from(plain))).toBe(enc);
  });

  it('is 52 base32 chars + .pgp and round-trips for many hashes', () => {
    for (let i = 0; i < 500; i++) {
      const h = createHash('sha256').update(String(i)).digest();
      const name = packetNameForHash(h);
      expect(name).toMatch(/^[a-z2-7]{52}\.pgp$/);
      expect(hashFromPacketName(name)?.equals(h)).toBe(true);
    }
    const zero = packetNameForHash(Buffer.alloc(32));
    expect(zero).toBe('a'.repeat(52) + '.pgp');
  });

  it('rejects non-packet names', () => {
    const good = packetNameForHash(createHash('sha256').update('x').digest());
    const bad = [
      '',
      good.slice(1),
      good.toUpperCase(),
      good.replace('.pgp', '.tmp'),
      'a'.repeat(51) + 'b.pgp', // non-zero trailing bits: not canonical
      '1' + good.slice(1),
      `.syncthing.${good}.tmp`,
      good + '.sync-conflict-20240101-000000-ABCDEFG',
    ];
    for (const n of bad) expect(hashFromPacketName(n), n).toBeUndefined();
    expect(() => packetNameForHash(Buffer.alloc(31))).toThrow(RangeError);
  });
});

describe('node ids and directories', () => {
  const a = 'a'.repeat(40);
  const b = '0123456789abcdef0123456789abcdef01234567';
  it('isNodeId', () => {
    expect(isNodeId(a)).toBe(true);
    expect(isNodeId(b)).toBe(true);
    expect(isNodeId(b.toUpperCase())).toBe(false);
    expect(isNodeId(a + '0')).toBe(false);
    expect(isNodeId('g'.repeat(40))).toBe(false);
  });
  it('packetDir and inboxDir', () => {
    expect(packetDir('/t', a, b)).toBe(`/t/${a}/${b}`);
    expect(inboxDir('/t', a)).toBe(`/t/${a}`);
  });
});

describe('ignored names', () => {
  it('ignores Syncthing temps, conflict copies, our temps and dotfiles; not packets', () => {
    for (const n of ['.syncthing.x.pgp.tmp', '~syncthing~x.pgp.tmp', 'x.sync-conflict-20240101-120000-ABC.pgp', '.ferrypost.abc.tmp', '.stfolder', '.stignore', '.stversions', '.hidden']) {
      expect(isIgnoredName(n), n).toBe(true);
    }
    expect(isIgnoredName(packetNameForHash(Buffer.alloc(32)))).toBe(false);
  });
  it('STIGNORE_LINES keeps our temp files local and contains only comments and that pattern', () => {
    expect(STIGNORE_LINES).toContain('(?d).ferrypost.*.tmp');
    for (const l of STIGNORE_LINES) expect(l.startsWith('//') || l === '(?d).ferrypost.*.tmp').toBe(true);
  });
});

describe('conflictOriginal', () => {
  const name = `${'a'.repeat(52)}.pgp`;
  it('names the packet a Syncthing conflict copy (or a copy of a copy) was made from', () => {
    expect(conflictOriginal(`${'a'.repeat(52)}.sync-conflict-20261127-120000-ABCDEFG.pgp`)).toBe(name);
    expect(conflictOriginal(`${'a'.repeat(52)}.sync-conflict-20261127-120000-ABCDEFG.sync-conflict-20261128-080000-HIJKLMN.pgp`)).toBe(name);
  });
  it('is undefined for anything else', () => {
    for (const n of [name, `${'a'.repeat(51)}.sync-conflict-20261127-120000-ABCDEFG.pgp`, `${'a'.repeat(52)}.sync-conflict-2026-120000-ABCDEFG.pgp`, `${'a'.repeat(52)}.sync-conflict-20261127-120000-ABCDEFG.tmp`]) {
      expect(conflictOriginal(n), n).toBeUndefined();
    }
  });
});

/** main.ts's reading of the global options before the subcommand: every form commander accepts. */
import { describe, expect, it } from 'vitest';
import { splitGlobalArgs } from '../../src/cli/argv.js';
import { splitAddressList } from '../../src/cli/sendmail.js';

describe('splitGlobalArgs', () => {
  it.each([
    [['--config', 'f.yaml', 'sendmail', '-f', 'a@x'], 'f.yaml'],
    [['--config=f.yaml', 'sendmail', '-f', 'a@x'], 'f.yaml'],
    [['-c', 'f.yaml', 'sendmail', '-f', 'a@x'], 'f.yaml'],
    [['-cf.yaml', 'sendmail', '-f', 'a@x'], 'f.yaml'],
    [['-c', 'x.yaml', '--config=f.yaml', 'sendmail', '-f', 'a@x'], 'f.yaml'],
  ])('%j', (args, config) => {
    expect(splitGlobalArgs(args)).toEqual({ config, rest: ['sendmail', '-f', 'a@x'] });
  });

  it('stops at the subcommand or any other option; leaves a missing value to commander', () => {
    expect(splitGlobalArgs(['sendmail', '-c', 'x'])).toEqual({ rest: ['sendmail', '-c', 'x'] });
    expect(splitGlobalArgs(['-V', 'sendmail'])).toEqual({ rest: ['-V', 'sendmail'] });
    expect(splitGlobalArgs(['--config'])).toEqual({ rest: ['--config'] });
    expect(splitGlobalArgs([])).toEqual({ rest: [] });
  });
});

describe('splitAddressList', () => {
  it('splits on commas outside quotes and angle brackets', () => {
    expect(splitAddressList('a@x, b@y')).toEqual(['a@x', ' b@y']);
    expect(splitAddressList('"a,b"@x,c@y')).toEqual(['"a,b"@x', 'c@y']);
    expect(splitAddressList('"a\\",b"@x')).toEqual(['"a\\",b"@x']);
    expect(splitAddressList('Name <a,b@x>,c@y')).toEqual(['Name <a,b@x>', 'c@y']);
  });
});

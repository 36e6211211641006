/** The commander side of the CLI: the "sendmail" entry listed for --help must never end in exit 0. */
import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { registerCommands } from '../../src/cli/commands.js';

afterEach(() => {
  process.exitCode = undefined;
  vi.restoreAllMocks();
});

describe('commander "sendmail" entry', () => {
  it('fails with 75 (the MTA retries) if a command line ever reaches it: nothing was queued', async () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const program = new Command('ferrypost').option('-c, --config <file>').exitOverride();
    registerCommands(program, () => '/nonexistent.yaml');
    await program.parseAsync(['sendmail', '-f', 'a@x.org', '--', 'b@y.org'], { from: 'user' });
    expect(process.exitCode).toBe(75);
    expect(String(stderr.mock.calls[0]?.[0])).toMatch(/nothing was queued/);
  });
});

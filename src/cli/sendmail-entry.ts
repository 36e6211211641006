/**
 * `ferrypost sendmail`: checks the arguments, opens the node named by the config and enqueues stdin.
 * The config, in this order: -C FILE / -CFILE anywhere among the options (sendmail's own config option),
 * --config FILE / --config=FILE before the sendmail options or the global --config (main.ts), then
 * $FERRYPOST_CONFIG, then ./ferrypost.yaml. Two different ones given is refused (75: the admin fixes the
 * transport, the MTA retries), never silently resolved. `--help` prints usage and exits 0.
 */
import path from 'node:path';
import { configPathFrom } from '../config/load.js';
import { SYSEXIT } from '../errors/index.js';
import { openNode } from './context.js';
import { checkSendmail, SENDMAIL_USAGE, submitSendmail } from './sendmail.js';

export async function runSendmailCli(args: string[], globalConfig?: string): Promise<number> {
  const say = (what: string) => process.stderr.write(`ferrypost sendmail: ${what}\n`);
  // Long options (not sendmail(8)'s) before the sendmail options: --config F, --config=F, --help.
  const configs = globalConfig === undefined ? [] : [globalConfig];
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--help') {
      process.stdout.write(SENDMAIL_USAGE);
      return SYSEXIT.OK;
    }
    if (a === '--config' && i + 1 < args.length) configs.push(args[++i]!);
    else if (a.startsWith('--config=')) configs.push(a.slice('--config='.length));
    else break;
  }
  args = args.slice(i);
  const dash = args.indexOf('--');
  if (args.slice(0, dash < 0 ? undefined : dash).includes('--help')) {
    process.stdout.write(SENDMAIL_USAGE);
    return SYSEXIT.OK;
  }
  const checked = checkSendmail(args, process.stdin, { stderr: process.stderr });
  if (!checked.ok) return checked.exit;
  if (checked.config !== undefined) configs.push(checked.config);
  const distinct = [...new Set(configs.map((c) => path.resolve(c)))];
  if (distinct.length > 1) {
    process.stdin.resume();
    say(`two different configs given: ${distinct.join(' and ')} (give one, with -C FILE or --config FILE; nothing was queued)`);
    return SYSEXIT.TEMPFAIL;
  }
  let node;
  try {
    node = await openNode(configPathFrom(distinct[0]), { logLevel: 'warn' });
  } catch (err) {
    process.stdin.resume();
    say((err as Error).message);
    // A broken or missing config is a local problem an admin fixes; the MTA should retry (Postfix pipe: 75 defers).
    return SYSEXIT.TEMPFAIL;
  }
  try {
    return await submitSendmail(checked, process.stdin, { enqueue: node.enqueue, stderr: process.stderr });
  } finally {
    node.close();
  }
}

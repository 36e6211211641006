/** `ferrypost sendmail`: opens the node named by FERRYPOST_CONFIG (or --config FILE first) and enqueues stdin. */
import { configPathFrom } from '../config/load.js';
import { SYSEXIT } from '../errors/index.js';
import { openNode } from './context.js';
import { runSendmail } from './sendmail.js';

export async function runSendmailCli(args: string[]): Promise<number> {
  let config: string | undefined;
  if (args[0] === '--config' || args[0] === '-C') {
    config = args[1];
    args = args.slice(2);
  }
  let node;
  try {
    node = await openNode(configPathFrom(config), { logLevel: 'warn' });
  } catch (err) {
    process.stderr.write(`ferrypost sendmail: ${(err as Error).message}\n`);
    // A broken or missing config is a local problem an admin fixes; the MTA should retry (Postfix pipe: 75 defers).
    return SYSEXIT.TEMPFAIL;
  }
  try {
    return await runSendmail(args, process.stdin, { enqueue: node.enqueue, stderr: process.stderr });
  } finally {
    node.close();
  }
}

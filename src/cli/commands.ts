/** The subcommands, each a thin wrapper over one core function. */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { FerryError, SYSEXIT } from '../errors/index.js';
import type { Outbox } from '../queue/outbox.js';
import type { DeliveryChoice } from './config-template.js';
import { olderThanOption } from './argv.js';
import { formatFingerprint } from './fingerprint.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

// Each action imports what it needs when it runs: a one-shot command (queue, check, peer list) must not
// pay for loading openpgp, sqlite or the daemon's modules it does not use.
const keyring = () => import('../keys/keyring.js');
const init = () => import('./init.js');

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerCommands(program: Command, configFile: () => string): void {
  program
    .command('init')
    .description('create a node: key pair, config, tree and state directories')
    .option('--dir <dir>', 'where the node lives: keys/, state/, tree/ (default: the directory of --config, else .)')
    .option('--name <name>', 'node name', 'node')
    .option('--tree <dir>', 'the synced folder (default DIR/tree)')
    .option('--listen <host:port>', 'SMTP listener', '127.0.0.1:2525')
    .option('--maildir <path>', 'deliver to this Maildir (%u/%d/%a expand); the default: DIR/Maildir')
    .option('--smtp <host:port>', 'deliver by SMTP to this MTA instead')
    .option('--lmtp <host:port>', 'deliver by LMTP instead')
    .option('--sendmail <command>', 'deliver through this sendmail-compatible command instead')
    .option('--no-self-peer', 'do not route mail to this node itself (the embedded default does)')
    .option('--passphrase-file <file>', 'protect the secret key with the passphrase in this file')
    .action(async (o) => {
      const { initNode } = await init();
      // A global --config (or $FERRYPOST_CONFIG, as for every other command) names the config file to
      // create (e.g. /etc/ferrypost/ferrypost.yaml with --dir /var/lib/ferrypost, as the systemd unit
      // has it); without either, DIR/ferrypost.yaml.
      const given = program.opts<{ config?: string }>().config ?? (process.env.FERRYPOST_CONFIG || undefined);
      const configFile = given === undefined ? undefined : path.resolve(given);
      const dir = o.dir ?? (configFile ? path.dirname(configFile) : '.');
      const r = await initNode({ dir, name: o.name, tree: o.tree, listen: o.listen, delivery: deliveryChoice(o), selfPeer: o.selfPeer, passphraseFile: o.passphraseFile, ...(configFile ? { configFile } : {}) });
      process.stdout.write(
        `node created: ${r.configFile}\nfingerprint:  ${formatFingerprint(r.fingerprint)}\npublic key:   ${r.publicKeyFile}\ntree:         ${r.tree}\n` +
          `next: give the public key to the other node ("ferrypost${configFile ? ` --config ${configFile}` : ''} key export"), add theirs with "ferrypost peer add", then "ferrypost run".\n`,
      );
    });

  const key = program.command('key').description('this node\'s key');
  key
    .command('export')
    .description('print this node\'s public key (armored)')
    .action(async () => {
      const cfg = loadConfig(configFile());
      const ring = await (await keyring()).loadKeyring(cfg);
      process.stdout.write(ring.self.publicKey.armor());
    });

  const peers = program.command('peer').description('the nodes this node exchanges packets with');
  peers
    .command('add <keyfile>')
    .description('add a peer from its exported public key')
    .requiredOption('--name <name>', 'a short name for the peer')
    .option('--mail <pattern>', 'mail routed to it: domain, *.domain or address (repeatable)', collect, [])
    .option('--default', 'route all other mail to it', false)
    .action(async (keyfile: string, o) => {
      const { addPeer } = await import('./peer.js');
      const r = await addPeer(configFile(), keyfile, { name: o.name, mail: o.mail, default: o.default });
      if (r.warning) process.stderr.write(`warning: ${r.warning}\n`);
      process.stdout.write(`peer "${o.name}" added\nfingerprint: ${formatFingerprint(r.fingerprint)}\nuser ids:    ${r.userIds.join(', ')}\n` +
        `Compare this fingerprint with the one "ferrypost init" printed on that node before you trust it.\n`);
    });
  peers
    .command('remove <name>')
    .description('remove a peer: its entry leaves the config, its key file is kept as NAME.asc.removed-<time>')
    .action(async (name: string) => {
      const r = await (await import('./peer-change.js')).removePeer(configFile(), name);
      process.stdout.write(`peer "${name}" (${formatFingerprint(r.fingerprint)}) removed${r.keptKey ? `; its key is kept as ${r.keptKey}` : ''}\n`);
      if (r.wasDefault) process.stderr.write(`warning: "${name}" was the default route: mail that no other peer's patterns match now has no route (550 5.1.2)\n`);
      if (r.keyNotMoved) process.stderr.write(`warning: ${r.keyNotMoved}\n`);
      if (typeof r.outgoing === 'string') process.stderr.write(`warning: outgoing packets to it could not be counted: ${r.outgoing}\n`);
      else if (r.outgoing) process.stderr.write(`warning: ${r.outgoing} outgoing packet(s) to it stay in the tree until carried; "ferrypost queue delete --to ${r.fingerprint}" removes them\n`);
      if (typeof r.incoming === 'string') process.stderr.write(`warning: packets from it in the inbox could not be counted: ${r.incoming}\n`);
      else if (r.incoming) process.stderr.write(`warning: ${r.incoming} packet(s) from it wait in the inbox: after the restart they are quarantined as from an unknown signer\n`);
      process.stdout.write('restart the daemon (e.g. systemctl restart ferrypost) for this to take effect\n');
    });
  peers
    .command('update <name> <keyfile>')
    .description("install a peer's renewed key (same fingerprint: extended expiry, new subkeys), merged into the installed one")
    .action(async (name: string, keyfile: string) => {
      const r = await (await import('./peer-change.js')).updatePeerKey(configFile(), name, keyfile);
      if (r.warning) process.stderr.write(`warning: ${r.warning}\n`);
      process.stdout.write(`peer "${name}" (${formatFingerprint(r.fingerprint)}): key replaced in ${r.keyFile}, ${r.expires ? `valid until ${r.expires.toISOString()}` : 'no expiry'}\n` +
        'restart the daemon (e.g. systemctl restart ferrypost) to use it\n');
    });
  peers
    .command('list')
    .description('list the configured peers')
    .action(async () => {
      const cfg = loadConfig(configFile());
      for (const p of cfg.peers) {
        process.stdout.write(`${p.name.padEnd(16)} ${formatFingerprint(p.fingerprint)}  ${[...p.mail, p.default ? '(default)' : ''].join(' ').trim()}\n`);
      }
    });

  program
    .command('run')
    .description('run the node: SMTP listener and receiver, until SIGTERM')
    .option('--init-embedded <dir>', 'if the config does not exist, first create an embedded node (Maildir, local tree) in DIR')
    .option('--log-level <level>', `override log.level: ${LOG_LEVELS.join(', ')}`)
    .action(async (o) => {
      if (o.logLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(o.logLevel)) {
        throw new FerryError('USAGE', `--log-level ${JSON.stringify(o.logLevel)}: must be one of ${LOG_LEVELS.join(', ')}`);
      }
      let file = configFile();
      if (o.initEmbedded && !existsSync(file)) {
        const { initNode } = await init();
        const r = await initNode({ dir: o.initEmbedded, name: 'local', delivery: { method: 'maildir', path: 'Maildir' }, selfPeer: true });
        file = r.configFile;
        process.stderr.write(`created an embedded node in ${path.resolve(o.initEmbedded)}: mail sent to 127.0.0.1:2525 is delivered to ${path.resolve(o.initEmbedded, 'Maildir')}/new\n`);
      }
      // Loaded here so that short commands (queue, check, sendmail) do not load the daemon's modules.
      const { runDaemon } = await import('./run.js');
      await runDaemon(file, o.logLevel ? { logLevel: o.logLevel } : {});
    });

  // Listed for --help only: main.ts hands "sendmail" to its sendmail(8)-style parser before commander
  // (argv.ts). Reaching this action would mean a form main.ts missed: never exit 0 without queueing,
  // an MTA would count the mail as delivered; 75 makes it retry.
  program
    .command('sendmail')
    .description('enqueue a message from stdin, sendmail(8) style: sendmail [-i] [-f SENDER] [-C CONFIG] [--] RCPT... (exit 0, 75 = retry, 64 usage, 65 bad address, 67 no route)')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => {
      process.stderr.write('ferrypost sendmail: internal error: the command line reached the wrong parser, nothing was queued (try again; report this)\n');
      process.exitCode = SYSEXIT.TEMPFAIL;
    });

  const queueCmd = program
    .command('queue')
    .description('list packets waiting: outgoing in the tree, incoming deferred (like mailq); "queue delete" removes outgoing ones')
    .option('--json', 'machine-readable output')
    .action(async (o) => {
      const cfg = loadConfig(configFile());
      const [{ loadIdentities }, { openJournal }, { formatQueue, queueReport }] = await Promise.all([
        import('../keys/identities.js'), import('../store/journal.js'), import('../queue/report.js'),
      ]);
      // Names and fingerprints only: listing the queue needs no unlocked secret key (mailq does not either).
      const ids = await loadIdentities(cfg);
      // A listing never creates the databases: run as root, it would leave root-owned files that stop
      // the daemon ("attempt to write a readonly database"). Missing means nothing recorded yet.
      const journalFile = path.join(cfg.node.state_dir, 'journal.sqlite');
      const outbox = await existingOutbox(cfg.node.state_dir);
      const journal = openJournal(existsSync(journalFile) ? journalFile : ':memory:');
      try {
        const r = await queueReport(cfg.node.tree, ids, outbox, journal);
        process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : formatQueue(r));
      } finally {
        journal.close();
        outbox.close();
      }
    });

  queueCmd
    .command('delete [packet...]')
    .description('delete outgoing packets not yet taken by their node (postsuper -d): packet ids or file names as "queue" lists them, or --to PEER for all of one peer\'s')
    .option('--to <peer>', 'every outgoing packet to this peer (its name, or its fingerprint if no longer configured)')
    .action(async (sel: string[], o: { to?: string }) => {
      if ((sel.length > 0) === (o.to !== undefined)) throw new FerryError('USAGE', 'give either packet ids or --to PEER (see "ferrypost queue")');
      const cfg = loadConfig(configFile());
      const [{ loadIdentities }, { deleteOutgoing }] = await Promise.all([import('../keys/identities.js'), import('../queue/delete.js')]);
      const ids = await loadIdentities(cfg);
      const outbox = await existingOutbox(cfg.node.state_dir);
      try {
        const r = await deleteOutgoing(cfg.node.tree, ids, outbox, o.to !== undefined ? { toPeer: o.to } : { ids: sel });
        for (const p of r.deleted) {
          process.stdout.write(`deleted ${p.id ?? p.name} to ${p.peer} (${p.size} bytes${p.from !== undefined ? `, <${p.from}> -> ${(p.recipients ?? []).join(', ')}` : ''})\n`);
        }
        for (const p of r.vanished) process.stdout.write(`${p.id ?? p.name}: already taken by ${p.peer}\n`);
        if (o.to !== undefined && !r.deleted.length && !r.vanished.length) process.stderr.write(`no outgoing packets to ${o.to} in the tree\n`);
        process.stdout.write(`-- ${r.deleted.length} packet(s) deleted here; a device that already carries a copy may still deliver it\n`);
      } finally {
        outbox.close();
      }
    });

  program
    .command('route <address...>')
    .description('show which peer node mail for each address goes to, and by which rule (sendmail -bv); exit 65 bad syntax, 67 no route, 75 the peer\'s key is unusable (mail deferred)')
    .action(async (addresses: string[]) => {
      const r = await (await import('./route.js')).routeReport(loadConfig(configFile()), addresses);
      process.stdout.write(r.lines.map((l) => `${l}\n`).join(''));
      process.exitCode = r.status;
    });

  program
    .command('flush')
    .description('retry deferred incoming packets now, e.g. after the MTA is back (postqueue -f)')
    .action(async () => {
      process.stdout.write(`${await (await import('./flush.js')).flushNode(loadConfig(configFile()))}\n`);
    });

  const q = program.command('quarantine').description('packets refused by the receiver');
  q.command('list')
    .description('list quarantined packets with their reasons')
    .option('--json', 'machine-readable output')
    .action(async (o) => {
      const cfg = loadConfig(configFile());
      const { listQuarantine } = await import('../quarantine/quarantine.js');
      const list = await listQuarantine(cfg.node.state_dir);
      if (o.json) {
        process.stdout.write(JSON.stringify(list, null, 2) + '\n');
        return;
      }
      if (!list.length) process.stdout.write('quarantine is empty\n');
      for (const e of list) {
        process.stdout.write(`${e.name}\n  ${e.reason.code}: ${e.reason.message}\n  from ${e.reason.fromNode ?? '?'}, ${e.reason.size} bytes, at ${e.reason.quarantinedAt}, was ${e.reason.originalPath}\n`);
      }
    });

  q.command('release <name...>')
    .description('put quarantined packets back into the inbox to be checked again (after fixing the cause)')
    .action(async (names: string[]) => {
      const cfg = loadConfig(configFile());
      const [{ loadIdentities }, { releaseQuarantined }] = await Promise.all([import('../keys/identities.js'), import('../quarantine/release.js')]);
      const ids = await loadIdentities(cfg);
      (await import('./context.js')).requireNodeUser(cfg.node.state_dir, cfg.node.tree);
      for (const name of names) {
        const to = await releaseQuarantined(cfg.node.state_dir, cfg.node.tree, ids.self.fingerprint, name);
        process.stdout.write(`released ${name} -> ${to}\n`);
      }
    });

  q.command('delete [name...]')
    .description('delete quarantined packets for good: the names given, or every one quarantined longer ago than --older-than')
    .option('--older-than <duration>', 'every packet quarantined longer ago than this (e.g. 30d, 12h)')
    .action(async (names: string[], o: { olderThan?: string }) => {
      if ((names.length > 0) === (o.olderThan !== undefined)) {
        throw new FerryError('USAGE', 'give either packet names or --older-than DURATION (see "ferrypost quarantine list")');
      }
      const selection = o.olderThan === undefined ? { names } : { olderThan: new Date(Date.now() - olderThanOption(o.olderThan)) };
      const cfg = loadConfig(configFile());
      const { deleteQuarantined } = await import('../quarantine/delete.js');
      const r = await deleteQuarantined(cfg.node.state_dir, selection);
      for (const e of r.deleted) process.stdout.write(`deleted ${e.name} (${e.reason.code}, ${e.reason.size} bytes)\n`);
      for (const e of r.vanished) process.stdout.write(`${e.name}: already gone (released or deleted meanwhile)\n`);
      for (const e of r.undated) process.stderr.write(`kept ${e.name}: its reason file has no time (delete it by name)\n`);
      for (const n of r.orphans) process.stdout.write(`removed ${n}.reason.json: its packet was already gone\n`);
      const bytes = r.deleted.reduce((n, e) => n + e.reason.size, 0);
      process.stdout.write(`-- ${r.deleted.length} packet(s) deleted, ${bytes} bytes\n`);
    });

  program
    .command('check')
    .description('load the config and keys and report problems')
    .action(async () => {
      const file = configFile();
      const cfg = loadConfig(file);
      const ring = await (await keyring()).loadKeyring(cfg);
      if (!existsSync(cfg.node.tree)) throw new FerryError('CONFIG', `node.tree ${cfg.node.tree} does not exist (create it, or share it with Syncthing first)`);
      const st = await readFile(path.join(cfg.node.tree, '.stignore'), 'utf8').catch(() => '');
      if (!st.includes('.ferrypost')) process.stderr.write(`warning: ${cfg.node.tree}/.stignore lacks ferrypost's lines; "ferrypost init" writes them\n`);
      const { selfKeyAdvice, unusablePeers } = await import('../keys/usability.js');
      for (const u of unusablePeers(cfg.peers, ring)) process.stderr.write(`warning: ${u.advice}\n`);
      const selfAdvice = await selfKeyAdvice(ring);
      if (selfAdvice) process.stderr.write(`warning: ${selfAdvice}\n`);
      // What `run` reads at start besides the config and keys: the listener's TLS pair and users file.
      if (cfg.smtp) await (await import('../smtp/server.js')).loadTlsAndUsers(cfg.smtp);
      process.stdout.write(`config ok: node ${cfg.node.name} ${ring.self.fingerprint}, ${ring.peers.size} peer(s), delivery ${cfg.delivery?.method ?? 'none'}\n`);
    });
}

function deliveryChoice(o: { maildir?: string; smtp?: string; lmtp?: string; sendmail?: string }): DeliveryChoice {
  const given = [o.maildir, o.smtp, o.lmtp, o.sendmail].filter((v) => v !== undefined).length;
  if (given > 1) throw new FerryError('USAGE', 'choose one of --maildir, --smtp, --lmtp, --sendmail');
  const hp = (v: string, flag: string) => {
    const m = /^(.+):(\d+)$/.exec(v);
    if (!m) throw new FerryError('USAGE', `${flag} ${v}: expected host:port, e.g. 127.0.0.1:25`);
    return { host: m[1]!, port: Number(m[2]) };
  };
  if (o.smtp) return { method: 'smtp', ...hp(o.smtp, '--smtp') };
  if (o.lmtp) return { method: 'lmtp', ...hp(o.lmtp, '--lmtp') };
  if (o.sendmail) return { method: 'sendmail', command: o.sendmail.split(/\s+/).filter(Boolean) };
  return { method: 'maildir', path: o.maildir ?? 'Maildir' };
}

/**
 * The outbox index for `queue` and `queue delete`, never created by them (run as root, a new one would
 * be root's and stop the daemon): one that keeps nothing when the node never queued anything.
 */
async function existingOutbox(stateDir: string): Promise<Outbox> {
  if (!existsSync(path.join(stateDir, 'outbox.sqlite'))) return emptyOutbox();
  return (await import('../queue/outbox.js')).openOutbox(stateDir);
}

/** The outbox index of a node that never queued anything: empty, and nothing written to disk. */
function emptyOutbox(): Outbox {
  const none = (): never => {
    throw new FerryError('INTERNAL', 'the empty outbox of a listing cannot record');
  };
  return { record: none, recordLater: none, byNames: () => new Map(), count: () => 0, forgetExcept: () => 0, close: () => undefined };
}

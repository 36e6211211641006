/** The commented config that `ferrypost init` writes (the full reference is config/ferrypost.example.yaml). */

export type DeliveryChoice =
  | { method: 'maildir'; path: string }
  | { method: 'smtp' | 'lmtp'; host: string; port: number }
  | { method: 'sendmail'; command: string[] };

export interface TemplateInput {
  name: string;
  tree: string;
  listen: string;
  delivery: DeliveryChoice;
  selfFingerprint: string;
  selfPeer: boolean;
  passphraseFile?: string;
  /** As written in the config: relative to the config file's directory, or absolute. */
  stateDir?: string;
  keyFile?: string;
  publicKeyFile?: string;
}

export function nodeConfigText(t: TemplateInput): string {
  const delivery =
    t.delivery.method === 'maildir'
      ? `delivery:\n  method: maildir\n  # %u = local part, %d = domain, %a = address; a fixed path delivers everything to one Maildir\n  path: ${JSON.stringify(t.delivery.path)}\n`
      : t.delivery.method === 'sendmail'
        ? `delivery:\n  method: sendmail\n  # "-i -f SENDER -- RCPT..." is appended\n  command: ${JSON.stringify(t.delivery.command)}\n`
        : `delivery:\n  method: ${t.delivery.method}\n  host: ${t.delivery.host}\n  port: ${t.delivery.port}\n`;
  const peers = t.selfPeer
    ? `peers:\n  # This node delivers to itself: the embedded single-node setup. Add real peers with\n  # "ferrypost peer add KEYFILE --name NAME --mail DOMAIN" and remove or narrow this entry\n  # (remove it before "peer add ... --default": only one peer can be the default).\n  - name: ${JSON.stringify(t.name)}\n    fingerprint: ${JSON.stringify(t.selfFingerprint)}\n    key: ${JSON.stringify(t.publicKeyFile ?? 'keys/node.asc')}\n    default: true\n`
    : `peers: []   # add with: ferrypost peer add KEYFILE --name NAME --mail DOMAIN [--default]\n`;
  return `# ferrypost node "${t.name}" — see config/ferrypost.example.yaml for every option.
# Paths are relative to this file.
node:
  name: ${JSON.stringify(t.name)}
  # The Syncthing-shared folder. Packets are TREE/<recipient-node>/<sender-node>/<hash>.pgp
  tree: ${JSON.stringify(t.tree)}
  # Journal, quarantine, work files: local to this machine, never inside the tree.
  state_dir: ${JSON.stringify(t.stateDir ?? 'state')}
  # This node's secret key (fingerprint ${t.selfFingerprint}); keep it mode 0600.
  key: ${JSON.stringify(t.keyFile ?? 'keys/node.key')}
${t.passphraseFile ? `  passphrase_file: ${JSON.stringify(t.passphraseFile)}\n` : ''}
${peers}
smtp:
  # Postfix/Exim relay here (relayhost = [127.0.0.1]:2525 or a transport_maps entry)
  listen: [${JSON.stringify(t.listen)}]
  allowed_networks: ["127.0.0.0/8", "::1/128"]
  max_size: 50M

${delivery}
receive:
  rescan_interval: 30s
  retry_initial: 60s
  retry_max: 1h

packets:
  expiry: 30d

log:
  level: info
`;
}

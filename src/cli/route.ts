/**
 * `ferrypost route ADDRESS...` (sendmail -bv): for each address, the peer node its mail goes to, the
 * rule that chose it, and whether that peer's key can be used now (the listener and sendmail defer
 * mail for a peer whose key expired or was revoked: 450 4.7.5 / 75). One line per address, in order;
 * the status is the worst of them: 65 bad syntax > 67 no route > 75 deferred > 0.
 */
import type { Config } from '../config/schema.js';
import { SYSEXIT } from '../errors/index.js';
import { readKeyFile } from '../keys/load.js';
import { keyProblem } from '../keys/usability.js';
import { canonicalAddress } from '../route/canonical.js';
import { createRouter, validateAddress } from '../route/router.js';

const SEVERITY: readonly number[] = [SYSEXIT.DATAERR, SYSEXIT.NOUSER, SYSEXIT.TEMPFAIL, SYSEXIT.OK];

export async function routeReport(cfg: Readonly<Config>, addresses: readonly string[]): Promise<{ lines: string[]; status: number }> {
  const router = createRouter(cfg.peers);
  const problems = new Map<string, Promise<string | undefined>>();
  const problemOf = (fingerprint: string): Promise<string | undefined> => {
    let p = problems.get(fingerprint);
    if (!p) {
      const peer = cfg.peers.find((c) => c.fingerprint === fingerprint)!;
      p = readKeyFile(peer.key, 'key file').then((k) => keyProblem(k.isPrivate() ? k.toPublic() : k), (e: unknown) => `cannot be read: ${(e as Error).message}`);
      problems.set(fingerprint, p);
    }
    return p;
  };
  const lines: string[] = [];
  let status: number = SYSEXIT.OK;
  const fail = (code: number) => {
    if (SEVERITY.indexOf(code) < SEVERITY.indexOf(status)) status = code;
  };
  for (const a of addresses) {
    let addr: string;
    try {
      addr = validateAddress(a);
    } catch (err) {
      lines.push(`${(err as Error).message}; use user@domain`);
      fail(SYSEXIT.DATAERR);
      continue;
    }
    const r = router.explain(addr);
    if (!r) {
      lines.push(canonicalAddress(addr)
        ? `<${addr}>: no route to a node (no peer's mail patterns match it and no peer is the default; see "ferrypost peer list")`
        : `<${addr}>: no route to a node (its domain is not a valid domain name, so no pattern can match it)`);
      fail(SYSEXIT.NOUSER);
      continue;
    }
    const problem = await problemOf(r.target.fingerprint);
    lines.push(`<${addr}> -> ${r.target.name} (${r.target.fingerprint}) by ${r.via}${problem ? `, but deferred: its key ${problem}` : ''}`);
    if (problem) fail(SYSEXIT.TEMPFAIL);
  }
  return { lines, status };
}

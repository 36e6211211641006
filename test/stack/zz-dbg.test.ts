import { test } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { startRecordServer } from '../helpers/stack/record-server.js';
import { startExim } from '../helpers/stack/exim.js';
import { freePort } from '../helpers/ports.js';
test('dbg', async () => {
  const sink = await startRecordServer(await freePort());
  const ex = await startExim({ localDomain: 'home.test', ferrypostPort: sink.port });
  try {
    const r = spawnSync(ex.eximArgv[0]!, [...ex.eximArgv.slice(1), '-d+transport', '-i', '-f', 'a@home.test', '--', 'carol@offline.test'], { input: 'To: carol@offline.test\nSubject: x\n\nhello\n', encoding: 'utf8' });
    fs.writeFileSync('/tmp/fpsmoke/dbg.txt', r.stderr + r.stdout + String(r.status));
    fs.appendFileSync('/tmp/fpsmoke/dbg.txt', '\nSINK ' + sink.messages.length);
  } finally { await ex.stop(); await sink.stop(); }
}, 60000);

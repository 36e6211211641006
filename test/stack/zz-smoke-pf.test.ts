import { test, expect } from 'vitest';
import { startPostfix } from '/work/main/test/helpers/stack/postfix.js';
import { sendSmtp } from '/work/main/test/helpers/stack/smtp-client.js';
import { freePort } from '/work/main/test/helpers/ports.js';
test('smoke', async () => {
  const fp = await freePort();
  const t0 = Date.now();
  const p = await startPostfix({ name: 'a', localDomain: 'offline.test', ferrypostPort: fp, relayDomains: ['home.test'] });
  console.log('start ms', Date.now() - t0, p.dir);
  try {
    console.log(await sendSmtp(p.port, { from: 'x@home.test', to: ['alice@offline.test'], raw: 'Subject: hi\r\n\r\nhello\r\n' }));
    const f = await p.waitForMail('alice', 1);
    console.log(f);
    await sendSmtp(p.port, { from: 'x@home.test', to: ['nobody@offline.test'], raw: 'Subject: hi\r\n\r\nhello\r\n' }).catch((e) => console.log('ERR', e.responseCode, e.response, e.code));
  } finally { const t1 = Date.now(); await p.stop(); console.log('stop ms', Date.now() - t1); }
});

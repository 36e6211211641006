// A bare smtp-server 3.21 listener for bench/ingest-floor.mjs: the same options and greeting as
// ferrypost's listener (no TLS, no AUTH, trusted loopback greeted at once), and per message either
// nothing (`discard`) or one durable file (`durable`: write a temp file, fsync, close, rename; the
// directory is not fsync'd, ferrypost group-commits that). Prints its port on stdout.
import fs from 'node:fs';
import path from 'node:path';
import { SMTPServer } from 'smtp-server';
import { greetTrustedAtOnce } from '../../dist/smtp/greet-pause.js';

const [mode = 'discard', dir] = process.argv.slice(2);
let seq = 0;

async function durable(bytes) {
  const name = `${process.pid}.${++seq}`;
  const tmpPath = path.join(dir, `.${name}.tmp`);
  const fh = await fs.promises.open(tmpPath, 'wx', 0o600);
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.promises.rename(tmpPath, path.join(dir, name));
}

const server = new SMTPServer({
  authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], hideSTARTTLS: true, logger: false, disableReverseLookup: true, size: 10 << 20,
  onData(stream, _session, cb) {
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => {
      if (mode !== 'durable') return cb();
      durable(Buffer.concat(chunks)).then(() => cb(), cb);
    });
  },
});
greetTrustedAtOnce(server, () => true);
server.listen(0, '127.0.0.1', () => console.log(server.server.address().port));

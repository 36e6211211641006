// The large test message of large-message.mjs and ab-send.mjs, in one of three bodies:
//   b64:    a base64 attachment of random bytes, CRLF lines (zlib reaches ~0.76, like real attachments);
//   prose:  random words in CRLF lines (deflates to ~0.24);
//   repeat: one line repeated (deflates ~1000:1: the packet is smaller than the receiver's in-memory limit).
import crypto from 'node:crypto';
import fs from 'node:fs';

export const BODIES = ['b64', 'prose', 'repeat'];

const WORDS = 'the of and to in is was for on that with as by at from this be are it an or which mail news ship cabin relay packet node'.split(' ');
const REPEATED = 'All work and no play makes Jack a dull boy, said the ship to the cabin.\r\n'.repeat(4096);
const chunkOf = {
  b64: () => crypto.randomBytes(57 * 1024).toString('base64').replace(/.{76}/g, '$&\r\n'),
  prose: () => Array.from({ length: 16_000 }, (_, i) => (i % 12 === 11 ? '\r\n' : `${WORDS[Math.floor(Math.random() * WORDS.length)]} `)).join(''),
  repeat: () => REPEATED,
};

/** Writes headers + at least `mib` MiB of `body` to `file`; returns the file's size. Throws on an unknown body. */
export function writeLargeMessage(file, mib, body = 'b64') {
  if (!chunkOf[body]) throw new Error(`message body must be one of ${BODIES.join(', ')}, not ${body}`);
  const type = body === 'b64' ? 'application/octet-stream\r\nContent-Transfer-Encoding: base64' : 'text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit';
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, `From: a@offline.test\r\nTo: b@example.org\r\nSubject: large\r\nMIME-Version: 1.0\r\nContent-Type: ${type}\r\n\r\n`);
    for (let n = 0; n < mib * 1048576; ) n += fs.writeSync(fd, chunkOf[body]());
    fs.writeSync(fd, '\r\n');
  } finally {
    fs.closeSync(fd);
  }
  return fs.statSync(file).size;
}

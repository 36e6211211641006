// Fault injection for the Maildir injector: the real node:fs calls, with the ones a test names
// replaced (MaildirFs has six; tests used to spell all of them out to change one).
import * as fsp from 'node:fs/promises';
import type { MaildirFs } from '../../src/inject/maildir.js';

export function maildirFsWith(overrides: Partial<MaildirFs>): MaildirFs {
  return {
    mkdir: fsp.mkdir,
    rename: fsp.rename,
    unlink: fsp.unlink,
    readdir: (p) => fsp.readdir(p),
    stat: fsp.stat,
    open: (p, flags, mode) => fsp.open(p, flags, mode),
    ...overrides,
  };
}

/** An errno error as node:fs raises it. */
export function errnoError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected`), { code });
}

/** Every file created with 'wx' (a Maildir tmp/ file, staged or copied) fails its fsync with `code`. */
export function syncFailsOnCreate(code: string, onCreate?: () => void): MaildirFs {
  return maildirFsWith({
    async open(p, flags, mode) {
      const fh = await fsp.open(p, flags, mode);
      if (flags === 'wx') {
        onCreate?.();
        fh.sync = () => Promise.reject(errnoError(code));
      }
      return fh;
    },
  });
}

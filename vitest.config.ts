import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real-daemon suites start Postfix/Exim/Dovecot instances; keep files sequential so
    // fixed loopback ports and the 2-core machine are not oversubscribed.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});

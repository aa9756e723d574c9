import { defineConfig } from 'vitest/config';

// Unit tests (no root) and lab tests (real kernels in network namespaces, root) are two
// projects; `npm test` runs both. Lab tests run one file at a time: they share 2 cores.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 20_000,
          // Loggers silent unless FTCP_TEST_LOG=<level> asks (test/support/quiet-logs.ts).
          setupFiles: ['test/support/quiet-logs.ts'],
        },
      },
      {
        test: {
          name: 'lab',
          include: ['test/lab/**/*.test.ts'],
          testTimeout: 600_000,
          hookTimeout: 120_000,
          // One fork for every lab file, so they run one after another (2 cores, tcpdump, netns).
          pool: 'forks',
          poolOptions: { forks: { singleFork: true } },
        },
      },
    ],
  },
});

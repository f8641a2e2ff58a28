import { defineConfig } from 'vitest/config';

// Two tiers (STYLE.md 16): unit specs beside the code run in parallel; tests
// under test/ talk to real parts (pcscd, Chromium, the Agents Playground) and
// run one file at a time because they share those services.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['{bot,cards,companion,storage,protocol,common}/**/*.spec.ts'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          environment: 'node',
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Test files start their own registries and stores; two cores run two files at a time.
    fileParallelism: true,
    maxWorkers: 2,
  },
});

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    // Forks, not threads: each test file gets its own process, so native state (thread pool
    // size, memory counters) of one file cannot leak into another. --expose-gc lets the GC
    // backstop be tested.
    pool: 'forks',
    poolOptions: { forks: { execArgv: ['--expose-gc'], maxForks: 2, minForks: 1 } },
    // New tensors start as NaN bytes: an output element a kernel forgets to write fails.
    env: { SECVIT_POISON: '1' },
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});

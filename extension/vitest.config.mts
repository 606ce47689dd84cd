import { defineConfig } from 'vitest/config';

// Unit tests of the API client (against the real server `tests/test_extension_unit.py` starts) and of
// the state models; they run in Node (no DOM).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 30000,
    reporters: ['default', 'junit'],
    outputFile: { junit: process.env.FLOWDAPT_VITEST_JUNIT ?? 'coverage/vitest-junit.xml' }
  }
});

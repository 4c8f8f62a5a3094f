/** One jest project per suite: `npm test` runs all, `jest --selectProjects unit` one. */
const transform = { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] };
const base = {
  testEnvironment: '<rootDir>/test/node-realm-environment.js',
  transform,
  moduleFileExtensions: ['ts', 'js', 'json'],
  // cdk.out and dist hold copies of package.json and sources that jest's module map must not see.
  modulePathIgnorePatterns: ['<rootDir>/cdk.out', '<rootDir>/dist'],
};

module.exports = {
  // Each run gets its own TMPDIR, removed at the end; a test that leaves anything there fails the run.
  globalSetup: '<rootDir>/test/temp-dir-setup.js',
  globalTeardown: '<rootDir>/test/temp-dir-teardown.js',
  // The default output, then where the time went (test/timing-reporter.js: .sonomark/test-times.json).
  reporters: ['default', '<rootDir>/test/timing-reporter.js'],
  projects: [
    { ...base, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...base, displayName: 'infra', testMatch: ['<rootDir>/test/infra/**/*.test.ts'], slowTestThreshold: 60 },
    {
      ...base,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.test.ts'],
      slowTestThreshold: 120,
    },
    {
      // The local workflow under load (test/reliability/soak.ts): uploads with concurrency, then an audit.
      ...base,
      displayName: 'reliability',
      testMatch: ['<rootDir>/test/reliability/**/*.test.ts'],
      slowTestThreshold: 240,
    },
    {
      // The report opened in Debian's headless Chromium (playwright-core); .ci/run installs it.
      ...base,
      displayName: 'browser',
      testMatch: ['<rootDir>/test/browser/**/*.test.ts'],
      slowTestThreshold: 120,
    },
  ],
};

import { runCli } from '../../helpers/cli';

describe('sonomark usage', () => {
  it.each([
    [['--site', 'a/b', '--month', '2026-01'], /--site must be 1-64 characters/],
    [['--site', 'site-a', '--month', '2026-13'], /--month must be a month as YYYY-MM/],
    [['--site', 'site-a'], /required option '--month/],
  ])('refuses %j as a usage error (exit 2) before opening any data', async (args, message) => {
    // Act
    const r = await runCli(['usage', ...args]);
    // Assess
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('lists serve and usage in the help', async () => {
    // Act
    const r = await runCli(['--help']);
    // Assess
    expect(r.stdout).toMatch(/serve\s.*multi-site/);
    expect(r.stdout).toMatch(/usage\s.*monthly usage/);
  });
});

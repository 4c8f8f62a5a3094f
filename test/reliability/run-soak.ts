/**
 * `npm run soak -- --uploads N [--concurrency C] [--keep]`: a longer soak than the
 * reliability suite's, through the real local workflow; prints uploads, completed,
 * failed by reason, duplicates (must be 0), retries, wall time and peak RSS, and exits
 * non-zero when a guarantee did not hold. The work directory is removed unless --keep.
 */
import { Command, InvalidArgumentError } from 'commander';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatReport, runSoak, soakHeld } from './soak';

const positive = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${what} must be a positive integer.`);
  return n;
};

async function main(): Promise<void> {
  const opts = new Command('soak')
    .option('--uploads <n>', 'uploads to run', positive('--uploads'), 60)
    .option('--concurrency <n>', 'uploads in flight at once', positive('--concurrency'), 4)
    .option('--keep', 'keep the work directory (corpus and local data) and print where it is')
    .option('--verbose', 'print each upload as it ends')
    .parse()
    .opts<{ uploads: number; concurrency: number; keep?: boolean; verbose?: boolean }>();
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'sonomark-soak-'));
  try {
    const report = await runSoak({
      uploads: opts.uploads,
      concurrency: opts.concurrency,
      workDir,
      log: opts.verbose ? (l) => process.stderr.write(`${l}\n`) : undefined,
      // Written under tsx only (never under jest, whose soak checks the same directory): the runner's, not ours.
      ignoreTemp: /^(\.ses|mat-debug-\d+\.log)$/,
    });
    process.stdout.write(`${formatReport(report)}\n`);
    if (!soakHeld(report)) process.exitCode = 1;
  } finally {
    if (opts.keep) process.stderr.write(`work directory kept: ${workDir}\n`);
    else rmSync(workDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`soak failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 2;
});

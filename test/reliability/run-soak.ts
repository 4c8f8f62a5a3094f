/**
 * `npm run soak -- --uploads N [--concurrency C] [--no-faults] [--keep]`: a longer soak than
 * the reliability suite's, through the real local workflow; prints uploads, completed,
 * failed by reason, duplicates (must be 0), retries, faults injected, wall time and peak
 * RSS, and exits non-zero when a guarantee did not hold. Faults (soak.ts soakFaults: DynamoDB
 * throttles, S3 503/500s, a transient expert, a permanent access denial, an abort during
 * Extract and its re-upload) are on by default, as in the reliability suite: a soak is
 * meant to exercise the failure paths; --no-faults measures the clean path alone.
 * The work directory is removed unless --keep.
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
    .option('--no-faults', 'inject no faults (default: the standard set, soak.ts soakFaults)')
    .option('--keep', 'keep the work directory (corpus and local data) and print where it is')
    .option('--verbose', 'print each upload as it ends')
    .parse()
    .opts<{ uploads: number; concurrency: number; faults: boolean; keep?: boolean; verbose?: boolean }>();
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'sonomark-soak-'));
  try {
    const report = await runSoak({
      uploads: opts.uploads,
      concurrency: opts.concurrency,
      faults: opts.faults,
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

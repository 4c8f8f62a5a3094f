/**
 * The reliability suite's soak: uploads with concurrency through the real local
 * workflow (synthesized definition, s3rver, dynalite), mixing real clips of both
 * data sets, generated clips and malformed files, with the same bytes uploaded twice
 * and the same event delivered twice (soak.ts plans and audits it). 120 uploads by default
 * (about a minute alone on 2 cores; SOAK_UPLOADS=200 took 110 s); `npm run soak --
 * --uploads N` runs longer ones and prints the report.
 */
import * as path from 'node:path';
import { formatReport, runSoak, type SoakReport } from './soak';
import { tempDir } from '../helpers/temp';

jest.setTimeout(600_000);

const UPLOADS = Number(process.env.SOAK_UPLOADS ?? 120);

describe('a soak of concurrent uploads through the local workflow', () => {
  let report: SoakReport;

  beforeAll(async () => {
    // Prepare / Act
    report = await runSoak({ uploads: UPLOADS, concurrency: 4, workDir: path.join(tempDir(), 'soak') });
    console.log(formatReport(report));
  });

  it('accounts for every upload: exactly one COMPLETED or FAILED scan record, none left RUNNING', () => {
    expect(report.thrown).toEqual([]);
    expect(report.unaccounted).toEqual([]);
    expect(report.completed + report.failed).toBe(report.distinctScans);
  });

  it('records no duplicate: one scan per bytes, one result per expert of a completed scan', () => {
    expect(report.duplicates).toBe(0);
    expect(report.badResultSets).toEqual([]);
    // The plan repeats bytes and events: some uploads must have been answered from an existing scan.
    expect(report.distinctScans).toBeLessThan(report.uploads);
  });

  it('completes every real and generated clip, and fails every malformed file with its specific reason', () => {
    expect(report.wrongOutcomes).toEqual([]);
    expect(report.completed).toBeGreaterThan(0);
    expect(Object.keys(report.failedByReason).sort()).toEqual(
      expect.arrayContaining(['EMPTY_FILE', 'UNSUPPORTED_FORMAT']),
    );
  });

  it('leaves no temp files and no child processes, and reports its peak RSS', () => {
    expect(report.orphanTempFiles).toEqual([]);
    expect(report.orphanChildren).toEqual([]);
    expect(report.peakRssMiB).toBeGreaterThan(0);
  });
});

/**
 * Both real data sets end to end, in one process: every item of ../shared/data/pocus
 * (130 clips and stills) and ../shared/data/covid-blues/videos (262 clips) through
 * `sonomark analyze --json`, each completed. Fails (never skips) when a data set is
 * missing. Prints the total time and the median per clip.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../../core/paths';
import { runCli } from '../helpers/cli';
import { POCUS, requirePocus } from '../helpers/pocus';

const COVID_BLUES = path.resolve(PACKAGE_ROOT, '..', 'shared', 'data', 'covid-blues', 'videos');

jest.setTimeout(900_000);

describe('both real data sets end to end', () => {
  beforeAll(() => {
    requirePocus();
    if (!existsSync(COVID_BLUES)) {
      throw new Error(`The COVID-BLUES data set is missing: ${COVID_BLUES} does not exist (read from ../shared/data).`);
    }
  });

  it('completes every POCUS item and every COVID-BLUES video', async () => {
    // Act
    const t0 = performance.now();
    const r = await runCli(['analyze', '--json', POCUS, COVID_BLUES]);
    const totalS = (performance.now() - t0) / 1000;

    // Assess
    type Row = {
      file: string;
      status: string;
      error?: { code: string; message: string };
      timings?: { totalMs?: number };
    };
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Row);
    const perClip = rows.map((x) => x.timings?.totalMs ?? NaN).sort((a, b) => a - b);
    const median = perClip[Math.floor(perClip.length / 2)] as number;
    console.log(
      `both data sets: ${rows.length} items in ${totalS.toFixed(1)} s, median ${Math.round(median)} ms per clip`,
    );
    const failed = rows
      .filter((x) => x.status !== 'completed')
      .map((x) => `${path.basename(x.file)}: ${x.error?.code}`);
    expect(failed).toEqual([]);
    expect(rows.filter((x) => x.file.startsWith(POCUS))).toHaveLength(130);
    expect(rows.filter((x) => x.file.startsWith(COVID_BLUES))).toHaveLength(262);
    expect(r.code).toBe(0);
  });
});

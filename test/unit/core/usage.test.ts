import type { ScanRates } from '../../../core/pricing';
import type { ScanItem } from '../../../core/results-store';
import { invoiceCsv, nextMonth, previousMonth, summarizeUsage } from '../../../core/usage';
import { EXTRACTOR_REF } from '../helpers/fakes';

const RATES: ScanRates = {
  basis: 'test prices',
  extractor: { usdPerSecond: 0.001, minimumSeconds: 0 },
  lambda: { usdPerGbSecond: 0.00001, usdPerRequest: 0.0000002 },
  expertMemoryMb: { diagnosis: 1024 },
  usdPerStateTransition: 0.000025,
};
const SITE = { id: 'site-a', displayName: 'Hospital A' };

function completed(scanId: string, extractorSeconds: number | null, expertMs: Record<string, number>): ScanItem {
  const total = Object.values(expertMs).reduce((a, b) => a + b, 0);
  return {
    pk: `SITE#site-a#SCAN#${scanId}`,
    sk: 'SCAN',
    scanId,
    status: 'COMPLETED',
    siteId: 'site-a',
    studyId: 'study-1',
    receivedAt: `2026-01-0${scanId.length}T00:00:00.000Z`,
    updatedAt: '2026-01-10T00:00:00.000Z',
    summary: {
      experts: {},
      expertVersions: {},
      extractor: EXTRACTOR_REF,
      durations: { extractorSeconds, expertMs, totalExpertMs: total },
    },
    usage: {
      scanId,
      siteId: 'site-a',
      studyId: 'study-1',
      extractor: EXTRACTOR_REF,
      extractorSeconds,
      expertMs: total,
      estimatedCost: {
        totalUsd: 1,
        extractorUsd: 1,
        expertsUsd: 0,
        requestsUsd: 0,
        stateTransitionsUsd: 0,
        basis: 'stored',
      },
      units: 1,
      createdAt: '2026-01-10T00:00:00.000Z',
    },
  };
}

describe('months', () => {
  it.each([
    ['2026-01', '2026-02'],
    ['2026-09', '2026-10'],
    ['2026-12', '2027-01'],
  ])('the month after %s is %s', (month, next) => {
    expect(nextMonth(month)).toBe(next);
  });

  it('bills the month before the one the job runs in, across a year end', () => {
    expect(previousMonth(new Date('2027-01-01T06:00:00Z'))).toBe('2026-12');
    expect(previousMonth(new Date('2026-03-31T23:59:59Z'))).toBe('2026-02');
  });
});

describe('summarizeUsage', () => {
  it('reprices at the given rates, falls back to the stored estimate, and counts what it cannot price', () => {
    // Prepare: priced at RATES; an expert RATES does not know (stored estimate); no seconds and no estimate
    const unknownExpert = completed('bb', 5, { novel: 1 });
    const noSeconds = { ...completed('ccc', null, { diagnosis: 1 }) };
    const unpriced = { ...noSeconds, usage: { ...noSeconds.usage!, estimatedCost: null } };
    const failed: ScanItem = { ...completed('dddd', 1, {}), status: 'FAILED', usage: undefined };
    const otherSite: ScanItem = { ...completed('e', 1, { diagnosis: 1 }), siteId: 'site-b' };
    // Act
    const s = summarizeUsage(
      SITE,
      '2026-01',
      [completed('a', 10, { diagnosis: 2 }), unknownExpert, unpriced, failed, otherSite],
      RATES,
    );
    // Assess
    expect(s.scansBilled).toBe(3);
    expect(s.scansNotBilled).toEqual({ failed: 1, running: 0 });
    expect(s.unpricedScans).toBe(1);
    expect(s.scans.map((x) => x.scanId)).toEqual(['a', 'bb', 'ccc']);
    // a: 10 s × 0.001 + 2 ms at 1 GB + 5 requests (StartExecution, Validate, LoadExperts, the expert, Finalize) + 11 transitions; bb: the stored $1
    expect(s.scans[0]!.cost!.totalUsd).toBeCloseTo(0.01 + 2e-8 + 1e-6 + 0.000275, 12);
    expect(s.scans[1]!.cost!.totalUsd).toBe(1);
    expect(s.cost.totalUsd).toBeCloseTo(1 + 0.01 + 2e-8 + 1e-6 + 0.000275, 10);
    expect(s.extractorSeconds).toBe(15);
  });
});

describe('invoiceCsv', () => {
  it('has one row per billed scan and a TOTAL row, with ids only (no object keys)', () => {
    // Act
    const csv = invoiceCsv(summarizeUsage(SITE, '2026-01', [completed('a', 10, { diagnosis: 2 })], RATES));
    const lines = csv.trimEnd().split('\n');
    // Assess
    expect(lines[0]).toBe(
      'site,month,scan_id,study_id,received_at,extractor_seconds,expert_ms,extractor_usd,experts_usd,requests_usd,state_transitions_usd,total_usd',
    );
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(/^site-a,2026-01,a,study-1,2026-01-01T00:00:00.000Z,10,2,0.01,/);
    expect(lines[2]).toMatch(/^site-a,2026-01,TOTAL,1 scans billed,,10,2,0.01,/);
    expect(csv).not.toContain('uploads/');
  });
});

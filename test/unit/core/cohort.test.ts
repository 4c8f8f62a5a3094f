/** The cohort report, pure: CSV rows, counts, failures, distributions and agreement between expert versions. */
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { cohortCsv, summarizeCohort, type CohortItemOutcome } from '../../../core/cohort';
import type { ExpertResult } from '../../../core/schemas';
import { readCohortManifest } from '../../../local/cohort';
import { tempDir } from '../../helpers/temp';
import { EXTRACTOR_REF } from '../helpers/fakes';

const triage = (scanId: string, version: string, probability: number): ExpertResult => ({
  scanId,
  expert: { name: 'triage', version, sha256: 'c'.repeat(64) },
  extractor: EXTRACTOR_REF,
  output: {
    kind: 'binary',
    label: probability >= 0.5 ? 'abnormal' : 'healthy',
    positive: 'abnormal',
    probability,
  },
  inferMs: 0.1,
  createdAt: '2025-01-01T00:00:00.000Z',
});

const id = (n: number) => String(n).repeat(32);
const outcomes: CohortItemOutcome[] = [
  // Both versions stored; 1.10.0 is current (numeric order, not text: 1.10.0 > 1.9.0)
  {
    item: 'a.mp4',
    scanId: id(1),
    action: 'scored',
    results: [triage(id(1), '1.9.0', 0.8), triage(id(1), '1.10.0', 0.6)],
    current: { triage: '1.10.0' },
    extractor: 'x@1',
  },
  {
    item: 'b, "odd".mp4',
    scanId: id(2),
    action: 'scored',
    results: [triage(id(2), '1.9.0', 0.7), triage(id(2), '1.10.0', 0.4)],
    current: { triage: '1.10.0' },
    extractor: 'x@1',
  },
  {
    item: 'c.mp4',
    scanId: id(3),
    action: 'done',
    results: [triage(id(3), '1.10.0', 0.2)],
    current: { triage: '1.10.0' },
    extractor: 'x@1',
  },
  {
    item: 'd.gif',
    scanId: null,
    action: 'failed',
    error: { code: 'UNSUPPORTED_FORMAT', message: 'Not a clip.' },
    results: [],
    current: {},
  },
];

describe('cohort report', () => {
  it('counts actions, lists failures with reasons, and gives each output distribution', () => {
    const s = summarizeCohort(outcomes, {
      source: 'dir',
      models: { extractor: 'x@1', experts: ['triage@1.10.0'] },
      experts: ['triage'],
      seconds: 1,
    });
    expect(s.counts).toEqual({ items: 4, done: 1, scored: 2, analysed: 0, failed: 1 });
    expect(s.failures).toEqual([{ item: 'd.gif', scanId: null, code: 'UNSUPPORTED_FORMAT', message: 'Not a clip.' }]);
    expect(s.distributions.triage).toEqual({
      version: '1.10.0',
      scans: 3,
      counts: { abnormal: 1, healthy: 2 },
      value: { min: 0.2, p25: 0.3, median: 0.4, p75: 0.5, max: 0.6, mean: 0.4 },
    });
    expect(s.scanIds).toEqual([id(1), id(2), id(3)]);
  });

  it('compares the previous and the current version on the scans holding both', () => {
    const s = summarizeCohort(outcomes, {
      source: 'dir',
      models: { extractor: 'x@1', experts: [] },
      experts: ['triage'],
      seconds: 1,
    });
    // a: abnormal → abnormal (same), b: abnormal → healthy (differs); |Δ| 0.2 and 0.3
    expect(s.agreement.triage).toEqual([
      { previous: '1.9.0', current: '1.10.0', scans: 2, sameHeadline: 1, agreement: 0.5, meanAbsDiff: 0.25 },
    ]);
  });

  it('writes one CSV row per item with the current version, quoting what needs it', () => {
    const lines = cohortCsv(outcomes, ['triage']).trim().split('\n');
    expect(lines[0]).toBe('item,scanId,action,errorCode,error,extractor,triage.version,triage.output,triage.value');
    expect(lines[1]).toBe(`a.mp4,${id(1)},scored,,,x@1,1.10.0,abnormal,0.6`);
    expect(lines[2]).toBe(`"b, ""odd"".mp4",${id(2)},scored,,,x@1,1.10.0,healthy,0.4`);
    expect(lines[4]).toBe('d.gif,,failed,UNSUPPORTED_FORMAT,Not a clip.,,,,');
  });
});

describe('cohort manifests', () => {
  it('reads a CSV file column and a JSONL file field, relative to the manifest', () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'c.csv'), 'site,file\ns1,clips/a.mp4\ns1,/abs/b.gif\n');
    writeFileSync(path.join(dir, 'c.jsonl'), '{"file":"a.mp4"}\n\n{"path":"sub/b.mov"}\n');
    expect(readCohortManifest(path.join(dir, 'c.csv'))).toEqual([
      { file: path.join(dir, 'clips/a.mp4'), name: 'clips/a.mp4' },
      { file: '/abs/b.gif', name: 'b.gif' },
    ]);
    expect(readCohortManifest(path.join(dir, 'c.jsonl')).map((i) => i.name)).toEqual(['a.mp4', 'sub/b.mov']);
  });

  it('says which line is wrong', () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'bad.csv'), 'name,label\na,b\n');
    writeFileSync(path.join(dir, 'bad.jsonl'), '{"file":"a.mp4"}\nnot json\n');
    expect(() => readCohortManifest(path.join(dir, 'bad.csv'))).toThrow(/header with a "file" \(or "path"\) column/);
    expect(() => readCohortManifest(path.join(dir, 'bad.jsonl'))).toThrow(/line 2: not JSON/);
  });
});

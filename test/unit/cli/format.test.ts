/** What sonomark analyze prints for people: the block of one clip and the summary of a batch. */
import { resultTable, summaryTable, RUO } from '../../../cli/format';
import type { AnalyzeResult } from '../../../local/workflow';

function completed(file: string, label: string, score: number, abnormal: number): AnalyzeResult {
  return {
    file,
    scanId: '0'.repeat(32),
    status: 'completed',
    modality: 'ultrasound',
    reused: false,
    features: null,
    experts: {
      diagnosis: { kind: 'classification', label, probabilities: { covid: 0.1, pneumonia: 0.2, healthy: 0.7 } },
      severity: {
        kind: 'ordinal',
        score,
        expected: score + 0.25,
        probabilities: { '0': 0.25, '1': 0.25, '2': 0.25, '3': 0.25 },
      },
      triage: {
        kind: 'binary',
        label: abnormal > 0.5 ? 'abnormal' : 'healthy',
        positive: 'abnormal',
        probability: abnormal,
      },
    },
    models: null,
    timings: { totalMs: 10, states: {} },
  };
}

const failed: AnalyzeResult = {
  file: 'notes.gif',
  scanId: null,
  status: 'failed',
  modality: null,
  error: { code: 'UNSUPPORTED_FORMAT', message: 'Not a clip.' },
  reused: false,
  features: null,
  experts: {},
  models: null,
  timings: { totalMs: 1, states: {} },
};

describe('summaryTable', () => {
  it('prints a line per clip and the counts, with the research-use note beside the clinical outputs', () => {
    // Prepare
    const results = [completed('a.mp4', 'healthy', 0, 0.2), completed('b.mp4', 'healthy', 2, 0.9), failed];

    // Act
    const text = summaryTable(results);

    // Assess
    const lines = text.split('\n');
    expect(lines[0]).toBe(`Summary (diagnosis, severity, triage: ${RUO})`);
    expect(lines[1]).toMatch(/^\s+#\s+status\s+modality\s+diagnosis\s+severity\s+triage\s+file$/);
    expect(lines[2]).toMatch(/^\s+1\s+completed\s+ultrasound\s+healthy 70%\s+0 \(0\.25\)\s+healthy 80%\s+a\.mp4$/);
    expect(lines[4]).toMatch(/^\s+3\s+failed\s+-\s+-\s+-\s+-\s+notes\.gif {2}UNSUPPORTED_FORMAT: Not a clip\.$/);
    expect(text).toContain('2 completed, 1 failed, 3 in all');
    expect(text).toContain(`diagnosis: healthy ×2  (${RUO})`);
    expect(text).toContain(`severity: grade 0 ×1, grade 2 ×1  (${RUO})`);
    expect(text).toContain(`triage: abnormal ×1, healthy ×1  (${RUO})`);
    expect(lines).toHaveLength(10);
  });
});

describe('resultTable', () => {
  it('says research software, not a medical device, above the expert outputs', () => {
    // Act
    const text = resultTable(completed('a.mp4', 'healthy', 1, 0.3));

    // Assess
    expect(text).toMatch(new RegExp(`outputs\\s+${RUO}\\n\\s+diagnosis`));
  });
});

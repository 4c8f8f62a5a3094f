import { ModelError } from '../../../core/errors';
import { interpretProbabilities } from '../../../core/expert-output';
import type { ExpertEntry } from '../../../core/schemas';

type Entry = Pick<ExpertEntry, 'name' | 'task' | 'output'>;

const diagnosis: Entry = {
  name: 'diagnosis',
  task: 'classification',
  output: { name: 'probabilities', labels: ['covid', 'pneumonia', 'healthy'] },
};
const severity: Entry = {
  name: 'severity',
  task: 'ordinal',
  output: { name: 'probabilities', labels: ['0', '1', '2', '3'] },
};
const triage: Entry = {
  name: 'triage',
  task: 'binary',
  output: { name: 'probabilities', labels: ['healthy', 'abnormal'], positive: 'abnormal' },
};

describe('interpretProbabilities: classification', () => {
  it('returns the argmax label and a label → probability map', () => {
    // Prepare
    const row = [0.2, 0.7, 0.1];

    // Act
    const out = interpretProbabilities(diagnosis, row);

    // Assess
    expect(out).toEqual({
      kind: 'classification',
      label: 'pneumonia',
      probabilities: { covid: 0.2, pneumonia: 0.7, healthy: 0.1 },
    });
  });

  it('clamps float noise outside [0, 1] in the probabilities', () => {
    // Prepare
    const row = Float32Array.from([-1e-7, 0.0, 1.0000001]);

    // Act
    const out = interpretProbabilities(diagnosis, row);

    // Assess
    expect(out).toEqual({
      kind: 'classification',
      label: 'healthy',
      probabilities: { covid: 0, pneumonia: 0, healthy: 1 },
    });
  });

  it('rejects a row of the wrong length with a ModelError naming the expert', () => {
    // Prepare
    const row = [0.5, 0.5];

    // Act / Assess
    expect(() => interpretProbabilities(diagnosis, row)).toThrow(ModelError);
    expect(() => interpretProbabilities(diagnosis, row)).toThrow(
      'Expert "diagnosis" returned 2 probabilities for 3 labels.',
    );
  });
});

describe('interpretProbabilities: ordinal', () => {
  it('scores the most probable grade and the probability-weighted expected grade', () => {
    // Prepare
    const row = [0.1, 0.2, 0.4, 0.3];

    // Act
    const out = interpretProbabilities(severity, row);

    // Assess
    expect(out.kind).toBe('ordinal');
    if (out.kind !== 'ordinal') return;
    expect(out.score).toBe(2);
    expect(out.expected).toBeCloseTo(0 * 0.1 + 1 * 0.2 + 2 * 0.4 + 3 * 0.3, 12);
    expect(out.probabilities).toEqual({ '0': 0.1, '1': 0.2, '2': 0.4, '3': 0.3 });
  });

  it('reads grades from the labels, not from their position', () => {
    // Prepare
    const reversed: Entry = { ...severity, output: { name: 'p', labels: ['3', '2', '1', '0'] } };

    // Act
    const out = interpretProbabilities(reversed, [0.7, 0.1, 0.1, 0.1]);

    // Assess
    expect(out.kind === 'ordinal' && out.score).toBe(3);
    expect(out.kind === 'ordinal' && out.expected).toBeCloseTo(3 * 0.7 + 2 * 0.1 + 1 * 0.1, 12);
  });

  it.each([[['low', 'high']], [['0', '1.5']], [['-1', '0']]])('rejects labels %j with a ModelError', (labels) => {
    // Prepare
    const entry: Entry = { ...severity, output: { name: 'p', labels } };

    // Act / Assess
    expect(() => interpretProbabilities(entry, [0.5, 0.5])).toThrow(ModelError);
    expect(() => interpretProbabilities(entry, [0.5, 0.5])).toThrow(
      'Ordinal expert "severity" needs non-negative integer labels',
    );
  });

  it('rejects a wrong-length row before looking at the labels', () => {
    // Prepare
    const row = [0.5, 0.5];

    // Act / Assess
    expect(() => interpretProbabilities(severity, row)).toThrow('returned 2 probabilities for 4 labels');
  });
});

describe('interpretProbabilities: binary', () => {
  it.each([
    [[0.3, 0.7], 'abnormal', 0.7],
    [[0.5, 0.5], 'abnormal', 0.5],
    [[0.51, 0.49], 'healthy', 0.49],
    [[0.9, 0.1], 'healthy', 0.1],
  ])('row %j → label %s with probability %d of "abnormal"', (row, label, probability) => {
    // Prepare / Act
    const out = interpretProbabilities(triage, row);

    // Assess
    expect(out).toEqual({ kind: 'binary', positive: 'abnormal', probability, label });
  });

  it('uses the positive label wherever it sits in the labels', () => {
    // Prepare
    const flipped: Entry = { ...triage, output: { name: 'p', labels: ['abnormal', 'healthy'], positive: 'abnormal' } };

    // Act
    const out = interpretProbabilities(flipped, [0.8, 0.2]);

    // Assess
    expect(out).toEqual({ kind: 'binary', positive: 'abnormal', probability: 0.8, label: 'abnormal' });
  });

  it('defaults the positive label to the second one', () => {
    // Prepare
    const noPositive: Entry = { ...triage, output: { name: 'p', labels: ['no', 'yes'] } };

    // Act
    const out = interpretProbabilities(noPositive, [0.25, 0.75]);

    // Assess
    expect(out).toEqual({ kind: 'binary', positive: 'yes', probability: 0.75, label: 'yes' });
  });

  it('rejects a wrong-length row with a ModelError', () => {
    // Prepare / Act / Assess
    expect(() => interpretProbabilities(triage, [1])).toThrow(ModelError);
  });
});

describe('interpretProbabilities, ordinal edge cases', () => {
  const ordinal = (labels: string[]) => ({
    name: 'severity',
    task: 'ordinal' as const,
    output: { name: 'probabilities', labels },
  });

  it('rejects grade labels that are not plain decimal digits', () => {
    for (const bad of ['', ' 1 ', '0x2', '1e0']) {
      expect(() => interpretProbabilities(ordinal(['0', bad]), [0.5, 0.5])).toThrow(/non-negative integer labels/);
    }
  });

  it('rejects a row with no probability mass instead of returning NaN', () => {
    expect(() => interpretProbabilities(ordinal(['0', '1']), [0, 0])).toThrow(/no probability mass/);
  });
});

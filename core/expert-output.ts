/**
 * Turns an expert's probability row into its typed output. Pure: the expert
 * Lambda, expert training (TS predictions vs ONNX) and the tests share it.
 */
import { ModelError } from './errors';
import type { ExpertEntry, ExpertOutput } from './schemas';

export function interpretProbabilities(
  entry: Pick<ExpertEntry, 'name' | 'task' | 'output'>,
  row: ArrayLike<number>,
): ExpertOutput {
  const labels = entry.output.labels;
  if (row.length !== labels.length) {
    throw new ModelError(`Expert "${entry.name}" returned ${row.length} probabilities for ${labels.length} labels.`);
  }
  const probs = Array.from(row, (p) => Math.min(1, Math.max(0, p)));
  const probabilities = Object.fromEntries(labels.map((l, i) => [l, probs[i] as number]));
  let best = 0;
  probs.forEach((p, i) => {
    if (p > (probs[best] as number)) best = i;
  });
  switch (entry.task) {
    case 'classification':
      return { kind: 'classification', label: labels[best] as string, probabilities };
    case 'ordinal': {
      // Labels of an ordinal expert are its grades ("0".."3"); the score is the most probable grade.
      // Plain decimal digits only: Number() would also accept "", " 1 ", "0x2" or "1e0".
      const grades = labels.map((l) => (/^\d+$/.test(l) ? Number(l) : NaN));
      if (grades.some((g) => !Number.isInteger(g) || g < 0)) {
        throw new ModelError(
          `Ordinal expert "${entry.name}" needs non-negative integer labels, got [${labels.join(', ')}].`,
        );
      }
      const mass = probs.reduce((s, p) => s + p, 0);
      if (!(mass > 0)) throw new ModelError(`Ordinal expert "${entry.name}" returned no probability mass.`);
      const expected = grades.reduce((s, g, i) => s + g * (probs[i] as number), 0) / mass;
      return { kind: 'ordinal', score: grades[best] as number, expected, probabilities };
    }
    case 'binary': {
      const positive = entry.output.positive ?? (labels[1] as string);
      const p = probs[labels.indexOf(positive)] as number;
      return {
        kind: 'binary',
        positive,
        probability: p,
        label: p >= 0.5 ? positive : (labels.find((l) => l !== positive) as string),
      };
    }
  }
}

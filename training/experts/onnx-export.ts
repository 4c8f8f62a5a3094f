/**
 * A fitted expert as an ONNX graph (through training/onnx), and the check that
 * onnxruntime computes what the TypeScript model computes before anything is
 * written. Input `features` [batch, d], output `probabilities` [batch, K]: the
 * contract lambdas/expert/score.ts and core/expert-output.ts read.
 *
 *   features → Sub(mean) → Mul(1/sd)                  standardisation of the training rows
 *            [→ Gemm(W1, b1) → Relu]                  MLP only
 *   softmax:    → Gemm(W, b) → Softmax(axis 1)
 *   sigmoid:    → Gemm(w, b) → Sigmoid → Gemm([-1 1], [1 0])        = [1 − p, p]
 *   cumulative: → Gemm(−w…, θ) → Sigmoid → Gemm(D, e)               = P(grade ≤ j) differenced
 */
import * as ort from 'onnxruntime-node';
import { ModelError } from '../../core/errors';
import { graph } from '../onnx/graph';
import { EXPERT_IO } from '../onnx/fixtures';
import { layout, predictProba, thresholds, type FittedModel, type Matrix } from './model';

export { EXPERT_IO };

const f32 = (a: ArrayLike<number>) => Float32Array.from(a as ArrayLike<number>);

export interface ExportMeta {
  readonly graphName: string;
  readonly docString?: string;
}

export function exportExpertOnnx(model: FittedModel, meta: ExportMeta): Uint8Array {
  const s = model.shape;
  const l = layout(s);
  const d = s.inputDim;
  const K = s.classes;
  const p = model.params;
  const g = graph(meta.graphName, { docString: meta.docString });
  g.input(EXPERT_IO.input, ['batch', d]);
  g.initializer('mean', [d], f32(model.standardizer.mean));
  g.initializer('inv_std', [d], f32(model.standardizer.invStd));
  g.node('Sub', [EXPERT_IO.input, 'mean'], ['centered']);
  g.node('Mul', ['centered', 'inv_std'], ['standardized']);

  let hidden = 'standardized';
  let width = d;
  if (s.family === 'mlp') {
    g.initializer('w1', [d, s.hidden], f32(p.subarray(l.w1, l.w1 + d * s.hidden)));
    g.initializer('b1', [s.hidden], f32(p.subarray(l.b1, l.b1 + s.hidden)));
    g.node('Gemm', ['standardized', 'w1', 'b1'], ['pre_hidden']);
    g.node('Relu', ['pre_hidden'], ['hidden']);
    hidden = 'hidden';
    width = s.hidden;
  }
  const w2 = p.subarray(l.w2, l.w2 + width * l.out);

  switch (s.head) {
    case 'softmax':
      g.initializer('w2', [width, K], f32(w2));
      g.initializer('b2', [K], f32(p.subarray(l.b2, l.b2 + K)));
      g.node('Gemm', [hidden, 'w2', 'b2'], ['logits']);
      g.node('Softmax', ['logits'], [EXPERT_IO.output], { axis: 1 });
      break;
    case 'sigmoid':
      g.initializer('w2', [width, 1], f32(w2));
      g.initializer('b2', [1], f32(p.subarray(l.b2, l.b2 + 1)));
      g.initializer('to_pair', [1, 2], f32([-1, 1]));
      g.initializer('pair_bias', [2], f32([1, 0]));
      g.node('Gemm', [hidden, 'w2', 'b2'], ['logit']);
      g.node('Sigmoid', ['logit'], ['positive']);
      g.node('Gemm', ['positive', 'to_pair', 'pair_bias'], [EXPERT_IO.output]);
      break;
    case 'cumulative': {
      // θ_j − f for every j in one Gemm: the score weights negated and repeated per threshold.
      const neg = new Float32Array(width * (K - 1));
      for (let j = 0; j < width; j++) for (let t = 0; t < K - 1; t++) neg[j * (K - 1) + t] = -w2[j]!;
      // P(grade = k) = c_k − c_{k−1}, with c_{−1} = 0 and c_{K−1} = 1: a constant matrix and bias.
      const diff = new Float32Array((K - 1) * K);
      for (let t = 0; t < K - 1; t++) {
        diff[t * K + t] = 1;
        diff[t * K + t + 1] = -1;
      }
      const last = new Float32Array(K);
      last[K - 1] = 1;
      g.initializer('neg_w2', [width, K - 1], neg);
      g.initializer('thresholds', [K - 1], f32(thresholds(p, l, K)));
      g.initializer('difference', [K - 1, K], diff);
      g.initializer('last_grade', [K], last);
      g.node('Gemm', [hidden, 'neg_w2', 'thresholds'], ['margins']);
      g.node('Sigmoid', ['margins'], ['cumulative']);
      g.node('Gemm', ['cumulative', 'difference', 'last_grade'], [EXPERT_IO.output]);
      break;
    }
  }
  g.output(EXPERT_IO.output, ['batch', K]);
  return g.toBytes();
}

export interface Verification {
  readonly rows: number;
  readonly maxAbsDiff: number;
  readonly tolerance: number;
}

/**
 * Runs the exported bytes in onnxruntime on `x` and compares every probability
 * with the TypeScript model's; throws ModelError above `tolerance`, so a graph
 * that disagrees with the model it claims to be is never written.
 */
export async function verifyOnnx(
  bytes: Uint8Array,
  model: FittedModel,
  x: Matrix,
  tolerance = 1e-5,
): Promise<Verification> {
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'] });
  try {
    const input = new ort.Tensor('float32', Float32Array.from(x.data), [x.rows, x.cols]);
    const out = await session.run({ [EXPERT_IO.input]: input });
    const got = out[EXPERT_IO.output];
    const K = model.shape.classes;
    if (!got || got.dims.length !== 2 || got.dims[0] !== x.rows || got.dims[1] !== K) {
      throw new ModelError(
        `Exported expert returned ${got ? `shape [${got.dims.join(', ')}]` : 'no output'}, expected [${x.rows}, ${K}].`,
      );
    }
    const want = predictProba(model, x).data;
    const data = got.data as Float32Array;
    let maxAbsDiff = 0;
    for (let i = 0; i < want.length; i++) {
      const diff = Math.abs(data[i]! - want[i]!);
      // NaN must fail too, hence the negated comparison.
      if (!(diff <= maxAbsDiff)) maxAbsDiff = Number.isNaN(diff) ? Infinity : diff;
    }
    if (!(maxAbsDiff <= tolerance)) {
      throw new ModelError(
        `The exported ONNX expert disagrees with the trained model: max |Δp| = ${maxAbsDiff} over ${x.rows} rows (tolerance ${tolerance}). Nothing was written.`,
      );
    }
    return { rows: x.rows, maxAbsDiff, tolerance };
  } finally {
    await session.release();
  }
}

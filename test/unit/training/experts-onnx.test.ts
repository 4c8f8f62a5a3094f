/**
 * Exported experts: the ONNX graph, run by onnxruntime-node, gives the
 * probabilities the TypeScript model gives, for every family and head; and the
 * verification refuses a graph that does not.
 */
import * as ort from 'onnxruntime-node';
import { interpretProbabilities } from '../../../core/expert-output';
import { fitModel, matrix, predictProba, toFloat32, type Family, type Head } from '../../../training/experts/model';
import { EXPERT_IO, exportExpertOnnx, verifyOnnx } from '../../../training/experts/onnx-export';
import { mulberry32 } from '../../../training/onnx/graph';

const rand = mulberry32(42);
const n = 80;
const d = 12;
// Float32 inputs, as featureVector hands them to the expert Lambda.
const x = matrix(
  n,
  d,
  Float64Array.from({ length: n * d }, () => Math.fround(rand() * 3 - 1)),
);
const col = (i: number, j: number) => x.data[i * d + j]!;

const CASES: [Family, Head, number][] = [
  ['linear', 'softmax', 3],
  ['mlp', 'softmax', 3],
  ['linear', 'sigmoid', 2],
  ['mlp', 'sigmoid', 2],
  ['linear', 'cumulative', 4],
  ['mlp', 'cumulative', 4],
];

function labelsFor(head: Head, K: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => {
    const s = col(i, 0) + 0.5 * col(i, 1) - 0.3 * col(i, 2);
    if (head === 'sigmoid') return s > 0.5 ? 1 : 0;
    if (head === 'softmax') return col(i, 0) > 1 ? 0 : col(i, 3) > 0.5 ? 1 : 2;
    return Math.max(0, Math.min(K - 1, Math.floor(s + 1)));
  });
}

describe('exportExpertOnnx', () => {
  it.each(CASES)('%s %s: onnxruntime reproduces the TypeScript probabilities', async (family, head, K) => {
    // Prepare
    const model = toFloat32(
      fitModel({ family, head, inputDim: d, classes: K, hidden: family === 'mlp' ? 8 : 0 }, x, labelsFor(head, K), {
        lambda: 0.01,
        seed: 7,
      }),
    );

    // Act
    const bytes = exportExpertOnnx(model, { graphName: `test_${family}_${head}` });
    const session = await ort.InferenceSession.create(bytes);
    const out = await session.run({ [EXPERT_IO.input]: new ort.Tensor('float32', Float32Array.from(x.data), [n, d]) });
    await session.release();

    // Assess
    const got = out[EXPERT_IO.output]!;
    expect(got.dims).toEqual([n, K]);
    const want = predictProba(model, x).data;
    const data = got.data as Float32Array;
    let max = 0;
    for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(data[i]! - want[i]!));
    expect(max).toBeLessThan(1e-5);
    // Rows are distributions, so core/expert-output.ts can read them as the Lambda does.
    for (let i = 0; i < n; i++) {
      const row = data.subarray(i * K, (i + 1) * K);
      expect(row.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);
      const labels = Array.from({ length: K }, (_, c) => String(c));
      const task = head === 'softmax' ? 'classification' : head === 'sigmoid' ? 'binary' : 'ordinal';
      expect(() => interpretProbabilities({ name: 'x', task, output: { name: 'p', labels } }, row)).not.toThrow();
    }
    // verifyOnnx agrees, and reports the same bound.
    const v = await verifyOnnx(bytes, model, x);
    expect(v.maxAbsDiff).toBeLessThan(1e-5);
    expect(v.rows).toBe(n);
  });

  it('verifyOnnx refuses a graph that computes another model', async () => {
    // Prepare: two models fitted with different penalties.
    const y = labelsFor('softmax', 3);
    const shape = { family: 'linear' as const, head: 'softmax' as const, inputDim: d, classes: 3, hidden: 0 };
    const a = toFloat32(fitModel(shape, x, y, { lambda: 0.001, seed: 1 }));
    const b = toFloat32(fitModel(shape, x, y, { lambda: 1, seed: 1 }));

    // Act / Assess
    await expect(verifyOnnx(exportExpertOnnx(a, { graphName: 'a' }), b, x)).rejects.toMatchObject({
      name: 'ModelError',
      message: expect.stringMatching(/disagrees with the trained model.*Nothing was written/),
    });
  });

  it('is byte-for-byte deterministic', () => {
    const y = labelsFor('cumulative', 4);
    const shape = { family: 'mlp' as const, head: 'cumulative' as const, inputDim: d, classes: 4, hidden: 6 };
    const one = exportExpertOnnx(toFloat32(fitModel(shape, x, y, { lambda: 0.1, seed: 3 })), { graphName: 'g' });
    const two = exportExpertOnnx(toFloat32(fitModel(shape, x, y, { lambda: 0.1, seed: 3 })), { graphName: 'g' });
    expect(Buffer.from(one).equals(Buffer.from(two))).toBe(true);
  });
});

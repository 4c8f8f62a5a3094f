/**
 * FLOPs per frame from the ONNX graph (bench/onnx-flops.ts): hand-counted graphs, the
 * propagated shapes against what onnxruntime actually produces, and the shipped extractor
 * against onnxruntime's own profile of it.
 */
import * as ort from 'onnxruntime-node';
import { loadManifest, readVerifiedModel } from '../../../core/manifest';
import { countFlops, windowOut } from '../../../bench/onnx-flops';
import { flopsPerFrame } from '../../../bench/ort';
import { graph, mulberry32, uniformWeights } from '../../../training/onnx/graph';

const w = (dims: number[], seed = 1) =>
  uniformWeights(
    mulberry32(seed),
    dims.reduce((a, b) => a * b, 1),
    0.1,
  );

/** Conv 3→16 (3×3, stride 2, pad 1) → Relu → depthwise Conv → MaxPool 2 → Flatten → Gemm 1024→10 → MatMul 10→4. */
// 16 channels: onnxruntime's blocked (NCHWc) convolutions pad channels to 8 on AVX2 and to 16 on AVX-512
// machines, and its profile reports the padded shapes; a multiple of 16 pads nothing on either, so the profile
// sees the model's own shapes and the comparison below holds on any x86 CI machine.
function smallCnn(): Uint8Array {
  const g = graph('flops-test', { opsetVersion: 13 });
  const x = g.input('x', ['n', 3, 32, 32]);
  const w1 = g.initializer('w1', [16, 3, 3, 3], w([16, 3, 3, 3]));
  g.node('Conv', [x, w1], ['c1'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  g.node('Relu', ['c1'], ['r1']);
  const wd = g.initializer('wd', [16, 1, 3, 3], w([16, 1, 3, 3], 2));
  g.node('Conv', ['r1', wd], ['c2'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], group: 16 });
  g.node('MaxPool', ['c2'], ['p'], { kernel_shape: [2, 2], strides: [2, 2] });
  g.node('Flatten', ['p'], ['f'], { axis: 1 });
  const wg = g.initializer('wg', [10, 1024], w([10, 1024], 3));
  const bg = g.initializer('bg', [10], w([10], 4));
  g.node('Gemm', ['f', wg, bg], ['h'], { transB: 1 });
  const wm = g.initializer('wm', [10, 4], w([10, 4], 5));
  g.node('MatMul', ['h', wm], ['y']);
  g.output('y', ['n', 4]);
  return g.toBytes();
}

// Hand count, per frame (2 FLOPs per multiply-add):
const CONV1 = 2 * (16 * 16 * 16) * (3 * 3 * 3); // 16×16×16 outputs, each over 3 channels × 3×3
const DEPTHWISE = 2 * (16 * 16 * 16) * (1 * 3 * 3); // one input channel per output channel
const GEMM = 2 * 10 * 1024;
const MATMUL = 2 * 4 * 10;

describe('countFlops', () => {
  it('counts Conv (grouped too), Gemm and MatMul multiply-adds per frame from the shapes', () => {
    const r = countFlops(smallCnn(), [3, 3, 32, 32]);
    expect(r.byOp).toEqual({ Conv: CONV1 + DEPTHWISE, Gemm: GEMM, MatMul: MATMUL });
    expect(r.total).toBe(CONV1 + DEPTHWISE + GEMM + MATMUL);
    expect(r.nodes.map((n) => n.output)).toEqual([
      [3, 16, 16, 16],
      [3, 16, 16, 16],
      [3, 10],
      [3, 4],
    ]);
    expect(r.opset).toBe(13);
  });

  it('gives the same per-frame count at any batch size', () => {
    expect(countFlops(smallCnn(), [1, 3, 32, 32]).total).toBe(countFlops(smallCnn(), [64, 3, 32, 32]).total);
  });

  it('propagates the shape onnxruntime produces, and agrees with its profile', async () => {
    const model = smallCnn();
    const session = await ort.InferenceSession.create(model);
    const out = await session.run({ x: new ort.Tensor('float32', new Float32Array(2 * 3 * 32 * 32), [2, 3, 32, 32]) });
    expect(out.y!.dims).toEqual([2, 4]);
    await session.release();
    const profiled = await flopsPerFrame(model, 'x', [3, 32, 32], 2);
    expect(countFlops(model, [2, 3, 32, 32]).total).toBeCloseTo(profiled.total, 6);
  });

  it('reads Reshape targets from constants (0 keeps a dim, -1 infers one) and Transpose perms', () => {
    const g = graph('reshape-test', { opsetVersion: 13 });
    g.input('x', ['n', 6, 4]);
    g.initializerInt64('shape', [2], [0, -1]);
    g.node('Reshape', ['x', 'shape'], ['r']);
    g.node('Transpose', ['r'], ['t'], { perm: [1, 0] });
    g.initializer('m', [5, 24], w([5, 24]));
    g.node('MatMul', ['m', 't'], ['y']); // [5, 24] · [24, n]
    g.output('y', [5, 'n']);
    const r = countFlops(g.toBytes(), [7, 6, 4]);
    // x [7, 6, 4] → r [7, 24] → t [24, 7] → y [5, 7]: 2 × 5 × 7 × 24 FLOPs, over 7 frames.
    expect(r.nodes).toEqual([{ op: 'MatMul', name: 'matmul_2', output: [5, 7], flops: 2 * 5 * 24 }]);
  });

  it('names an op it has no shape rule for', () => {
    const g = graph('unknown-op', { opsetVersion: 13 });
    g.input('x', ['n', 1, 8, 8]);
    g.node('SpaceToDepth', ['x'], ['y'], { blocksize: 2 });
    g.output('y', ['n', 4, 4, 4]);
    expect(() => countFlops(g.toBytes(), [1, 1, 8, 8])).toThrow(/no shape rule for op "SpaceToDepth"/);
  });

  it('refuses an input shape the graph contradicts', () => {
    expect(() => countFlops(smallCnn(), [1, 1, 32, 32])).toThrow(/input dim 1 is 3 in the graph, given 1/);
  });

  it('sizes windows as ONNX does (floor, or ceil_mode)', () => {
    expect(windowOut(128, 3, 2, 1, 1, 1)).toBe(64);
    expect(windowOut(7, 2, 2, 0, 0, 1)).toBe(3);
    expect(windowOut(7, 2, 2, 0, 0, 1, true)).toBe(4);
    expect(windowOut(10, 3, 1, 0, 0, 2)).toBe(6);
  });

  it("counts the shipped extractor as onnxruntime's profile does", async () => {
    const { manifest, dir } = loadManifest();
    const x = manifest.extractors.ultrasound;
    const model = readVerifiedModel(dir, x);
    const fromGraph = countFlops(model, [4, 1, x.input.size, x.input.size]);
    const profiled = await flopsPerFrame(model, x.input.name, [1, x.input.size, x.input.size]);
    expect(fromGraph.total).toBeGreaterThan(0);
    expect(Math.abs(fromGraph.total - profiled.total) / profiled.total).toBeLessThan(1e-9);
  });
});

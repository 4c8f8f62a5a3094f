/**
 * onnxruntime measurements shared by the CPU benchmark (run.ts) and the GPU one
 * (gpu.ts): the machine's GEMM ceiling with onnxruntime itself (a MatMul model
 * built by training/onnx/graph.ts), the extractor's FLOPs per frame (from
 * onnxruntime's own profile: every node's input and output shapes), and frames/s
 * of the extractor at a batch size and thread count.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { graph, mulberry32, uniformWeights } from '../training/onnx/graph';
import { gemmFlops } from './roofline';
import { rate, timeRunsCpu, type Summary } from './stats';

/** A rate per wall second, with the same per CPU-second of the process (see timeRunsCpu). */
export type Rate = Summary & { readonly perCpuSecond: Summary };

export type Provider = 'cpu' | 'cuda';

export interface SessionChoice {
  readonly provider?: Provider;
  /** intra-op threads (CPU); undefined: onnxruntime's default (one per core). */
  readonly threads?: number;
}

export function sessionOptions(choice: SessionChoice): ort.InferenceSession.SessionOptions {
  return {
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    executionProviders: [choice.provider ?? 'cpu'],
    ...(choice.threads ? { intraOpNumThreads: choice.threads, interOpNumThreads: 1 } : {}),
  };
}

/** An n×n · n×n MatMul with the right operand as weights: 2·n³ FLOPs per run. */
export function matmulModel(n: number): Uint8Array {
  const g = graph('gemm-peak');
  const a = g.input('a', [n, n]);
  const b = g.initializer('b', [n, n], uniformWeights(mulberry32(1), n * n, 1));
  g.node('MatMul', [a, b], ['c']);
  g.output('c', [n, n]);
  return g.toBytes();
}

/** GFLOP/s of MatMul runs (each run: `reps` products of n×n by n×n). */
export async function gemmGflops(choice: SessionChoice, n: number, runs: number, reps: number): Promise<Rate> {
  const session = await ort.InferenceSession.create(matmulModel(n), sessionOptions(choice));
  try {
    const a = new ort.Tensor('float32', uniformWeights(mulberry32(2), n * n, 1), [n, n]);
    const ms = await timeRunsCpu(runs, async () => {
      for (let i = 0; i < reps; i++) await session.run({ a });
    });
    const units = (gemmFlops(n) * reps) / 1e9;
    return { ...rate(ms.wall, units), perCpuSecond: rate(ms.cpu, units) };
  } finally {
    await session.release();
  }
}

interface ProfileEvent {
  cat?: string;
  name?: string;
  args?: {
    op_name?: string;
    input_type_shape?: Record<string, number[]>[];
    output_type_shape?: Record<string, number[]>[];
  };
}

const dims = (shapes: Record<string, number[]>[] | undefined, i: number): number[] =>
  Object.values(shapes?.[i] ?? {})[0] ?? [];
const prod = (xs: readonly number[]) => xs.reduce((p, x) => p * x, 1);

/**
 * Multiply-add FLOPs (2 per MAC) per frame of the convolutions and matrix products,
 * read from onnxruntime's profile of one run at batch `batch` (the shapes after graph
 * optimisation, fused ops included). Elementwise ops are left out, as rooflines do.
 */
export async function flopsPerFrame(model: Uint8Array, inputName: string, frameDims: number[], batch = 4) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sonomark-profile-'));
  try {
    const session = await ort.InferenceSession.create(model, {
      ...sessionOptions({ provider: 'cpu' }),
      enableProfiling: true,
      profileFilePrefix: path.join(dir, 'p'),
    });
    const input = new ort.Tensor('float32', new Float32Array(batch * prod(frameDims)), [batch, ...frameDims]);
    await session.run({ [inputName]: input });
    session.endProfiling();
    await session.release();
    const file = readdirSync(dir).find((f) => f.endsWith('.json'));
    if (!file) throw new Error('onnxruntime wrote no profile');
    const events = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as ProfileEvent[];
    const byOp: Record<string, number> = {};
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time') || !e.args?.op_name) continue;
      const op = e.args.op_name;
      const out = dims(e.args.output_type_shape, 0);
      let flops = 0;
      if (/Conv$/.test(op)) flops = 2 * prod(out) * prod(dims(e.args.input_type_shape, 1).slice(1));
      else if (/(Gemm|MatMul)$/.test(op)) flops = 2 * prod(out) * (dims(e.args.input_type_shape, 0).at(-1) ?? 0);
      if (flops > 0) byOp[op] = (byOp[op] ?? 0) + flops / batch;
    }
    return { total: Object.values(byOp).reduce((a, b) => a + b, 0), byOp };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Frames/s of a model over `frames` ([count, ...frameDims]) in batches of `batch`. */
export async function framesPerSecond(
  model: Uint8Array,
  inputName: string,
  frames: Float32Array,
  frameDims: number[],
  batch: number,
  choice: SessionChoice,
  runs: number,
): Promise<Rate> {
  const session = await ort.InferenceSession.create(model, sessionOptions(choice));
  try {
    const per = prod(frameDims);
    const count = frames.length / per;
    const tensors: ort.Tensor[] = [];
    for (let i = 0; i < count; i += batch) {
      const n = Math.min(batch, count - i);
      tensors.push(new ort.Tensor('float32', frames.subarray(i * per, (i + n) * per), [n, ...frameDims]));
    }
    const ms = await timeRunsCpu(runs, async () => {
      for (const t of tensors) await session.run({ [inputName]: t });
    });
    return { ...rate(ms.wall, count), perCpuSecond: rate(ms.cpu, count) };
  } finally {
    await session.release();
  }
}

/** `count` frames cycled from `source` (so any batch size can be filled from real frames). */
export function cycleFrames(source: Float32Array, perFrame: number, count: number): Float32Array {
  const have = source.length / perFrame;
  const out = new Float32Array(count * perFrame);
  for (let i = 0; i < count; i++)
    out.set(source.subarray((i % have) * perFrame, ((i % have) + 1) * perFrame), i * perFrame);
  return out;
}

/**
 * Deterministic fixture models: ONNX graphs with seeded random weights that have
 * exactly the I/O contract of the real extractor and experts.
 *
 * They exist to exercise the pipeline end to end (decode → extractor → features
 * → experts → results) before trained models exist and in tests. Their outputs
 * carry NO clinical meaning. The manifest marks them `status: 'fixture'`.
 *
 * Each builder has a TypeScript reference implementation beside it, so tests can
 * check onnxruntime's output against an independent computation.
 */
import { BIOMARKERS } from '../../core/biomarkers';
import { graph, mulberry32, uniformWeights } from './graph';

export const EXTRACTOR_IO = { input: 'frames', embedding: 'embedding', biomarkers: 'biomarkers' } as const;
export const EXPERT_IO = { input: 'features', output: 'probabilities' } as const;

/** Side of the square pooling window: a 128×128 frame becomes an 8×8 grid of means. */
export const EXTRACTOR_POOL = 16;

export interface FixtureExtractorOptions {
  /** Frame side in pixels; must be a multiple of 16. @default 128 */
  readonly size?: number;
  /** @default 32 */
  readonly embeddingDim?: number;
  /** Length of the `biomarkers` output (MODALITY_LABELS of its modality). @default BIOMARKERS.length (ultrasound) */
  readonly outputs?: number;
  readonly seed: number;
}

export interface FixtureExtractorWeights {
  readonly size: number;
  readonly embeddingDim: number;
  /** Pooled features per frame: (size/16)². */
  readonly pooled: number;
  /** Length of the `biomarkers` output. */
  readonly outputs: number;
  /** [pooled, embeddingDim] row-major. */
  readonly w1: Float32Array;
  readonly b1: Float32Array;
  /** [embeddingDim, BIOMARKERS.length] row-major. */
  readonly w2: Float32Array;
  readonly b2: Float32Array;
}

export function fixtureExtractorWeights(options: FixtureExtractorOptions): FixtureExtractorWeights {
  const size = options.size ?? 128;
  const embeddingDim = options.embeddingDim ?? 32;
  if (size % EXTRACTOR_POOL !== 0 || size < EXTRACTOR_POOL) {
    throw new RangeError(`fixture extractor size must be a positive multiple of ${EXTRACTOR_POOL}, got ${size}`);
  }
  const side = size / EXTRACTOR_POOL;
  const pooled = side * side;
  const k = options.outputs ?? BIOMARKERS.length;
  const rand = mulberry32(options.seed);
  // Uniform(-s, s) with s = sqrt(3 / fanIn) keeps pre-activations near unit variance, so tanh/sigmoid do not saturate.
  const w1 = uniformWeights(rand, pooled * embeddingDim, Math.sqrt(3 / pooled) * 2);
  const b1 = uniformWeights(rand, embeddingDim, 0.5);
  const w2 = uniformWeights(rand, embeddingDim * k, Math.sqrt(3 / embeddingDim) * 2);
  const b2 = uniformWeights(rand, k, 0.5);
  return { size, embeddingDim, pooled, outputs: k, w1, b1, w2, b2 };
}

/**
 * Extractor fixture: `frames` [batch,1,size,size] → AveragePool 16/16 → Flatten →
 * Gemm → Tanh → `embedding` [batch, embeddingDim]; embedding → Gemm → Sigmoid →
 * `biomarkers` [batch, 6] in BIOMARKERS order.
 */
export function buildFixtureExtractor(options: FixtureExtractorOptions): Uint8Array {
  const w = fixtureExtractorWeights(options);
  const k = w.outputs;
  const g = graph('sonomark_fixture_extractor', {
    docString: `sonomark FIXTURE extractor (seed ${options.seed}): deterministic random projections, NOT trained; outputs carry no clinical meaning.`,
  });
  g.input(EXTRACTOR_IO.input, ['batch', 1, w.size, w.size]);
  g.initializer('w1', [w.pooled, w.embeddingDim], w.w1);
  g.initializer('b1', [w.embeddingDim], w.b1);
  g.initializer('w2', [w.embeddingDim, k], w.w2);
  g.initializer('b2', [k], w.b2);
  g.node('AveragePool', [EXTRACTOR_IO.input], ['pooled'], {
    kernel_shape: [EXTRACTOR_POOL, EXTRACTOR_POOL],
    strides: [EXTRACTOR_POOL, EXTRACTOR_POOL],
  });
  g.node('Flatten', ['pooled'], ['flat'], { axis: 1 });
  g.node('Gemm', ['flat', 'w1', 'b1'], ['hidden']);
  g.node('Tanh', ['hidden'], [EXTRACTOR_IO.embedding]);
  g.node('Gemm', [EXTRACTOR_IO.embedding, 'w2', 'b2'], ['logits']);
  g.node('Sigmoid', ['logits'], [EXTRACTOR_IO.biomarkers]);
  g.output(EXTRACTOR_IO.embedding, ['batch', w.embeddingDim]);
  g.output(EXTRACTOR_IO.biomarkers, ['batch', k]);
  return g.toBytes();
}

/** Reference implementation of the fixture extractor, in float64. `frames` is [n,1,size,size] row-major. */
export function runFixtureExtractorReference(
  w: FixtureExtractorWeights,
  frames: Float32Array,
  n: number,
): { embedding: Float64Array; biomarkers: Float64Array } {
  const { size, pooled, embeddingDim: d } = w;
  const k = w.outputs;
  const side = size / EXTRACTOR_POOL;
  const embedding = new Float64Array(n * d);
  const biomarkers = new Float64Array(n * k);
  for (let f = 0; f < n; f++) {
    const base = f * size * size;
    const x = new Float64Array(pooled);
    for (let by = 0; by < side; by++) {
      for (let bx = 0; bx < side; bx++) {
        let s = 0;
        for (let y = 0; y < EXTRACTOR_POOL; y++) {
          for (let xx = 0; xx < EXTRACTOR_POOL; xx++) {
            s += frames[base + (by * EXTRACTOR_POOL + y) * size + bx * EXTRACTOR_POOL + xx] as number;
          }
        }
        x[by * side + bx] = s / (EXTRACTOR_POOL * EXTRACTOR_POOL);
      }
    }
    const e = matVec(x, w.w1, w.b1, pooled, d).map(Math.tanh);
    const b = matVec(e, w.w2, w.b2, d, k).map((v) => 1 / (1 + Math.exp(-v)));
    embedding.set(e, f * d);
    biomarkers.set(b, f * k);
  }
  return { embedding, biomarkers };
}

export interface LinearExpertOptions {
  readonly inputDim: number;
  readonly labels: readonly string[];
  /** [inputDim, labels.length] row-major; seeded random when absent. */
  readonly weights?: Float32Array;
  /** [labels.length]; seeded random when absent. */
  readonly bias?: Float32Array;
  readonly seed: number;
}

export interface LinearExpertWeights {
  readonly inputDim: number;
  readonly classes: number;
  readonly weights: Float32Array;
  readonly bias: Float32Array;
}

export function linearExpertWeights(options: LinearExpertOptions): LinearExpertWeights {
  const c = options.labels.length;
  if (c < 2) throw new RangeError('an expert needs at least two labels');
  const rand = mulberry32(options.seed);
  const weights = options.weights ?? uniformWeights(rand, options.inputDim * c, Math.sqrt(3 / options.inputDim));
  const bias = options.bias ?? uniformWeights(rand, c, 0.25);
  if (weights.length !== options.inputDim * c) {
    throw new RangeError(`expert weights: ${weights.length} values, expected ${options.inputDim}×${c}`);
  }
  if (bias.length !== c) throw new RangeError(`expert bias: ${bias.length} values, expected ${c}`);
  return { inputDim: options.inputDim, classes: c, weights: Float32Array.from(weights), bias: Float32Array.from(bias) };
}

/** Linear expert: `features` [batch, inputDim] → Gemm → Softmax(axis=1) → `probabilities` [batch, labels.length]. */
export function buildLinearExpert(
  options: LinearExpertOptions & { readonly name?: string; readonly docString?: string },
): Uint8Array {
  const w = linearExpertWeights(options);
  const g = graph(options.name ?? 'sonomark_linear_expert', { docString: options.docString });
  g.input(EXPERT_IO.input, ['batch', w.inputDim]);
  g.initializer('weights', [w.inputDim, w.classes], w.weights);
  g.initializer('bias', [w.classes], w.bias);
  g.node('Gemm', [EXPERT_IO.input, 'weights', 'bias'], ['logits']);
  g.node('Softmax', ['logits'], [EXPERT_IO.output], { axis: 1 });
  g.output(EXPERT_IO.output, ['batch', w.classes]);
  return g.toBytes();
}

/** Reference implementation of a linear expert, in float64. `x` is [n, inputDim] row-major. */
export function runLinearExpertReference(w: LinearExpertWeights, x: ArrayLike<number>, n: number): Float64Array {
  const out = new Float64Array(n * w.classes);
  for (let r = 0; r < n; r++) {
    const row = Float64Array.from({ length: w.inputDim }, (_, j) => x[r * w.inputDim + j] as number);
    const logits = matVec(row, w.weights, w.bias, w.inputDim, w.classes);
    const m = Math.max(...logits);
    const exps = logits.map((v) => Math.exp(v - m));
    const sum = exps.reduce((s, v) => s + v, 0);
    exps.forEach((v, j) => (out[r * w.classes + j] = v / sum));
  }
  return out;
}

/** y = x·W + b with W [inDim, outDim] row-major. */
function matVec(x: Float64Array, w: Float32Array, b: Float32Array, inDim: number, outDim: number): Float64Array {
  const y = new Float64Array(outDim);
  for (let j = 0; j < outDim; j++) {
    let s = b[j] as number;
    for (let i = 0; i < inDim; i++) s += (x[i] as number) * (w[i * outDim + j] as number);
    y[j] = s;
  }
  return y;
}

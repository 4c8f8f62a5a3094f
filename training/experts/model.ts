/**
 * The two expert model families and their task heads, as plain float64 maths:
 * a regularised linear model and a one-hidden-layer ReLU MLP, each ending in
 *
 * - `softmax` (classification): K logits → softmax;
 * - `sigmoid` (binary): one logit → [1 − p, p], i.e. logistic regression;
 * - `cumulative` (ordinal grades 0..K−1): one score f and ordered thresholds
 *   θ₀ < … < θ_{K−2}, P(grade ≤ j) = σ(θ_j − f) (proportional odds). Grade
 *   probabilities are differences of those, so core/expert-output.ts's ordinal
 *   reading (argmax grade, probability-weighted grade) applies unchanged, and the
 *   model respects the order of the grades with K−1 extra parameters instead of
 *   (K−1)·d for a softmax over grades — what ~60 labelled clips can afford.
 *
 * Inputs are standardised with statistics of the training rows only; the same
 * statistics are baked into the exported ONNX graph (onnx-export.ts).
 */
import { mulberry32 } from '../onnx/graph';
import type { TaskKind } from '../../core/schemas';
import { minimizeLbfgs } from './lbfgs';

export type Family = 'linear' | 'mlp';
export type Head = 'softmax' | 'sigmoid' | 'cumulative';

/** Row-major dense matrix. */
export interface Matrix {
  readonly data: Float64Array;
  readonly rows: number;
  readonly cols: number;
}

export function matrix(rows: number, cols: number, data: Float64Array = new Float64Array(rows * cols)): Matrix {
  if (data.length !== rows * cols) throw new RangeError(`matrix ${rows}×${cols} given ${data.length} values`);
  return { data, rows, cols };
}

/** The rows `index` of `m`, in that order. */
export function takeRows(m: Matrix, index: readonly number[]): Matrix {
  const out = new Float64Array(index.length * m.cols);
  index.forEach((r, i) => out.set(m.data.subarray(r * m.cols, (r + 1) * m.cols), i * m.cols));
  return matrix(index.length, m.cols, out);
}

export function headFor(kind: TaskKind): Head {
  return kind === 'classification' ? 'softmax' : kind === 'binary' ? 'sigmoid' : 'cumulative';
}

export interface ModelShape {
  readonly family: Family;
  readonly head: Head;
  readonly inputDim: number;
  /** Output labels (grades for `cumulative`, 2 for `sigmoid`). */
  readonly classes: number;
  /** Hidden units of the MLP; 0 for linear. */
  readonly hidden: number;
}

/** Where each parameter block sits in the flat parameter vector. */
export interface Layout {
  /** Width of the body's output: K logits for softmax, one score otherwise. */
  readonly out: number;
  readonly w1: number;
  readonly b1: number;
  readonly w2: number;
  /** -1 when the head has no output bias (cumulative: the thresholds play that role). */
  readonly b2: number;
  /** Raw threshold parameters (cumulative only), -1 otherwise. */
  readonly theta: number;
  readonly size: number;
}

export function layout(s: ModelShape): Layout {
  const out = s.head === 'softmax' ? s.classes : 1;
  let at = 0;
  const take = (n: number) => {
    const start = at;
    at += n;
    return start;
  };
  const outBias = s.head !== 'cumulative';
  if (s.family === 'linear') {
    const w2 = take(s.inputDim * out);
    const b2 = outBias ? take(out) : -1;
    const theta = s.head === 'cumulative' ? take(s.classes - 1) : -1;
    return { out, w1: -1, b1: -1, w2, b2, theta, size: at };
  }
  const w1 = take(s.inputDim * s.hidden);
  const b1 = take(s.hidden);
  const w2 = take(s.hidden * out);
  const b2 = outBias ? take(out) : -1;
  const theta = s.head === 'cumulative' ? take(s.classes - 1) : -1;
  return { out, w1, b1, w2, b2, theta, size: at };
}

export interface Standardizer {
  readonly mean: Float64Array;
  /** 1/sd; 1 for a constant column, so it contributes nothing rather than NaN. */
  readonly invStd: Float64Array;
}

export function fitStandardizer(x: Matrix): Standardizer {
  const { rows: n, cols: d, data } = x;
  const mean = new Float64Array(d);
  const invStd = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] = mean[j]! + data[i * d + j]! / n;
  for (let j = 0; j < d; j++) {
    let ss = 0;
    for (let i = 0; i < n; i++) ss += (data[i * d + j]! - mean[j]!) ** 2;
    const sd = Math.sqrt(ss / n);
    invStd[j] = sd > 1e-8 ? 1 / sd : 1;
  }
  return { mean, invStd };
}

export function standardize(x: Matrix, s: Standardizer): Matrix {
  const { rows: n, cols: d } = x;
  const out = new Float64Array(n * d);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < d; j++) out[i * d + j] = (x.data[i * d + j]! - s.mean[j]!) * s.invStd[j]!;
  return matrix(n, d, out);
}

export interface FittedModel {
  readonly shape: ModelShape;
  readonly lambda: number;
  readonly standardizer: Standardizer;
  readonly params: Float64Array;
  readonly iterations: number;
  readonly stop: string;
  /** Training objective at the optimum (weighted log loss + L2). */
  readonly objective: number;
}

const softplus = (v: number) => (v > 30 ? v : Math.log1p(Math.exp(v)));
const sigmoid = (v: number) => (v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v)));

/** Ordered thresholds θ from the raw parameters: θ₀ = a₀, θ_j = θ_{j−1} + softplus(a_j). */
export function thresholds(params: Float64Array, l: Layout, classes: number): Float64Array {
  const t = new Float64Array(classes - 1);
  for (let j = 0; j < classes - 1; j++) {
    const a = params[l.theta + j]!;
    t[j] = j === 0 ? a : t[j - 1]! + softplus(a);
  }
  return t;
}

/** Body output Z [n, out] (and the MLP's hidden activations, for backprop). */
function forwardBody(s: ModelShape, l: Layout, p: Float64Array, xs: Matrix): { z: Float64Array; h?: Float64Array } {
  const n = xs.rows;
  const d = s.inputDim;
  const m = l.out;
  let input = xs.data;
  let width = d;
  let h: Float64Array | undefined;
  if (s.family === 'mlp') {
    const k = s.hidden;
    h = new Float64Array(n * k);
    // Loop order keeps the inner loop on contiguous memory (W1 is [d, k] row-major).
    for (let i = 0; i < n; i++) {
      const row = i * k;
      for (let u = 0; u < k; u++) h[row + u] = p[l.b1 + u]!;
      for (let j = 0; j < d; j++) {
        const xv = input[i * d + j]!;
        if (xv === 0) continue;
        const w = l.w1 + j * k;
        for (let u = 0; u < k; u++) h[row + u] = h[row + u]! + xv * p[w + u]!;
      }
      for (let u = 0; u < k; u++) if (h[row + u]! < 0) h[row + u] = 0;
    }
    input = h;
    width = k;
  }
  const z = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < m; c++) {
      let v = l.b2 >= 0 ? p[l.b2 + c]! : 0;
      for (let j = 0; j < width; j++) v += input[i * width + j]! * p[l.w2 + j * m + c]!;
      z[i * m + c] = v;
    }
  }
  return { z, h };
}

/** Per-class probabilities from the body output, exactly as the exported graph computes them. */
function headProbabilities(s: ModelShape, l: Layout, p: Float64Array, z: Float64Array, n: number): Float64Array {
  const K = s.classes;
  const out = new Float64Array(n * K);
  if (s.head === 'softmax') {
    for (let i = 0; i < n; i++) {
      let mx = -Infinity;
      for (let c = 0; c < K; c++) mx = Math.max(mx, z[i * K + c]!);
      let sum = 0;
      for (let c = 0; c < K; c++) {
        const e = Math.exp(z[i * K + c]! - mx);
        out[i * K + c] = e;
        sum += e;
      }
      for (let c = 0; c < K; c++) out[i * K + c] = out[i * K + c]! / sum;
    }
  } else if (s.head === 'sigmoid') {
    for (let i = 0; i < n; i++) {
      const q = sigmoid(z[i]!);
      out[i * 2] = 1 - q;
      out[i * 2 + 1] = q;
    }
  } else {
    const th = thresholds(p, l, K);
    for (let i = 0; i < n; i++) {
      let prev = 0;
      for (let j = 0; j < K - 1; j++) {
        const c = sigmoid(th[j]! - z[i]!);
        out[i * K + j] = c - prev;
        prev = c;
      }
      out[i * K + K - 1] = 1 - prev;
    }
  }
  return out;
}

export function predictProba(model: FittedModel, x: Matrix): Matrix {
  const l = layout(model.shape);
  const xs = standardize(x, model.standardizer);
  const { z } = forwardBody(model.shape, l, model.params, xs);
  return matrix(x.rows, model.shape.classes, headProbabilities(model.shape, l, model.params, z, x.rows));
}

/**
 * Weighted log loss + (λ/2)·‖weights‖² and its gradient. `w` are per-row weights
 * summing to 1 (class-balanced), so λ means the same at any row count.
 */
export function objective(
  s: ModelShape,
  xs: Matrix,
  y: Int32Array,
  w: Float64Array,
  lambda: number,
): (p: Float64Array, grad: Float64Array) => number {
  const l = layout(s);
  const n = xs.rows;
  const d = s.inputDim;
  const K = s.classes;
  const m = l.out;
  const EPS = 1e-15;
  return (p, grad) => {
    grad.fill(0);
    const { z, h } = forwardBody(s, l, p, xs);
    const dz = new Float64Array(n * m);
    let loss = 0;
    if (s.head === 'softmax') {
      const prob = headProbabilities(s, l, p, z, n);
      for (let i = 0; i < n; i++) {
        const yi = y[i]!;
        loss -= w[i]! * Math.log(Math.max(prob[i * K + yi]!, EPS));
        for (let c = 0; c < K; c++) dz[i * K + c] = w[i]! * (prob[i * K + c]! - (c === yi ? 1 : 0));
      }
    } else if (s.head === 'sigmoid') {
      for (let i = 0; i < n; i++) {
        const zi = z[i]!;
        const yi = y[i]!;
        loss += w[i]! * (softplus(zi) - yi * zi);
        dz[i] = w[i]! * (sigmoid(zi) - yi);
      }
    } else {
      const th = thresholds(p, l, K);
      const dTheta = new Float64Array(K - 1);
      for (let i = 0; i < n; i++) {
        const yi = y[i]!;
        const f = z[i]!;
        // P(y) = σ(θ_y − f) − σ(θ_{y−1} − f), with the outer cumulative probabilities fixed at 1 and 0.
        const cHi = yi < K - 1 ? sigmoid(th[yi]! - f) : 1;
        const cLo = yi > 0 ? sigmoid(th[yi - 1]! - f) : 0;
        const gHi = yi < K - 1 ? cHi * (1 - cHi) : 0;
        const gLo = yi > 0 ? cLo * (1 - cLo) : 0;
        const prob = Math.max(cHi - cLo, EPS);
        loss -= w[i]! * Math.log(prob);
        const k = -w[i]! / prob;
        dz[i] = k * (-gHi + gLo);
        if (yi < K - 1) dTheta[yi] = dTheta[yi]! + k * gHi;
        if (yi > 0) dTheta[yi - 1] = dTheta[yi - 1]! - k * gLo;
      }
      // Chain rule through θ_j = a₀ + Σ_{k≤j, k≥1} softplus(a_k).
      let tail = 0;
      for (let j = K - 2; j >= 0; j--) {
        tail += dTheta[j]!;
        grad[l.theta + j] = j === 0 ? tail : tail * sigmoid(p[l.theta + j]!);
      }
    }

    // Backprop through the body.
    const width = s.family === 'mlp' ? s.hidden : d;
    const input = s.family === 'mlp' ? (h as Float64Array) : xs.data;
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < m; c++) {
        const g = dz[i * m + c]!;
        if (g === 0) continue;
        if (l.b2 >= 0) grad[l.b2 + c] = grad[l.b2 + c]! + g;
        for (let j = 0; j < width; j++) grad[l.w2 + j * m + c] = grad[l.w2 + j * m + c]! + input[i * width + j]! * g;
      }
    }
    if (s.family === 'mlp') {
      const k = s.hidden;
      const hd = h as Float64Array;
      const gh = new Float64Array(k);
      for (let i = 0; i < n; i++) {
        let any = false;
        for (let u = 0; u < k; u++) {
          let g = 0;
          if (hd[i * k + u]! > 0) for (let c = 0; c < m; c++) g += dz[i * m + c]! * p[l.w2 + u * m + c]!;
          gh[u] = g;
          if (g !== 0) any = true;
          grad[l.b1 + u] = grad[l.b1 + u]! + g;
        }
        if (!any) continue;
        for (let j = 0; j < d; j++) {
          const xv = xs.data[i * d + j]!;
          const w = l.w1 + j * k;
          for (let u = 0; u < k; u++) grad[w + u] = grad[w + u]! + xv * gh[u]!;
        }
      }
    }

    // L2 on the weight matrices only: biases and thresholds carry the class priors and stay free.
    let reg = 0;
    const penalise = (start: number, count: number) => {
      for (let q = start; q < start + count; q++) {
        reg += p[q]! * p[q]!;
        grad[q] = grad[q]! + lambda * p[q]!;
      }
    };
    penalise(l.w2, width * m);
    if (s.family === 'mlp') penalise(l.w1, d * s.hidden);
    return loss + 0.5 * lambda * reg;
  };
}

/** Balanced class weights: each class present gets equal total weight; rows sum to 1. */
export function balancedWeights(y: Int32Array, classes: number): Float64Array {
  const counts = new Array<number>(classes).fill(0);
  for (const c of y) counts[c] = counts[c]! + 1;
  const present = counts.filter((c) => c > 0).length;
  return Float64Array.from(y, (c) => 1 / (present * counts[c]!));
}

export interface FitOptions {
  readonly lambda: number;
  readonly seed: number;
  /** @default FIT_TOLERANCE.maxIterations */
  readonly maxIterations?: number;
}

/**
 * When a fit stops. Linear models (smooth, strictly convex): at a stationary point, every gradient
 * component ≤ 1e-7 (the row weights sum to 1, so that is a fixed scale at any row count); stopping at
 * 1e-8 relative improvement, as before, left the logistic weights 6e-6 from the Newton solution and
 * gradients near 5e-5 on the POCUS features, for 1.5-3× fewer iterations. The MLP's ReLUs make its
 * objective non-smooth: its optimum sits on kinks where the gradient does not vanish (it stalls near
 * 1e-3), so it stops when a step improves the objective by less than 1e-10 relative, which leaves it
 * within 1e-7 of a local minimum (about 2× the iterations of 1e-8; 1e-12 often ran into the cap).
 * test/unit/training/experts-known-solutions.test.ts checks both rules.
 */
export const FIT_TOLERANCE = {
  gradient: 1e-7,
  /** Relative improvement per step below which a fit stops: a rounding guard for linear models only. */
  relative: { linear: 1e-15, mlp: 1e-10 },
  maxIterations: 1000,
} as const;

function initialParams(s: ModelShape, l: Layout, y: Int32Array, w: Float64Array, seed: number): Float64Array {
  const p = new Float64Array(l.size);
  if (s.family === 'mlp') {
    // Glorot-uniform, seeded, so the same data and seed give the same network on every machine.
    const rand = mulberry32(seed);
    const a1 = Math.sqrt(6 / (s.inputDim + s.hidden));
    for (let q = 0; q < s.inputDim * s.hidden; q++) p[l.w1 + q] = (rand() * 2 - 1) * a1;
    // A small positive bias keeps ReLUs alive at the start.
    for (let u = 0; u < s.hidden; u++) p[l.b1 + u] = 0.01;
    const a2 = Math.sqrt(6 / (s.hidden + l.out));
    for (let q = 0; q < s.hidden * l.out; q++) p[l.w2 + q] = (rand() * 2 - 1) * a2;
  }
  if (s.head === 'cumulative') {
    // Start the thresholds at the logits of the weighted cumulative grade frequencies.
    const K = s.classes;
    const freq = new Array<number>(K).fill(0);
    y.forEach((c, i) => (freq[c] = freq[c]! + w[i]!));
    let cum = 0;
    let prev = 0;
    for (let j = 0; j < K - 1; j++) {
      cum += freq[j]!;
      const q = Math.min(1 - 1e-3, Math.max(1e-3, cum));
      const theta = Math.log(q / (1 - q));
      if (j === 0) p[l.theta] = theta;
      else {
        const gap = Math.max(theta - prev, 1e-2);
        p[l.theta + j] = Math.log(Math.expm1(gap)); // softplus⁻¹
      }
      prev = j === 0 ? theta : prev + Math.max(theta - prev, 1e-2);
    }
  }
  return p;
}

/** Fits one model on (x, y): standardisation from these rows, class-balanced weights, L-BFGS. */
export function fitModel(shape: ModelShape, x: Matrix, y: Int32Array, opts: FitOptions): FittedModel {
  if (x.cols !== shape.inputDim) throw new RangeError(`model expects ${shape.inputDim} inputs, data has ${x.cols}`);
  const standardizer = fitStandardizer(x);
  const xs = standardize(x, standardizer);
  const w = balancedWeights(y, shape.classes);
  const l = layout(shape);
  const f = objective(shape, xs, y, w, opts.lambda);
  const r = minimizeLbfgs(f, initialParams(shape, l, y, w, opts.seed), {
    maxIterations: opts.maxIterations ?? FIT_TOLERANCE.maxIterations,
    gradientTolerance: FIT_TOLERANCE.gradient,
    relativeTolerance: FIT_TOLERANCE.relative[shape.family],
  });
  return {
    shape,
    lambda: opts.lambda,
    standardizer,
    params: r.x,
    iterations: r.iterations,
    stop: r.stop,
    objective: r.value,
  };
}

/**
 * The model as float32, the precision it is exported at: predictions of the
 * rounded model are what onnxruntime must reproduce.
 */
export function toFloat32(model: FittedModel): FittedModel {
  const round = (a: Float64Array) => Float64Array.from(a, Math.fround);
  return {
    ...model,
    params: round(model.params),
    standardizer: { mean: round(model.standardizer.mean), invStd: round(model.standardizer.invStd) },
  };
}

/**
 * Linear models only: the weight of each (standardised) input on each output
 * column, for cards and for checking a model points the right way.
 */
export function linearWeights(model: FittedModel): { weights: Float64Array; out: number } {
  if (model.shape.family !== 'linear') throw new Error('linearWeights: not a linear model');
  const l = layout(model.shape);
  return { weights: model.params.slice(l.w2, l.w2 + model.shape.inputDim * l.out), out: l.out };
}

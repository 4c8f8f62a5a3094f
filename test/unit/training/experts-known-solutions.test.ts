/**
 * The expert trainer against answers computed without it: every objective's gradient against central
 * finite differences; the logistic and softmax fits against a Newton solution written here from the
 * textbook formulas (and a closed form); L-BFGS's convergence at the returned point; the family
 * selection rule on both sides of its 0.01 margin. If one of these fails, the numbers in the cards
 * are not the numbers of the model they describe.
 */
import { mulberry32 } from '../../../training/onnx/graph';
import { minimizeLbfgs } from '../../../training/experts/lbfgs';
import {
  balancedWeights,
  FIT_TOLERANCE,
  fitModel,
  fitStandardizer,
  layout,
  matrix,
  objective,
  predictProba,
  standardize,
  type Head,
  type Matrix,
  type ModelShape,
} from '../../../training/experts/model';
import { chooseFamily, trainExpert, type TrainingSet } from '../../../training/experts/train';

/** n rows of d standard-normal features, a label from a noisy linear rule over K classes. */
function problem(seed: number, n: number, d: number, K: number): { x: Matrix; y: Int32Array } {
  const rand = mulberry32(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const x = matrix(n, d);
  const y = new Int32Array(n);
  const w = Array.from({ length: K }, () => Array.from({ length: d }, normal));
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) x.data[i * d + j] = normal() * (1 + j) + j;
    // Ordinal classes: one score cut at quantile-ish thresholds; nominal: argmax of noisy class scores.
    const s = w.map((wc) => wc.reduce((a, v, j) => a + v * x.data[i * d + j]!, 0) / (1 + d) + 1.5 * normal());
    y[i] = s.indexOf(Math.max(...s));
  }
  return { x, y };
}

function randomParams(size: number, seed: number, scale = 0.5): Float64Array {
  const rand = mulberry32(seed);
  return Float64Array.from({ length: size }, () => (rand() * 2 - 1) * scale);
}

/** Largest |analytic − central difference| over every parameter, relative to max(1, |analytic|). */
function gradientError(f: (p: Float64Array, g: Float64Array) => number, p: Float64Array): number {
  const g = new Float64Array(p.length);
  f(p, g);
  const scratch = new Float64Array(p.length);
  let worst = 0;
  const h = 1e-6;
  for (let q = 0; q < p.length; q++) {
    const plus = Float64Array.from(p);
    const minus = Float64Array.from(p);
    plus[q] = plus[q]! + h;
    minus[q] = minus[q]! - h;
    const numeric = (f(plus, scratch) - f(minus, scratch)) / (2 * h);
    worst = Math.max(worst, Math.abs(numeric - g[q]!) / Math.max(1, Math.abs(g[q]!)));
  }
  return worst;
}

const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe('objective gradients against central finite differences', () => {
  const cases: { head: Head; classes: number }[] = [
    { head: 'softmax', classes: 3 },
    { head: 'sigmoid', classes: 2 },
    { head: 'cumulative', classes: 4 },
  ];
  for (const { head, classes } of cases) {
    for (const family of ['linear', 'mlp'] as const) {
      it(`${family} with a ${head} head (λ = 0.3)`, () => {
        // Prepare
        const { x, y } = problem(3, 40, 5, classes);
        const shape: ModelShape = { family, head, inputDim: 5, classes, hidden: family === 'mlp' ? 6 : 0 };
        const xs = standardize(x, fitStandardizer(x));
        const f = objective(shape, xs, y, balancedWeights(y, classes), 0.3);
        // Random weights, so no ReLU sits at its kink and no threshold gap is at its floor.
        const p = randomParams(layout(shape).size, 17);

        // Act
        const err = gradientError(f, p);

        // Assess: central differences at h = 1e-6 agree to ~1e-8; a wrong term is off by O(1).
        expect(err).toBeLessThan(1e-6);
      });
    }
  }

  it('finite differences do catch a wrong gradient (the check can fail)', () => {
    const { x, y } = problem(3, 40, 5, 2);
    const shape: ModelShape = { family: 'linear', head: 'sigmoid', inputDim: 5, classes: 2, hidden: 0 };
    const f = objective(shape, standardize(x, fitStandardizer(x)), y, balancedWeights(y, 2), 0.3);
    const broken = (p: Float64Array, g: Float64Array) => {
      const v = f(p, g);
      g[0] = g[0]! * 1.01;
      return v;
    };
    expect(gradientError(broken, randomParams(layout(shape).size, 17))).toBeGreaterThan(1e-4);
  });
});

// ---------------------------------------------------------------------------
// Reference solutions, independent of model.ts: the parameters are [W (d×K row-major), b (K)] on
// standardised inputs, the objective Σ wᵢ·(−log pᵢ,yᵢ) + (λ/2)‖W‖², solved by Newton's method with the
// exact Hessian and a dense linear solve.
// ---------------------------------------------------------------------------

function solve(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i]!]);
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[piv]![c]!)) piv = r;
    [m[c], m[piv]] = [m[piv]!, m[c]!];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const k = m[r]![c]! / m[c]![c]!;
      for (let j = c; j <= n; j++) m[r]![j] = m[r]![j]! - k * m[c]![j]!;
    }
  }
  return m.map((row, i) => row[n]! / row[i]!);
}

/**
 * Binary logistic regression by Newton/IRLS: θ = [w (d), b]. Gradient Σ wᵢ(σ(zᵢ) − yᵢ)·[xᵢ, 1] + λ[w, 0],
 * Hessian Σ wᵢσ(1−σ)·[xᵢ,1][xᵢ,1]ᵀ + λ·diag(1…1, 0).
 */
function newtonLogistic(xs: Matrix, y: Int32Array, w: Float64Array, lambda: number): { w: number[]; b: number } {
  const d = xs.cols;
  const theta = new Array<number>(d + 1).fill(0);
  for (let iter = 0; iter < 50; iter++) {
    const g = new Array<number>(d + 1).fill(0);
    const H = Array.from({ length: d + 1 }, () => new Array<number>(d + 1).fill(0));
    for (let i = 0; i < xs.rows; i++) {
      const row = [...xs.data.subarray(i * d, (i + 1) * d), 1];
      const z = row.reduce((s, v, j) => s + v * theta[j]!, 0);
      const p = 1 / (1 + Math.exp(-z));
      for (let j = 0; j <= d; j++) {
        g[j] = g[j]! + w[i]! * (p - y[i]!) * row[j]!;
        for (let k = 0; k <= d; k++) H[j]![k] = H[j]![k]! + w[i]! * p * (1 - p) * row[j]! * row[k]!;
      }
    }
    for (let j = 0; j < d; j++) {
      g[j] = g[j]! + lambda * theta[j]!;
      H[j]![j] = H[j]![j]! + lambda;
    }
    const step = solve(H, g);
    for (let j = 0; j <= d; j++) theta[j] = theta[j]! - step[j]!;
    if (maxAbs(step) < 1e-14) break;
  }
  return { w: theta.slice(0, d), b: theta[d]! };
}

/**
 * Multinomial (softmax) regression by Newton. The last class's bias is fixed at 0 (softmax is unchanged
 * by a common shift of the biases, and the biases are unpenalised, so only their differences are
 * determined); the weights are determined, since the L2 term makes Σ_c W_c = 0 at the optimum.
 */
function newtonSoftmax(
  xs: Matrix,
  y: Int32Array,
  w: Float64Array,
  lambda: number,
  K: number,
): { W: number[][]; b: number[] } {
  const d = xs.cols;
  const P = d * K + (K - 1); // W[j][c] at j*K + c, then b_0..b_{K−2}
  const theta = new Array<number>(P).fill(0);
  const probs = (row: number[]) => {
    const z = Array.from(
      { length: K },
      (_, c) => row.reduce((s, v, j) => s + v * theta[j * K + c]!, 0) + (c < K - 1 ? theta[d * K + c]! : 0),
    );
    const mx = Math.max(...z);
    const e = z.map((v) => Math.exp(v - mx));
    const sum = e.reduce((s, v) => s + v, 0);
    return e.map((v) => v / sum);
  };
  // ∂z_c/∂θ: index of W[j][c] for each input j, and of b_c (none for the last class).
  const slots = (c: number, row: number[]) => [
    ...row.map((v, j) => [j * K + c, v] as const),
    ...(c < K - 1 ? [[d * K + c, 1] as const] : []),
  ];
  for (let iter = 0; iter < 50; iter++) {
    const g = new Array<number>(P).fill(0);
    const H = Array.from({ length: P }, () => new Array<number>(P).fill(0));
    for (let i = 0; i < xs.rows; i++) {
      const row = [...xs.data.subarray(i * d, (i + 1) * d)];
      const p = probs(row);
      for (let c = 0; c < K; c++) {
        const r = p[c]! - (c === y[i] ? 1 : 0);
        for (const [q, v] of slots(c, row)) g[q] = g[q]! + w[i]! * r * v;
        for (let c2 = 0; c2 < K; c2++) {
          const h = w[i]! * p[c]! * ((c === c2 ? 1 : 0) - p[c2]!);
          for (const [q, v] of slots(c, row))
            for (const [q2, v2] of slots(c2, row)) H[q]![q2] = H[q]![q2]! + h * v * v2;
        }
      }
    }
    for (let q = 0; q < d * K; q++) {
      g[q] = g[q]! + lambda * theta[q]!;
      H[q]![q] = H[q]![q]! + lambda;
    }
    const step = solve(H, g);
    for (let q = 0; q < P; q++) theta[q] = theta[q]! - step[q]!;
    if (maxAbs(step) < 1e-14) break;
  }
  return {
    W: Array.from({ length: d }, (_, j) => theta.slice(j * K, (j + 1) * K)),
    b: [...theta.slice(d * K), 0],
  };
}

describe('fits against reference solutions', () => {
  it('logistic regression matches Newton/IRLS to 1e-6 in weights and probabilities', () => {
    // Prepare
    const { x, y } = problem(5, 120, 4, 2);
    const lambda = 0.05;
    const shape: ModelShape = { family: 'linear', head: 'sigmoid', inputDim: 4, classes: 2, hidden: 0 };
    const xs = standardize(x, fitStandardizer(x));
    const ref = newtonLogistic(xs, y, balancedWeights(y, 2), lambda);

    // Act: the trainer's own fit, with its default stopping rule.
    const m = fitModel(shape, x, y, { lambda, seed: 1 });

    // Assess
    const l = layout(shape);
    for (let j = 0; j < 4; j++) expect(Math.abs(m.params[l.w2 + j]! - ref.w[j]!)).toBeLessThan(1e-6);
    expect(Math.abs(m.params[l.b2]! - ref.b)).toBeLessThan(1e-6);
    const p = predictProba(m, x);
    let worst = 0;
    for (let i = 0; i < x.rows; i++) {
      const z = ref.w.reduce((s, v, j) => s + v * xs.data[i * 4 + j]!, ref.b);
      worst = Math.max(worst, Math.abs(p.data[i * 2 + 1]! - 1 / (1 + Math.exp(-z))));
    }
    expect(worst).toBeLessThan(1e-6);
    expect(m.stop).toBe('gradient');
  });

  it('softmax regression matches multinomial Newton to 1e-6 in weights and probabilities', () => {
    // Prepare
    const K = 3;
    const { x, y } = problem(7, 150, 4, K);
    const lambda = 0.1;
    const shape: ModelShape = { family: 'linear', head: 'softmax', inputDim: 4, classes: K, hidden: 0 };
    const xs = standardize(x, fitStandardizer(x));
    const ref = newtonSoftmax(xs, y, balancedWeights(y, K), lambda, K);

    // Act
    const m = fitModel(shape, x, y, { lambda, seed: 1 });

    // Assess: weights directly; biases up to their common shift (centred); probabilities.
    const l = layout(shape);
    for (let j = 0; j < 4; j++) {
      for (let c = 0; c < K; c++) expect(Math.abs(m.params[l.w2 + j * K + c]! - ref.W[j]![c]!)).toBeLessThan(1e-6);
    }
    const centred = (b: number[]) => b.map((v) => v - b.reduce((s, u) => s + u, 0) / b.length);
    const got = centred(Array.from({ length: K }, (_, c) => m.params[l.b2 + c]!));
    centred(ref.b).forEach((v, c) => expect(Math.abs(got[c]! - v)).toBeLessThan(1e-6));
    const p = predictProba(m, x);
    let worst = 0;
    for (let i = 0; i < x.rows; i++) {
      const z = ref.b.map((b, c) => ref.W.reduce((s, wj, j) => s + wj[c]! * xs.data[i * 4 + j]!, b));
      const mx = Math.max(...z);
      const e = z.map((v) => Math.exp(v - mx));
      const sum = e.reduce((s, v) => s + v, 0);
      for (let c = 0; c < K; c++) worst = Math.max(worst, Math.abs(p.data[i * K + c]! - e[c]! / sum));
    }
    expect(worst).toBeLessThan(1e-6);
  });

  it('an unregularised one-hot logistic fit reproduces the closed form: the weighted positive rate of each cell', () => {
    // Prepare: one binary feature; with λ = 0 the MLE probability in each cell is the class-weighted
    // share of positives there, whatever the optimiser does.
    const cells = [
      { x: 0, pos: 6, neg: 14 },
      { x: 1, pos: 21, neg: 9 },
    ];
    const xs: number[] = [];
    const ys: number[] = [];
    for (const c of cells) {
      for (let i = 0; i < c.pos + c.neg; i++) {
        xs.push(c.x);
        ys.push(i < c.pos ? 1 : 0);
      }
    }
    const x = matrix(xs.length, 1, Float64Array.from(xs));
    const y = Int32Array.from(ys);
    const totalPos = cells.reduce((s, c) => s + c.pos, 0);
    const totalNeg = cells.reduce((s, c) => s + c.neg, 0);

    // Act
    const m = fitModel({ family: 'linear', head: 'sigmoid', inputDim: 1, classes: 2, hidden: 0 }, x, y, {
      lambda: 0,
      seed: 1,
    });

    // Assess: balanced weights give each positive 1/(2·27) and each negative 1/(2·23).
    const p = predictProba(m, matrix(2, 1, Float64Array.from([0, 1])));
    cells.forEach((c, i) => {
      const wp = c.pos / totalPos;
      const wn = c.neg / totalNeg;
      expect(Math.abs(p.data[i * 2 + 1]! - wp / (wp + wn))).toBeLessThan(1e-6);
    });
  });
});

describe('L-BFGS convergence', () => {
  const shapeFor = (family: 'linear' | 'mlp', head: Head) => {
    const K = head === 'sigmoid' ? 2 : head === 'softmax' ? 3 : 4;
    const shape: ModelShape = { family, head, inputDim: 5, classes: K, hidden: family === 'mlp' ? 8 : 0 };
    return { K, shape };
  };
  for (const head of ['softmax', 'sigmoid', 'cumulative'] as const) {
    it(`linear ${head}: stops at a stationary point (every gradient component ≤ FIT_TOLERANCE.gradient)`, () => {
      // Prepare
      const { K, shape } = shapeFor('linear', head);
      const { x, y } = problem(9, 100, 5, K);

      // Act: the trainer's fit (its own stopping rule).
      const m = fitModel(shape, x, y, { lambda: 0.1, seed: 2 });

      // Assess: the gradient recomputed at the returned parameters, independently of the optimiser's state.
      const f = objective(shape, standardize(x, m.standardizer), y, balancedWeights(y, K), 0.1);
      const g = new Float64Array(m.params.length);
      expect(Math.abs(f(m.params, g) - m.objective)).toBeLessThan(1e-12);
      expect(m.stop).toBe('gradient');
      expect(maxAbs(g)).toBeLessThan(FIT_TOLERANCE.gradient);
    });

    it(`mlp ${head}: stops at a local minimum (no step along the gradient or random directions lowers it by 1e-7)`, () => {
      // Prepare: ReLU kinks keep the MLP's gradient from vanishing at its optimum, so the check is
      // the definition of a local minimum, probed at several step lengths: no probe lowers the
      // objective by more than 1e-7 relative (far below what any metric on a few hundred clips resolves).
      const { K, shape } = shapeFor('mlp', head);
      const { x, y } = problem(9, 100, 5, K);

      // Act
      const m = fitModel(shape, x, y, { lambda: 0.1, seed: 2 });

      // Assess
      const f = objective(shape, standardize(x, m.standardizer), y, balancedWeights(y, K), 0.1);
      const g = new Float64Array(m.params.length);
      const f0 = f(m.params, g);
      expect(m.stop).not.toBe('max-iterations');
      const rand = mulberry32(5);
      const directions = [
        Float64Array.from(g, (v) => -v / Math.max(maxAbs(g), 1e-300)),
        ...Array.from({ length: 20 }, () => Float64Array.from(g, () => rand() * 2 - 1)),
      ];
      const scratch = new Float64Array(g.length);
      for (const d of directions) {
        for (const t of [1e-5, 1e-4, 1e-3, 1e-2]) {
          const p = Float64Array.from(m.params, (v, q) => v + t * d[q]!);
          expect(f(p, scratch)).toBeGreaterThan(f0 - 1e-7 * Math.max(1, f0));
        }
      }
    });
  }

  it('minimises a convex quadratic to its known minimum', () => {
    // f(x) = ½ Σ aᵢ(xᵢ − cᵢ)², condition number 1e3: the minimum is c.
    const a = [1, 10, 100, 1000, 3];
    const c = [1, -2, 3, -4, 5];
    const r = minimizeLbfgs(
      (x, g) => {
        let v = 0;
        for (let i = 0; i < a.length; i++) {
          g[i] = a[i]! * (x[i]! - c[i]!);
          v += 0.5 * a[i]! * (x[i]! - c[i]!) ** 2;
        }
        return v;
      },
      new Float64Array(5),
      { gradientTolerance: 1e-10, relativeTolerance: 0 },
    );
    expect(r.stop).toBe('gradient');
    r.x.forEach((v, i) => expect(Math.abs(v - c[i]!)).toBeLessThan(1e-10));
  });
});

describe('the model-selection rule (the MLP must beat the linear model by minGain = 0.01)', () => {
  it('on both sides of the margin, for a higher-is-better and a lower-is-better metric', () => {
    // Higher is better (balanced accuracy, AUC): the metrics arrive rounded to 4 decimals.
    expect(chooseFamily({ linear: 0.7, mlp: 0.7099 }, true, 0.01)).toBe('linear');
    expect(chooseFamily({ linear: 0.7, mlp: 0.71 }, true, 0.01)).toBe('mlp'); // exactly the margin: reached
    expect(chooseFamily({ linear: 0.7, mlp: 0.7101 }, true, 0.01)).toBe('mlp');
    expect(chooseFamily({ linear: 0.7, mlp: 0.69 }, true, 0.01)).toBe('linear');
    // Lower is better (MAE).
    expect(chooseFamily({ linear: 0.7, mlp: 0.6901 }, false, 0.01)).toBe('linear');
    expect(chooseFamily({ linear: 0.7, mlp: 0.69 }, false, 0.01)).toBe('mlp');
    expect(chooseFamily({ linear: 0.7, mlp: 0.71 }, false, 0.01)).toBe('linear');
    // Undefined metrics.
    expect(chooseFamily({ linear: NaN, mlp: 0.6 }, true, 0.01)).toBe('mlp');
    expect(chooseFamily({ linear: 0.6, mlp: NaN }, true, 0.01)).toBe('linear');
  });

  it('trainExpert applies it to the candidates’ own CV numbers: just above the gain → MLP, just below → linear', () => {
    // Prepare: a nonlinear (XOR-like) rule, where the MLP beats the linear model by a wide margin.
    const rand = mulberry32(21);
    const n = 160;
    const x = matrix(n, 3);
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const a = rand() * 2 - 1;
      const b = rand() * 2 - 1;
      x.data.set([a, b, rand()], i * 3);
      y[i] = a * b > 0 ? 1 : 0;
    }
    const set: TrainingSet = {
      x,
      y,
      groups: Array.from({ length: n }, (_, i) => `g${i % 40}`),
      folds: null,
      sources: null,
      rowNames: Array.from({ length: n }, (_, i) => `row ${i}`),
    };
    // One λ per family (no inner CV) keeps this to a few seconds; the rule does not depend on the grid.
    const config = {
      kind: 'binary' as const,
      labels: ['0', '1'],
      seed: 1,
      bootstrap: 0,
      folds: 4,
      linearLambdas: [0.1],
      mlpLambdas: [0.01],
    };
    const probe = trainExpert(set, config);
    const gain = probe.selection.values.mlp! - probe.selection.values.linear!;
    expect(gain).toBeGreaterThan(0.05);
    expect(probe.chosen).toBe('mlp');

    // Act / Assess: the same data and folds, the margin moved to either side of the observed gain.
    expect(trainExpert(set, { ...config, minGain: gain - 1e-4 }).chosen).toBe('mlp');
    expect(trainExpert(set, { ...config, minGain: gain + 1e-4 }).chosen).toBe('linear');
  });
});

/**
 * Limited-memory BFGS with a backtracking (Armijo) line search, for the experts'
 * full-batch objectives. Why L-BFGS rather than Adam: the regularised logistic
 * models are convex, and L-BFGS reaches their unique optimum in a few dozen
 * iterations instead of hundreds, so the fitted weights do not depend on a
 * learning-rate schedule and nested cross-validation stays within seconds. For
 * the small MLP it is what scikit-learn uses on small data sets too.
 *
 * Deterministic: no randomness, plain float64 arithmetic in a fixed order.
 */

/** Writes the gradient into `grad` and returns the objective at `x`. */
export type Objective = (x: Float64Array, grad: Float64Array) => number;

export interface LbfgsOptions {
  /** @default 200 */
  readonly maxIterations?: number;
  /** Pairs of (step, gradient change) kept. @default 10 */
  readonly memory?: number;
  /** Stop when the largest gradient component is below this. @default 1e-6 */
  readonly gradientTolerance?: number;
  /** Stop when the objective improves by less than this, relative to max(1, |f|). @default 1e-10 */
  readonly relativeTolerance?: number;
}

export interface LbfgsResult {
  readonly x: Float64Array;
  readonly value: number;
  readonly iterations: number;
  /** Why it stopped: a tolerance was met, or the iteration/line-search budget ran out. */
  readonly stop: 'gradient' | 'objective' | 'max-iterations' | 'line-search';
}

const dot = (a: Float64Array, b: Float64Array): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

const maxAbs = (a: Float64Array): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
};

export function minimizeLbfgs(f: Objective, x0: Float64Array, opts: LbfgsOptions = {}): LbfgsResult {
  const maxIter = opts.maxIterations ?? 200;
  const m = opts.memory ?? 10;
  const gtol = opts.gradientTolerance ?? 1e-6;
  const ftol = opts.relativeTolerance ?? 1e-10;
  const n = x0.length;

  let x = Float64Array.from(x0);
  let g = new Float64Array(n);
  let fx = f(x, g);
  if (!Number.isFinite(fx)) throw new RangeError(`objective is ${fx} at the starting point`);
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  const d = new Float64Array(n);
  const alpha = new Array<number>(m).fill(0);
  const xNew = new Float64Array(n);
  let gNew = new Float64Array(n);

  for (let iter = 0; iter < maxIter; iter++) {
    if (maxAbs(g) < gtol) return { x, value: fx, iterations: iter, stop: 'gradient' };

    // Two-loop recursion: d = -H·g, with H0 = γI scaled by the newest pair.
    for (let i = 0; i < n; i++) d[i] = -g[i]!;
    for (let k = S.length - 1; k >= 0; k--) {
      const a = rho[k]! * dot(S[k]!, d);
      alpha[k] = a;
      const y = Y[k]!;
      for (let i = 0; i < n; i++) d[i] = d[i]! - a * y[i]!;
    }
    if (S.length > 0) {
      const last = S.length - 1;
      const gamma = dot(S[last]!, Y[last]!) / dot(Y[last]!, Y[last]!);
      for (let i = 0; i < n; i++) d[i] = d[i]! * gamma;
    }
    for (let k = 0; k < S.length; k++) {
      const b = rho[k]! * dot(Y[k]!, d);
      const s = S[k]!;
      const a = alpha[k]!;
      for (let i = 0; i < n; i++) d[i] = d[i]! + (a - b) * s[i]!;
    }
    let slope = dot(g, d);
    if (!(slope < 0)) {
      // Not a descent direction (possible on the non-convex MLP): restart from steepest descent.
      S.length = 0;
      Y.length = 0;
      rho.length = 0;
      for (let i = 0; i < n; i++) d[i] = -g[i]!;
      slope = dot(g, d);
    }

    // First step (or after a restart): scale so the step has unit length; later the quasi-Newton step is right-sized.
    let t = S.length === 0 ? 1 / Math.sqrt(-slope) : 1;
    let fNew = NaN;
    let accepted = false;
    for (let tries = 0; tries < 40; tries++) {
      for (let i = 0; i < n; i++) xNew[i] = x[i]! + t * d[i]!;
      fNew = f(xNew, gNew);
      if (Number.isFinite(fNew) && fNew <= fx + 1e-4 * t * slope) {
        accepted = true;
        break;
      }
      t *= 0.5;
    }
    if (!accepted) return { x, value: fx, iterations: iter, stop: 'line-search' };

    const s = new Float64Array(n);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      s[i] = xNew[i]! - x[i]!;
      y[i] = gNew[i]! - g[i]!;
    }
    const sy = dot(s, y);
    // Only pairs with positive curvature keep H positive definite; Armijo alone does not guarantee it.
    if (sy > 1e-12 * Math.max(1, dot(y, y))) {
      if (S.length === m) {
        S.shift();
        Y.shift();
        rho.shift();
      }
      S.push(s);
      Y.push(y);
      rho.push(1 / sy);
    }
    const improvement = fx - fNew;
    x = Float64Array.from(xNew);
    [g, gNew] = [gNew, g];
    fx = fNew;
    if (improvement < ftol * Math.max(1, Math.abs(fx))) {
      return { x, value: fx, iterations: iter + 1, stop: 'objective' };
    }
  }
  return { x, value: fx, iterations: maxIter, stop: 'max-iterations' };
}

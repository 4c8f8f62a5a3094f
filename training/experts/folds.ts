/**
 * Grouped cross-validation folds. When the labels file has a fold column (the
 * POCUS export does: training/datasets/pocus.ts), those folds are used as they are,
 * so every number reported on that data set shares one patient-disjoint split.
 * Otherwise whole groups are dealt into k folds deterministically.
 */

/**
 * Deals whole groups into k folds: largest groups first, each into the fold
 * whose class mix it unbalances least (ties: fewer rows, then lower index). A
 * StratifiedGroupKFold without randomness (the same idea as assignFolds in
 * training/datasets/pocus.ts, for any labels), so folds never depend on a seed.
 */
export function groupKFold(groups: readonly string[], y: ArrayLike<number>, classes: number, k: number): number[] {
  const counts = new Map<string, number[]>();
  groups.forEach((g, i) => {
    const c = counts.get(g) ?? new Array<number>(classes).fill(0);
    c[y[i]!] = c[y[i]!]! + 1;
    counts.set(g, c);
  });
  const total = new Array<number>(classes).fill(0);
  for (const c of counts.values()) c.forEach((v, j) => (total[j] = total[j]! + v));
  const size = (c: number[]) => c.reduce((s, v) => s + v, 0);
  const folds = Array.from({ length: k }, () => new Array<number>(classes).fill(0));
  const order = [...counts.entries()].sort((a, b) => size(b[1]) - size(a[1]) || a[0].localeCompare(b[0]));
  const assignment = new Map<string, number>();
  for (const [group, c] of order) {
    let best = 0;
    let bestCost = Infinity;
    for (let f = 0; f < k; f++) {
      let cost = 0;
      for (let g = 0; g < k; g++) {
        for (let j = 0; j < classes; j++) {
          const v = folds[g]![j]! + (g === f ? c[j]! : 0);
          cost += (v - total[j]! / k) ** 2;
        }
      }
      cost += 1e-6 * size(folds[f]!) + 1e-9 * f;
      if (cost < bestCost) {
        bestCost = cost;
        best = f;
      }
    }
    c.forEach((v, j) => (folds[best]![j] = folds[best]![j]! + v));
    assignment.set(group, best);
  }
  return groups.map((g) => assignment.get(g)!);
}

/** The distinct fold ids, ascending. */
export function foldIds(folds: readonly number[]): number[] {
  return [...new Set(folds)].sort((a, b) => a - b);
}

/** Row indices split into (train, test) for each fold id. */
export function splits(folds: readonly number[]): { fold: number; train: number[]; test: number[] }[] {
  return foldIds(folds).map((fold) => ({
    fold,
    train: folds.flatMap((f, i) => (f !== fold ? [i] : [])),
    test: folds.flatMap((f, i) => (f === fold ? [i] : [])),
  }));
}

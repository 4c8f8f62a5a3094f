/**
 * The one interface of the lung-ultrasound collections (POCUS: pocus.ts, COVID-BLUES: covid-blues.ts)
 * and the one definition of which item is in which fold of the combined training set.
 *
 * Folds of the combined set (`loadCollections` in collections.ts): fold f holds a group of whole POCUS *sources* and a
 * group of whole COVID-BLUES *patients*. So the fold-f extractor (trained without fold f) never saw
 * the sources it scores in POCUS (cross-source), nor the patients it scores in COVID-BLUES (patients
 * held out, same device). COVID-BLUES held out as a whole source needs one more extractor, trained on
 * POCUS only (train_extractor.py's leave-one-source-out step). Every POCUS source is held out exactly
 * once; sources that share a patient/series group are kept in one fold.
 */
import type { Biomarker } from '../../core/biomarkers';

export const DIAGNOSES = ['covid', 'pneumonia', 'healthy'] as const;
export type Diagnosis = (typeof DIAGNOSES)[number];

export const DATASETS = ['pocus', 'covid-blues'] as const;
export type DatasetName = (typeof DATASETS)[number];

export interface LusItem {
  dataset: DatasetName;
  /** File name without extension. */
  name: string;
  /** Path relative to its collection's data directory. */
  file: string;
  kind: 'video' | 'image';
  probe: string;
  /** Patient/series group: items of one group never straddle a train/test split. */
  group: string;
  /** Publishing source / site, for leave-one-source-out evaluation. */
  source: string;
  fold: number;
  /** The collection's own label text (POCUS `Label`; COVID-BLUES the mapped diagnosis or "unlabelled"). */
  label: string;
  /** null: not labelled for diagnosis (see the collection's mapping). */
  diagnosis: Diagnosis | null;
  /** abnormal (1) vs healthy (0), or null. */
  triage: 0 | 1 | null;
  /** Lung severity score 0..3, or null when the item has none. */
  severity: number | null;
  /** 1, 0, or null when the flag is not annotated. */
  biomarkers: Record<Biomarker, 0 | 1 | null>;
  license: string;
}

export interface CollectionDirs {
  readonly pocus: string;
  /** Absent: POCUS only (the 1.1.x training set). */
  readonly blues?: string;
}

/**
 * Assigns whole groups to k folds, deterministically: largest groups first, each into the fold whose
 * stratum mix it unbalances least (ties: fewest items, then lowest fold index).
 */
export function assignFoldsBy(items: readonly { group: string; stratum: string }[], k: number): Map<string, number> {
  const strata = [...new Set(items.map((i) => i.stratum))].sort();
  const groups = new Map<string, number[]>();
  for (const it of items) {
    const c = groups.get(it.group) ?? strata.map(() => 0);
    c[strata.indexOf(it.stratum)]!++;
    groups.set(it.group, c);
  }
  const total = strata.map(() => 0);
  for (const c of groups.values()) c.forEach((v, s) => (total[s]! += v));
  const size = (c: number[]) => c.reduce((a, b) => a + b, 0);
  const folds = Array.from({ length: k }, () => strata.map(() => 0));
  const order = [...groups.entries()].sort((a, b) => size(b[1]) - size(a[1]) || a[0].localeCompare(b[0]));
  const assignment = new Map<string, number>();
  const n = items.length;
  for (const [group, counts] of order) {
    let best = 0;
    let bestCost = Infinity;
    for (let f = 0; f < k; f++) {
      let cost = 0;
      for (let g = 0; g < k; g++) {
        for (let s = 0; s < strata.length; s++) {
          const v = folds[g]![s]! + (g === f ? counts[s]! : 0);
          cost += (v - total[s]! / k) ** 2;
        }
      }
      cost += 1e-6 * (size(folds[f]!) / n) + 1e-9 * f;
      if (cost < bestCost) {
        bestCost = cost;
        best = f;
      }
    }
    counts.forEach((v, s) => (folds[best]![s]! += v));
    assignment.set(group, best);
  }
  return assignment;
}

/** Sources that share a patient/series group, merged (union-find): they must be held out together. */
export function sourceClusters(items: readonly { group: string; source: string }[]): Map<string, string> {
  const parent = new Map<string, string>();
  const find = (s: string): string => {
    const p = parent.get(s) ?? s;
    if (p === s) return s;
    const r = find(p);
    parent.set(s, r);
    return r;
  };
  const byGroup = new Map<string, string>();
  for (const it of items) {
    if (!parent.has(it.source)) parent.set(it.source, it.source);
    const other = byGroup.get(it.group);
    if (other === undefined) byGroup.set(it.group, it.source);
    else {
      const [a, b] = [find(other), find(it.source)].sort();
      if (a !== b) parent.set(b!, a!);
    }
  }
  return new Map([...parent.keys()].map((s) => [s, find(s)]));
}

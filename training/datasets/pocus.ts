/**
 * The public POCUS lung-ultrasound collection (../shared/data/pocus): its
 * labels, its patient/source groups and the cross-validation folds.
 *
 * This is the one definition of "which clip is in which fold": the extractor's
 * training (Python), the experts' cross-validation and the end-to-end baseline
 * all read the folds written from here, so every reported number uses the same
 * patient-disjoint split.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { BIOMARKERS, type Biomarker } from '../../core/biomarkers';
import { parseCsv } from '../csv';

import { DIAGNOSES, type Diagnosis, type LusItem } from './items';

export { DIAGNOSES, type Diagnosis };

/** metadata.csv column holding each biomarker's clip-level flag (1, 0 or empty = not annotated). */
export const BIOMARKER_COLUMNS: Record<Biomarker, string> = {
  a_lines: 'A-lines',
  b_lines: 'B-lines',
  pleural_irregularity: 'Pleural line irregularities',
  consolidation: 'Consolidations',
  effusion: 'Effusion',
  healthy_pattern: 'Healthy',
};

/** Flags in metadata.csv that the extractor does not learn, and why. */
export const DROPPED_FLAGS: Record<string, string> = {
  'Air bronchogram': 'no positive clip in the collection',
};

const LABEL_TO_DIAGNOSIS: Record<string, Diagnosis> = {
  'COVID-19': 'covid',
  'Bacterial pneumonia': 'pneumonia',
  'Viral pneumonia': 'pneumonia',
  regular: 'healthy',
};

/**
 * A POCUS item: LusItem narrowed. `name` is the file name as metadata.csv spells it, `source` its "Source ID";
 * every item is labelled for diagnosis and triage (severity and biomarker flags may be missing).
 */
export interface PocusItem extends LusItem {
  dataset: 'pocus';
  diagnosis: Diagnosis;
  triage: 0 | 1;
}

const CLASS_PREFIX = /^(?:Vir_or_Pneu|Cov|Pneu|Reg|Vir)[-_]/;
/** A trailing clip/figure index: vid12, clip3, file4, mov5, v2, img6, Image1, Video_001, Fig15A, paper6, _1. */
const INDEX_TOKEN = /[-_]?(?:vid|clip|file|mov|v|img|image|video|fig|paper)?[-_]?\d+[a-z]?$/i;

/**
 * The group of a file name: the source stem with its class prefix and clip index
 * removed, so that every clip of one patient or one published series lands in
 * one group. The explicit rules cover series whose names differ in more than an
 * index (checked against the collection in test/unit/pocus-dataset.test.ts).
 * Class prefixes are dropped first, so e.g. the healthy and the pneumonia clips
 * of northumbria set 3 (likely one patient) are one group.
 */
export function groupOf(name: string): string {
  const rest = name.replace(CLASS_PREFIX, '');
  const rules: [RegExp, (m: RegExpMatchArray) => string][] = [
    [/^Atlas\b/i, () => 'pocusatlas'],
    [/^northumbria_(\d+)_(set\d+)/i, (m) => `northumbria-${m[1]}-${m[2]!.toLowerCase()}`],
    [/^northumbria_(\d+)/i, (m) => `northumbria-${m[1]}`],
    [/^Avi_(Image|Video)/i, (m) => `avi-${m[1]!.toLowerCase()}`],
    // Teaching images with descriptive names and no series index: one group, to be safe.
    [/^Avi[-_]/i, () => 'avi-figures'],
    [/^Image_\d/i, () => 'charlotte-pat1'],
    [/^pat(\d+)Image/i, (m) => `charlotte-pat${m[1]}`],
    [/^liftl/i, () => 'liftl-case3'],
    [/^recommendations/i, () => 'recommendations'],
    [/^whitelung/i, () => 'whitelung'],
    [/SSRN/i, () => 'ssrn-unsmooth-pleural-line'],
  ];
  for (const [re, f] of rules) {
    const m = rest.match(re);
    if (m) return f(m);
  }
  let stem = rest;
  for (let prev = ''; prev !== stem;) {
    prev = stem;
    stem = stem.replace(INDEX_TOKEN, '').replace(/[-_](?:crop|trimmed)$/i, '');
  }
  return stem.toLowerCase().replace(/[^a-z0-9]+/g, '-') || name.toLowerCase();
}

/**
 * Assigns whole groups to k folds, deterministically: largest groups first, each
 * into the fold whose diagnosis mix it unbalances least (ties: fewest items,
 * then lowest fold index). A StratifiedGroupKFold without randomness, so the
 * folds are the same on every machine and in every language that reads them.
 */
export function assignFolds(items: { group: string; diagnosis: Diagnosis }[], k: number): Map<string, number> {
  const groups = new Map<string, Record<Diagnosis, number>>();
  for (const it of items) {
    const c = groups.get(it.group) ?? { covid: 0, pneumonia: 0, healthy: 0 };
    c[it.diagnosis]++;
    groups.set(it.group, c);
  }
  const total: Record<Diagnosis, number> = { covid: 0, pneumonia: 0, healthy: 0 };
  for (const c of groups.values()) for (const d of DIAGNOSES) total[d] += c[d];
  const size = (c: Record<Diagnosis, number>) => DIAGNOSES.reduce((s, d) => s + c[d], 0);
  const folds = Array.from({ length: k }, () => ({ covid: 0, pneumonia: 0, healthy: 0 }) as Record<Diagnosis, number>);
  const order = [...groups.entries()].sort((a, b) => size(b[1]) - size(a[1]) || a[0].localeCompare(b[0]));
  const assignment = new Map<string, number>();
  const n = items.length;
  for (const [group, counts] of order) {
    let best = 0;
    let bestCost = Infinity;
    for (let f = 0; f < k; f++) {
      const fold = folds[f]!;
      // Squared deviation of every fold's class counts from 1/k of the total, after placing the group here.
      let cost = 0;
      for (let g = 0; g < k; g++) {
        for (const d of DIAGNOSES) {
          const v = folds[g]![d] + (g === f ? counts[d] : 0);
          cost += (v - total[d] / k) ** 2;
        }
      }
      cost += 1e-6 * (size(fold) / n) + 1e-9 * f;
      if (cost < bestCost) {
        bestCost = cost;
        best = f;
      }
    }
    for (const d of DIAGNOSES) folds[best]![d] += counts[d];
    assignment.set(group, best);
  }
  return assignment;
}

function flag(value: string | undefined, column: string, name: string): 0 | 1 | null {
  const v = (value ?? '').trim();
  if (v === '') return null;
  if (v === '0' || v === '1') return Number(v) as 0 | 1;
  throw new Error(`metadata.csv: "${name}" has ${JSON.stringify(v)} in column "${column}"; accepted: 0, 1 or empty.`);
}

function indexFiles(dataDir: string): Map<string, string> {
  const byName = new Map<string, string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (!/\.(csv|md)$/i.test(entry.name)) {
        const stem = entry.name.replace(/\.[^.]+$/, '');
        if (byName.has(stem)) throw new Error(`Two files share the stem "${stem}": ${byName.get(stem)} and ${p}.`);
        byName.set(stem, path.relative(dataDir, p));
      }
    }
  };
  walk(dataDir);
  return byName;
}

export const DEFAULT_FOLDS = 5;

/** Reads metadata.csv and pairs each row with its file, labels, group, source and fold. */
export function loadPocus(dataDir: string, k = DEFAULT_FOLDS): PocusItem[] {
  const table = parseCsv(readFileSync(path.join(dataDir, 'metadata.csv'), 'utf8'));
  const files = indexFiles(dataDir);
  const items = table.rows.map(({ values: r, line }) => {
    const name = r['Filename'] ?? '';
    const file = files.get(name);
    if (!file) throw new Error(`metadata.csv line ${line}: no file named "${name}.*" under ${dataDir}.`);
    const label = r['Label'] ?? '';
    const diagnosis = LABEL_TO_DIAGNOSIS[label];
    if (!diagnosis) {
      throw new Error(
        `metadata.csv line ${line}: unknown label ${JSON.stringify(label)}; accepted: ${Object.keys(LABEL_TO_DIAGNOSIS).join(', ')}.`,
      );
    }
    const sev = (r['Lung Severity Score'] ?? '').trim();
    if (sev !== '' && !/^[0-3]$/.test(sev)) {
      throw new Error(`metadata.csv line ${line}: severity ${JSON.stringify(sev)} is not 0..3.`);
    }
    const biomarkers = Object.fromEntries(
      BIOMARKERS.map((b) => [b, flag(r[BIOMARKER_COLUMNS[b]], BIOMARKER_COLUMNS[b], name)]),
    ) as Record<Biomarker, 0 | 1 | null>;
    return {
      dataset: 'pocus',
      name,
      file,
      kind: (r['Type'] ?? '').toLowerCase() === 'image' ? 'image' : 'video',
      probe: (r['Probe'] ?? '').toLowerCase(),
      group: groupOf(name),
      source: (r['Source ID'] ?? '').trim() || 'unknown',
      fold: -1,
      label,
      diagnosis,
      triage: diagnosis === 'healthy' ? 0 : 1,
      severity: sev === '' ? null : Number(sev),
      biomarkers,
      license: r['License'] ?? '',
    } satisfies PocusItem;
  });
  const folds = assignFolds(items, k);
  for (const it of items) it.fold = folds.get(it.group)!;
  return items;
}

/** True when the directory looks like the POCUS collection (has metadata.csv). */
export function isPocusDir(dir: string): boolean {
  try {
    return statSync(path.join(dir, 'metadata.csv')).isFile();
  } catch {
    return false;
  }
}

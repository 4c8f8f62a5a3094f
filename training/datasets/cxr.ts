/**
 * The chest X-ray collection (../shared/data/cxr: read from there, never copied into the project):
 * its labels.csv, validated row by row, the per-finding targets of the X-ray extractor's outputs
 * (XRAY_FINDINGS) and patient-grouped folds.
 *
 * Sources (README): `ieee8023` and `figure1` are adults from many hospitals; `kermany-pediatric` is
 * children aged 1–5 from one hospital. Labels are confounded with source, so each target is only
 * defined where the question can be asked honestly (mostly within a source):
 *
 * - pneumonia: `label` covid or pneumonia → 1, normal → 0; other (ARDS, lipoid pneumonia, "No
 *   finding" without a normal label) and unlabelled → null. Normals are almost all pediatric: the
 *   honest reading is within Kermany (normal vs pneumonia).
 * - viral (among pneumonias only, else null), from the collection's own `finding` words
 *   (VIRAL_FINDINGS below): viral, COVID-19 included → 1; bacterial → 0; Pneumocystis (a fungus) and
 *   an unspecified "Pneumonia" → null. Kermany says "Pneumonia/Viral" or "Pneumonia/Bacterial".
 * - covid (adult sources only, else null): covid → 1, other pneumonia → 0; normal, other and
 *   unlabelled → null (COVID vs *other pneumonia*, not vs a healthy chest).
 *
 * group: the patient id (several images per patient never straddle a split). Folds: k, whole patient
 * groups per fold, stratified by source + label (assignFoldsBy in items.ts), deterministic.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import type { XrayFinding } from '../../core/modality';
import { parsePayload } from '../../core/zod-parse';
import { parseCsv } from '../csv';
import { assignFoldsBy } from './items';

export const CXR_SOURCES = ['ieee8023', 'figure1', 'kermany-pediatric'] as const;
export type CxrSource = (typeof CXR_SOURCES)[number];
export const CXR_LABELS = ['covid', 'pneumonia', 'normal', 'other', 'unlabelled'] as const;
export type CxrLabel = (typeof CXR_LABELS)[number];

/** Adult collections: the only ones where COVID vs other pneumonia is asked. */
export const ADULT_SOURCES: readonly CxrSource[] = ['ieee8023', 'figure1'];

export const CXR_FOLDS = 5;

/** One row of labels.csv (columns the project uses; sex/age are read by nobody). */
export const CxrRow = z.object({
  file: z
    .string()
    .min(1)
    .refine((f) => !path.isAbsolute(f) && !f.split(/[\\/]/).includes('..'), 'must be a path inside the collection'),
  source: z.enum(CXR_SOURCES),
  patient: z.string().min(1),
  label: z.enum(CXR_LABELS),
  finding: z.string(),
  view: z.string(),
  license: z.string().min(1),
  reference: z.string(),
});
export type CxrRow = z.infer<typeof CxrRow>;

export interface CxrItem {
  /** Path relative to the collection directory. */
  file: string;
  /** File name without directory and extension, unique in the collection (the .npy name). */
  name: string;
  source: CxrSource;
  /** Patient group. */
  group: string;
  label: CxrLabel;
  finding: string;
  view: string;
  license: string;
  fold: number;
  targets: Record<XrayFinding, 0 | 1 | null>;
}

/**
 * `finding` words of a pneumonia → viral (1) or bacterial (0). Matched case-insensitively on the whole
 * text (after "Pneumonia/" for Kermany); anything else (Pneumocystis, plain "Pneumonia") is null.
 */
export const VIRAL_FINDINGS: { pattern: RegExp; viral: 0 | 1 }[] = [
  { pattern: /covid-19|sars-cov-2/i, viral: 1 },
  { pattern: /\bviral\b|influenza|varicella|sars\b|mers\b/i, viral: 1 },
  { pattern: /bacterial|klebsiella|legionella|streptococcus|mycoplasma|staphylococcus|e\.?\s?coli/i, viral: 0 },
];

/** Viral (1) / bacterial (0) / unknown (null) for one pneumonia finding text. */
export function viralFromFinding(finding: string): 0 | 1 | null {
  for (const rule of VIRAL_FINDINGS) if (rule.pattern.test(finding)) return rule.viral;
  return null;
}

/** The three targets of one row (the rules in the file comment). */
export function cxrTargets(row: Pick<CxrRow, 'source' | 'label' | 'finding'>): Record<XrayFinding, 0 | 1 | null> {
  const pneumonic = row.label === 'covid' || row.label === 'pneumonia';
  const adult = ADULT_SOURCES.includes(row.source);
  return {
    pneumonia: pneumonic ? 1 : row.label === 'normal' ? 0 : null,
    viral: row.label === 'covid' ? 1 : row.label === 'pneumonia' ? viralFromFinding(row.finding) : null,
    covid: adult && pneumonic ? (row.label === 'covid' ? 1 : 0) : null,
  };
}

/** Parses labels.csv text; a bad row fails with its line number and what was wrong. */
export function parseCxrLabels(text: string, what = 'labels.csv'): CxrRow[] {
  const table = parseCsv(text);
  const missing = CxrRow.keyof().options.filter((c) => !table.header.includes(c));
  if (missing.length > 0)
    throw new Error(`${what}: missing column(s) ${missing.join(', ')}; expected ${CxrRow.keyof().options.join(', ')}`);
  return table.rows.map((r) => parsePayload(CxrRow, r.values, `${what} line ${r.line}`));
}

/**
 * Rows → items with targets and k patient-grouped folds stratified by source + label.
 *
 * The collection lists a few images twice under two patient ids (one ieee8023 case filed twice): such an
 * image is kept once, and the patients that share an image are one group (one person, so never split).
 * Two rows of one file that disagree on source, label or finding are refused.
 */
export function cxrItems(rows: readonly CxrRow[], k = CXR_FOLDS): CxrItem[] {
  // Patient ids are per collection; prefixing the source keeps two collections' ids apart.
  const patient = (r: CxrRow) => `${r.source}:${r.patient}`;
  const parent = new Map<string, string>();
  const find = (p: string): string => {
    const q = parent.get(p) ?? p;
    if (q === p) return p;
    const root = find(q);
    parent.set(p, root);
    return root;
  };
  const byFile = new Map<string, CxrRow>();
  const names = new Map<string, string>();
  for (const r of rows) {
    const first = byFile.get(r.file);
    if (first) {
      if (first.source !== r.source || first.label !== r.label || first.finding !== r.finding)
        throw new Error(`labels.csv: ${r.file} is listed twice with different source, label or finding`);
      const [a, b] = [find(patient(first)), find(patient(r))].sort();
      if (a !== b) parent.set(b!, a!);
      continue;
    }
    byFile.set(r.file, r);
    const name = path.basename(r.file).replace(/\.[^.]+$/, '');
    const other = names.get(name);
    if (other !== undefined) throw new Error(`labels.csv: two images named ${name} (${other}, ${r.file})`);
    names.set(name, r.file);
  }
  const unique = [...byFile.values()];
  const group = (r: CxrRow) => find(patient(r));
  const folds = assignFoldsBy(
    unique.map((r) => ({ group: group(r), stratum: `${r.source}/${r.label}` })),
    k,
  );
  return unique.map((r) => ({
    file: r.file,
    name: path.basename(r.file).replace(/\.[^.]+$/, ''),
    source: r.source,
    group: group(r),
    label: r.label,
    finding: r.finding,
    view: r.view,
    license: r.license,
    fold: folds.get(group(r))!,
    targets: cxrTargets(r),
  }));
}

/** The collection in `dataDir` (its labels.csv) as items. */
export function loadCxr(dataDir: string, k = CXR_FOLDS): CxrItem[] {
  const file = path.join(dataDir, 'labels.csv');
  return cxrItems(parseCxrLabels(readFileSync(file, 'utf8'), file), k);
}

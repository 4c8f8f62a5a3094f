/**
 * The X-ray experts' tasks and their labels file: one CSV over the chest X-ray collection (cxr.ts),
 * one column per task, empty where the task does not ask about that image (`sonomark experts train`
 * skips rows with an empty target). Each task stays where the collection's README says the question
 * can be asked honestly, because labels are confounded with source:
 *
 * - `pneumonia` (expert xray-pneumonia): pneumonia vs normal, pediatric (Kermany) only; from the
 *   loader's `pneumonia` target (normal → 0, pneumonia → 1).
 * - `bacterial_viral` (xray-bacterial-viral): bacterial vs viral pneumonia, pediatric (Kermany) only;
 *   from the loader's `viral` target, which reads the collection's finding words (VIRAL_FINDINGS:
 *   "Pneumonia/Bacterial" → 0, "Pneumonia/Viral" → 1).
 * - `covid` (xray-covid): COVID-19 vs other pneumonia, adult sources (ieee8023, figure1); from the
 *   loader's `covid` target (other pneumonia → 0, covid → 1; normal, other and unlabelled: no label).
 *
 * Key columns: `sha256` of the image bytes (what features records and the cache are keyed by) and
 * `file` (absolute). `group` (patient), `fold` (the loader's patient-grouped folds, the one split every
 * X-ray number shares) and `source` are the trainer's --group-column, --fold-column, --source-column.
 * No patient identifier beyond the collection's own pseudonymous patient ids.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { XrayFinding } from '../../core/modality';
import { sha256Hex } from '../../core/scan-id';
import type { CxrItem, CxrSource } from './cxr';

export interface XrayExpertTask {
  /** Expert name (manifest entry and result key). */
  readonly name: string;
  /** Column of the labels file. */
  readonly column: string;
  /** The loader target the column is read from. */
  readonly target: XrayFinding;
  /** Sources where the task is asked; other sources' rows get an empty cell. */
  readonly sources: readonly CxrSource[];
  /** `--classes` for the trainer: target value → output label (binary: negative first). */
  readonly classes: string;
  readonly positive: string;
  /** One line for the card's intended use. */
  readonly question: string;
}

export const XRAY_EXPERT_TASKS: readonly XrayExpertTask[] = [
  {
    name: 'xray-pneumonia',
    column: 'pneumonia',
    target: 'pneumonia',
    sources: ['kermany-pediatric'],
    classes: '0=normal,1=pneumonia',
    positive: 'pneumonia',
    question: 'pneumonia vs a normal chest on pediatric (age 1 to 5) AP chest X-rays',
  },
  {
    name: 'xray-bacterial-viral',
    column: 'bacterial_viral',
    target: 'viral',
    sources: ['kermany-pediatric'],
    classes: '0=bacterial,1=viral',
    positive: 'viral',
    question: 'viral vs bacterial pneumonia on pediatric (age 1 to 5) AP chest X-rays that show a pneumonia',
  },
  {
    name: 'xray-covid',
    column: 'covid',
    target: 'covid',
    sources: ['ieee8023', 'figure1'],
    classes: '0=other-pneumonia,1=covid',
    positive: 'covid',
    question: 'COVID-19 vs other pneumonia on adult chest X-rays that show a pneumonia',
  },
];

export const XRAY_LABELS_HEADER = ['file', 'name', 'sha256', 'group', 'source', 'fold'] as const;

export interface XrayLabelRow {
  readonly file: string;
  readonly name: string;
  readonly sha256: string;
  readonly group: string;
  readonly source: CxrSource;
  readonly fold: number;
  /** Per task column: '0', '1' or '' (not asked). */
  readonly targets: Record<string, string>;
}

/** The task cell of one item: its loader target where the task is asked, else empty. */
export function taskCell(task: XrayExpertTask, item: Pick<CxrItem, 'source' | 'targets'>): string {
  if (!task.sources.includes(item.source)) return '';
  const v = item.targets[task.target];
  return v === null ? '' : String(v);
}

/** Items → label rows; `sha256Of` hashes an image (by its path relative to the collection). */
export function xrayLabelRows(
  items: readonly CxrItem[],
  dataDir: string,
  sha256Of: (file: string) => string = (file) => sha256Hex(readFileSync(path.join(dataDir, file))),
  tasks: readonly XrayExpertTask[] = XRAY_EXPERT_TASKS,
): XrayLabelRow[] {
  return items.map((item) => ({
    file: path.resolve(dataDir, item.file),
    name: item.name,
    sha256: sha256Of(item.file),
    group: item.group,
    source: item.source,
    fold: item.fold,
    targets: Object.fromEntries(tasks.map((t) => [t.column, taskCell(t, item)])),
  }));
}

/** RFC 4180 quoting where a cell needs it (paths may hold commas). */
function cell(v: string | number): string {
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function xrayLabelsCsv(rows: readonly XrayLabelRow[], tasks: readonly XrayExpertTask[] = XRAY_EXPERT_TASKS) {
  const header = [...XRAY_LABELS_HEADER, ...tasks.map((t) => t.column)];
  const lines = rows.map((r) =>
    [r.file, r.name, r.sha256, r.group, r.source, r.fold, ...tasks.map((t) => r.targets[t.column] ?? '')]
      .map(cell)
      .join(','),
  );
  return [header.join(','), ...lines].join('\n') + '\n';
}

/** Rows per task and class, for the log and the docs: {task: {label: n}}. */
export function xrayTaskCounts(
  rows: readonly XrayLabelRow[],
  tasks: readonly XrayExpertTask[] = XRAY_EXPERT_TASKS,
): Record<string, Record<string, number>> {
  return Object.fromEntries(
    tasks.map((t) => {
      const labels = Object.fromEntries(t.classes.split(',').map((p) => p.split('=') as [string, string]));
      const counts: Record<string, number> = {};
      for (const r of rows) {
        const v = r.targets[t.column];
        if (v) counts[labels[v]!] = (counts[labels[v]!] ?? 0) + 1;
      }
      return [t.name, counts];
    }),
  );
}

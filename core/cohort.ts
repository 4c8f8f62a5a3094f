/**
 * A cohort run's report, pure: one row per item (what was done, the current output of each
 * expert), the CSV of those rows, and the JSON summary (counts, failures with reasons, the
 * distribution of each expert's outputs, and the agreement between each expert's previous and
 * current version on the scans that hold both). Local mode (`sonomark cohort run`) and a cloud
 * cohort report both build it from stored results, so the two report the same numbers.
 */
import type { ExpertOutput, ExpertResult, ProblemDetail } from './schemas';

/** What a cohort run did with one item. */
export type CohortAction =
  /** Already scored by every current expert version: nothing to do (a resumed run). */
  | 'done'
  /** Had features for the current extractor: only the experts ran. */
  | 'scored'
  /** Had no features for the current extractor: decoded, extracted and scored. */
  | 'analysed'
  | 'failed';

export interface CohortItemOutcome {
  /** The input as the cohort names it (a path, or an object key). */
  readonly item: string;
  readonly scanId: string | null;
  readonly action: CohortAction;
  readonly error?: ProblemDetail;
  /** Every stored result of the scan (all versions) and which version is current per expert. */
  readonly results: readonly ExpertResult[];
  readonly current: Readonly<Record<string, string>>;
  readonly extractor?: string;
}

export const COHORT_CSV = 'cohort.csv';
export const COHORT_SUMMARY = 'summary.json';
/** The cohort's HTML page (core/report), beside cohort.csv and summary.json in the cloud and locally. */
export const COHORT_REPORT_HTML = 'report.html';
/** `kind` of summary.json: how `sonomark report DIR` recognises a cohort output folder. */
export const COHORT_SUMMARY_KIND = 'sonomark-cohort-summary';

const semverDesc = (a: string, b: string): number => {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pb[i] ?? 0) - (pa[i] ?? 0);
  return 0;
};

/** The headline two versions must share to agree: the label, or the grade. */
export function headline(o: ExpertOutput): string {
  return o.kind === 'ordinal' ? String(o.score) : o.label;
}

/** The output as one number: the label's probability, the expected grade, the positive probability. */
export function scalar(o: ExpertOutput): number {
  if (o.kind === 'binary') return o.probability;
  if (o.kind === 'ordinal') return o.expected;
  return o.probabilities[o.label] ?? 0;
}

function currentResult(o: CohortItemOutcome, expert: string): ExpertResult | undefined {
  return o.results.find((r) => r.expert.name === expert && r.expert.version === o.current[expert]);
}

/** The version stored just below the current one, when there is one. */
function previousResult(o: CohortItemOutcome, expert: string): ExpertResult | undefined {
  const cur = o.current[expert];
  if (!cur) return undefined;
  return o.results
    .filter((r) => r.expert.name === expert && semverDesc(r.expert.version, cur) > 0)
    .sort((a, b) => semverDesc(a.expert.version, b.expert.version))[0];
}

function csvCell(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

const round4 = (v: number) => Math.round(v * 1e4) / 1e4;

/** The per-scan CSV: item, scanId, action, error, extractor, then version/headline/value per expert. */
export function cohortCsv(outcomes: readonly CohortItemOutcome[], experts: readonly string[]): string {
  const header = ['item', 'scanId', 'action', 'errorCode', 'error', 'extractor'];
  for (const e of experts) header.push(`${e}.version`, `${e}.output`, `${e}.value`);
  const lines = [header.join(',')];
  for (const o of outcomes) {
    const row: (string | number | null | undefined)[] = [
      o.item,
      o.scanId,
      o.action,
      o.error?.code,
      o.error?.message,
      o.extractor,
    ];
    for (const e of experts) {
      const r = currentResult(o, e);
      row.push(r?.expert.version, r ? headline(r.output) : undefined, r ? round4(scalar(r.output)) : undefined);
    }
    lines.push(row.map(csvCell).join(','));
  }
  return lines.join('\n') + '\n';
}

export interface ExpertDistribution {
  readonly version: string | null;
  readonly scans: number;
  /** Scans per label or grade of the current version. */
  readonly counts: Record<string, number>;
  /** The one-number output (probability or expected grade): quartiles and mean. */
  readonly value: { min: number; p25: number; median: number; p75: number; max: number; mean: number } | null;
}

export interface VersionAgreement {
  readonly previous: string;
  readonly current: string;
  readonly scans: number;
  readonly sameHeadline: number;
  readonly agreement: number;
  readonly meanAbsDiff: number;
}

export interface CohortSummary {
  readonly kind: typeof COHORT_SUMMARY_KIND;
  readonly generatedAt: string;
  readonly source: string;
  readonly dataDir?: string;
  /** The site the cohort ran for (its scans' partition); absent in summaries written before it was recorded (site `local`). */
  readonly site?: string;
  /** The run's id: the cohort execution's name, or local `sonomark cohort run`'s own; its files are under cohorts/{site}/{runId}/. */
  readonly runId?: string;
  readonly models: { readonly extractor: string; readonly experts: readonly string[] };
  readonly counts: Record<CohortAction | 'items', number>;
  readonly failures: readonly { item: string; scanId: string | null; code: string; message: string }[];
  readonly distributions: Record<string, ExpertDistribution>;
  readonly agreement: Record<string, readonly VersionAgreement[]>;
  readonly scanIds: readonly string[];
  readonly seconds: number;
}

function quantile(sorted: readonly number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (pos - lo);
}

export function summarizeCohort(
  outcomes: readonly CohortItemOutcome[],
  meta: {
    source: string;
    dataDir?: string;
    site?: string;
    runId?: string;
    models: CohortSummary['models'];
    experts: readonly string[];
    seconds: number;
    now?: Date;
  },
): CohortSummary {
  const counts = { items: outcomes.length, done: 0, scored: 0, analysed: 0, failed: 0 };
  for (const o of outcomes) counts[o.action]++;
  const distributions: Record<string, ExpertDistribution> = {};
  const agreement: Record<string, VersionAgreement[]> = {};
  for (const e of meta.experts) {
    const current = outcomes.flatMap((o) => {
      const r = o.action === 'failed' ? undefined : currentResult(o, e);
      return r ? [r] : [];
    });
    const values = current.map((r) => scalar(r.output)).sort((a, b) => a - b);
    const byCount: Record<string, number> = {};
    for (const r of current) byCount[headline(r.output)] = (byCount[headline(r.output)] ?? 0) + 1;
    const versions = [...new Set(current.map((r) => r.expert.version))];
    distributions[e] = {
      version: versions.length === 1 ? (versions[0] as string) : versions.length === 0 ? null : versions.join('|'),
      scans: current.length,
      counts: byCount,
      value:
        values.length === 0
          ? null
          : {
              min: round4(values[0] as number),
              p25: round4(quantile(values, 0.25)),
              median: round4(quantile(values, 0.5)),
              p75: round4(quantile(values, 0.75)),
              max: round4(values[values.length - 1] as number),
              mean: round4(values.reduce((a, b) => a + b, 0) / values.length),
            },
    };
    const pairs = new Map<string, { previous: string; current: string; n: number; same: number; diff: number }>();
    for (const o of outcomes) {
      const cur = currentResult(o, e);
      const prev = previousResult(o, e);
      if (!cur || !prev) continue;
      const key = `${prev.expert.version}|${cur.expert.version}`;
      const p = pairs.get(key) ?? {
        previous: prev.expert.version,
        current: cur.expert.version,
        n: 0,
        same: 0,
        diff: 0,
      };
      p.n++;
      if (headline(prev.output) === headline(cur.output)) p.same++;
      p.diff += Math.abs(scalar(prev.output) - scalar(cur.output));
      pairs.set(key, p);
    }
    agreement[e] = [...pairs.values()].map((p) => ({
      previous: p.previous,
      current: p.current,
      scans: p.n,
      sameHeadline: p.same,
      agreement: round4(p.same / p.n),
      meanAbsDiff: round4(p.diff / p.n),
    }));
  }
  return {
    kind: COHORT_SUMMARY_KIND,
    generatedAt: (meta.now ?? new Date()).toISOString(),
    source: meta.source,
    ...(meta.dataDir !== undefined ? { dataDir: meta.dataDir } : {}),
    ...(meta.site !== undefined ? { site: meta.site } : {}),
    ...(meta.runId !== undefined ? { runId: meta.runId } : {}),
    models: meta.models,
    counts,
    failures: outcomes
      .filter((o) => o.action === 'failed')
      .map((o) => ({
        item: o.item,
        scanId: o.scanId,
        code: o.error?.code ?? 'FAILED',
        message: o.error?.message ?? 'failed',
      })),
    distributions,
    agreement,
    scanIds: [...new Set(outcomes.flatMap((o) => (o.scanId ? [o.scanId] : [])))],
    seconds: round4(meta.seconds),
  };
}

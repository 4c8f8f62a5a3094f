/**
 * Synthetic features documents with a KNOWN decision rule, for testing and timing
 * the expert trainer without a trained extractor. Per-frame biomarker series and
 * embeddings are drawn around class-dependent levels and pooled by the real
 * aggregateFrames, so the documents have exactly the shape real ones have.
 *
 * The rule: covid raises B-lines and pleural irregularity, pneumonia raises
 * consolidation, healthy raises A-lines and the healthy pattern; severity (0 for
 * healthy, 1–3 otherwise) follows the B-line level; triage is "not healthy".
 * Nothing here is clinical truth: it only gives the trainer something to recover.
 */
import { BIOMARKERS, type Biomarker } from '../../core/biomarkers';
import { aggregateFrames } from '../../core/features';
import { mulberry32 } from '../onnx/graph';
import { scanIdFromContent, sha256Hex } from '../../core/scan-id';
import type { FeaturesDocument, ModelRef } from '../../core/schemas';

export const SYNTHETIC_DIAGNOSES = ['covid', 'pneumonia', 'healthy'] as const;
export type SyntheticDiagnosis = (typeof SYNTHETIC_DIAGNOSES)[number];

export interface SyntheticRow {
  readonly sha256: string;
  readonly name: string;
  readonly group: string;
  readonly source: string;
  readonly fold: number;
  readonly diagnosis: SyntheticDiagnosis;
  /** 0..3 */
  readonly severity: number;
  /** 1 unless healthy. */
  readonly triage: 0 | 1;
  readonly features: FeaturesDocument;
}

export interface SyntheticOptions {
  /** @default 130 */
  readonly rows?: number;
  readonly seed: number;
  /** @default 32 (the fixture extractor's) */
  readonly embeddingDim?: number;
  readonly extractor: ModelRef;
  /** Half-width of the uniform noise on every level. @default 0.25 */
  readonly noise?: number;
  /** Rows per group (one "patient"; a group has one diagnosis). @default 3 */
  readonly groupSize?: number;
  /** Sources (sites) the groups are spread over, other than the folds' pattern. @default 4 */
  readonly sources?: number;
  /** @default 5 */
  readonly folds?: number;
}

const RAISED: Record<SyntheticDiagnosis, readonly Biomarker[]> = {
  covid: ['b_lines', 'pleural_irregularity'],
  pneumonia: ['consolidation'],
  healthy: ['a_lines', 'healthy_pattern'],
};

/** Embedding coordinates that carry the class too (the rest is noise), as a pooled embedding might. */
export const SYNTHETIC_EMBEDDING_SIGNAL: Record<SyntheticDiagnosis, number> = { covid: 0, pneumonia: 1, healthy: 2 };

export function syntheticRows(opts: SyntheticOptions): SyntheticRow[] {
  const n = opts.rows ?? 130;
  const dim = opts.embeddingDim ?? 32;
  const noise = opts.noise ?? 0.25;
  const groupSize = opts.groupSize ?? 3;
  const sources = opts.sources ?? 4;
  const folds = opts.folds ?? 5;
  const rand = mulberry32(opts.seed);
  const u = (a: number, b: number) => a + (b - a) * rand();
  const clamp = (v: number) => Math.min(1, Math.max(0, v));
  const frames = 8;
  const rows: SyntheticRow[] = [];
  for (let i = 0; i < n; i++) {
    const g = Math.floor(i / groupSize);
    const diagnosis = SYNTHETIC_DIAGNOSES[g % 3]!;
    const level: Record<Biomarker, number> = Object.fromEntries(
      BIOMARKERS.map((b) => [b, clamp((RAISED[diagnosis].includes(b) ? 0.75 : 0.25) + u(-noise, noise))]),
    ) as Record<Biomarker, number>;
    const bio = new Float32Array(frames * BIOMARKERS.length);
    const emb = new Float32Array(frames * dim);
    for (let f = 0; f < frames; f++) {
      BIOMARKERS.forEach((b, j) => (bio[f * BIOMARKERS.length + j] = clamp(level[b] + u(-0.1, 0.1))));
      for (let k = 0; k < dim; k++) {
        const signal = k === SYNTHETIC_EMBEDDING_SIGNAL[diagnosis] ? 1 : 0;
        emb[f * dim + k] = Math.tanh(signal + u(-1, 1));
      }
    }
    const agg = aggregateFrames({ biomarkers: bio, embedding: emb, frames, embeddingDim: dim }, 'ultrasound');
    const sha256 = sha256Hex(`synthetic/${opts.seed}/${i}`);
    // Severity follows the B-line level for sick rows: a monotone rule an ordinal model can recover.
    const severity =
      diagnosis === 'healthy'
        ? 0
        : 1 + Math.min(2, Math.floor(Math.max(0, agg.biomarkers['b_lines']!.mean - 0.2) * 4.5));
    rows.push({
      sha256,
      name: `synthetic-${String(i).padStart(3, '0')}`,
      group: `patient-${g}`,
      source: `site-${g % sources}`,
      fold: g % folds,
      diagnosis,
      severity,
      triage: diagnosis === 'healthy' ? 0 : 1,
      features: {
        schemaVersion: 1,
        scanId: scanIdFromContent('local', 'local', sha256),
        extractor: opts.extractor,
        sampling: {
          strategy: 'uniform',
          maxFrames: 64,
          decodedFrames: frames,
          frameIndices: Array.from({ length: frames }, (_, f) => f),
          width: 128,
          height: 128,
          colorspace: 'gray',
        },
        ...agg,
        runtime: { executionProvider: 'cpu', decodeMs: 0, inferMs: 0 },
        createdAt: '2025-01-01T00:00:00.000Z',
      },
    });
  }
  return rows;
}

/** The rows as a labels CSV with the columns `sonomark experts train` reads (the POCUS export's layout). */
export function syntheticLabelsCsv(rows: readonly SyntheticRow[]): string {
  const head = 'file,name,sha256,group,source,fold,diagnosis,triage,severity';
  const lines = rows.map((r) =>
    [`/synthetic/${r.name}.mp4`, r.name, r.sha256, r.group, r.source, r.fold, r.diagnosis, r.triage, r.severity].join(
      ',',
    ),
  );
  return [head, ...lines].join('\n') + '\n';
}

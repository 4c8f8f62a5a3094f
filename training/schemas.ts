/**
 * The JSON files of training, as zod schemas: what the Python recipe writes
 * (report.json, experiments/TAG.json, loso/<recipe>/times.json, oof.json,
 * parity.json), what the TypeScript side writes (dataset.json, the shipped
 * extractor's metrics JSON, the experts' reports), and a reader that parses a
 * file on every read and names the file in its error.
 *
 * Objects are loose (unknown keys pass through): the recipe adds fields over
 * versions, and a metrics file copies the report whole. Fields the TypeScript
 * reads are typed; a missing or mistyped one is an error naming the file and
 * the field, not an `undefined` three steps later.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { PayloadError } from '../core/errors';
import { ExpertEntry, FeatureBlock, ModelRef, Sha256Hex, TaskKind } from '../core/schemas';
import { parsePayload } from '../core/zod-parse';
import { TrainingDataError } from './experts/errors';

const Auc = z.number().min(0).max(1);
const Ci95 = z.tuple([z.number(), z.number()]);
const Seconds = z.number().nonnegative();

// ---------------------------------------------------------------------------
// training/python/train_extractor.py
// ---------------------------------------------------------------------------

/** The recipe: CONFIG of train_extractor.py plus the opt-in switches (frame_norm, dropout, aux_diagnosis, ema, …). */
export const ExtractorConfig = z
  .object({
    embedding_dim: z.number().int().positive(),
    frame_norm: z.boolean().optional(),
    dropout: z.number().optional(),
    aux_diagnosis: z.number().optional(),
    ema: z.number().optional(),
    extra_conv: z.boolean().optional(),
  })
  .catchall(z.union([z.number(), z.boolean()]));
export type ExtractorConfig = z.infer<typeof ExtractorConfig>;

/** The pretraining choice: with (ssl) or without (nossl) contrastive self-supervised pretraining. */
export const Recipe = z.enum(['ssl', 'nossl']);
export type Recipe = z.infer<typeof Recipe>;

/** Seconds one model took: pretraining (when the recipe has it) and training. */
export const FitTimes = z.looseObject({ ssl_s: Seconds.optional(), train_s: Seconds });
export type FitTimes = z.infer<typeof FitTimes>;

export const BiomarkerCv = z.looseObject({
  positives: z.number().int().nonnegative(),
  annotated: z.number().int().nonnegative(),
  /** null when the out-of-fold clips lack a class. */
  auc: Auc.nullable(),
  auc_ci95: Ci95.nullable(),
  auc_clip_mean: Auc.nullable(),
  auc_per_fold: z.array(Auc.nullable()),
});
export type BiomarkerCv = z.infer<typeof BiomarkerCv>;

/** One recipe cross-validated on the folds of dataset.json. */
export const CvVariant = z.looseObject({
  per_biomarker: z.record(z.string(), BiomarkerCv),
  mean_auc: Auc.nullable(),
  wall_s: Seconds,
  times: z.array(FitTimes.extend({ fold: z.number().int().nonnegative() })),
});
export type CvVariant = z.infer<typeof CvVariant>;

/** `report.json` of a full train_extractor.py run: both CV variants, the kept one, the baseline and the final model. */
export const ExtractorTrainingReport = z.looseObject({
  config: ExtractorConfig,
  seed: z.number().int(),
  hardware: z.looseObject({
    device: z.string(),
    cpu_threads: z.number().int().positive(),
    torch: z.string(),
    python: z.string(),
  }),
  positives: z.record(z.string(), z.number().int().nonnegative()),
  unlearnable: z.array(z.string()),
  dropped_upstream: z.record(z.string(), z.string()),
  folds: z.number().int().min(2),
  /** nossl only with --compare-ssl (every run up to 1.1.x had both). */
  cv: z.looseObject({ nossl: CvVariant.optional(), ssl: CvVariant }),
  kept: Recipe,
  /** The end-to-end baseline: the same backbone trained on the diagnosis directly. */
  e2e: z.looseObject({
    variant: z.enum(['e2e', 'e2e-ssl']),
    times: z.array(FitTimes),
    wall_s: Seconds,
  }),
  final: z.looseObject({ times: FitTimes, parameters: z.number().int().positive() }),
  wall_s: Seconds,
});
export type ExtractorTrainingReport = z.infer<typeof ExtractorTrainingReport>;

/** `experiments/TAG.json` of `train_extractor.py --experiment TAG`: one recipe variant on the same folds. */
export const ExperimentFile = z.looseObject({
  recipe: Recipe,
  config: z.record(z.string(), z.union([z.number(), z.boolean()])),
  /** The run's --seed (recorded since 1.1.1; earlier runs used the default seed). */
  seed: z.number().int().optional(),
  mean_auc: Auc.nullable(),
  wall_s: Seconds,
});
export type ExperimentFile = z.infer<typeof ExperimentFile>;

/** `loso/<recipe>/times.json`: written last by `train_extractor.py --loso`, so it marks a finished set. */
export const LosoTimes = z.looseObject({
  recipe: Recipe,
  config: ExtractorConfig,
  seed: z.number().int(),
  /** The held-out sources, one `source-<s>.onnx` each. */
  sources: z.array(z.string().min(1)).min(1),
  /** reused_fold: the source lies in one fold, whose model (trained without it) was copied, not retrained. */
  times: z.array(FitTimes.extend({ source: z.string(), reused_fold: z.number().int().optional() })),
});
export type LosoTimes = z.infer<typeof LosoTimes>;

const CrossSourceBlock = z.looseObject({
  extractor: z.looseObject({ per_biomarker: z.record(z.string(), BiomarkerCv.partial()), mean_auc: Auc.nullable() }),
});

/** `loso/<recipe>/cross_source.json` of `train_extractor.py --loso`: biomarker AUCs on data the extractor never saw. */
export const CrossSourceFile = z.looseObject({
  recipe: Recipe,
  pocus_cross_source: CrossSourceBlock.extend({ protocol: z.string() }),
  covid_blues_held_out_patients: CrossSourceBlock.extend({ protocol: z.string() }).optional(),
  sources: z.record(z.string(), CrossSourceBlock.extend({ n: z.number().int(), model: z.string() })),
});
export type CrossSourceFile = z.infer<typeof CrossSourceFile>;

/** `oof.json`: out-of-fold predictions of the kept recipe and of the end-to-end baseline. */
export const OofFile = z.looseObject({
  labels: z.array(z.string()),
  diagnoses: z.array(z.string()).min(2),
  items: z.array(z.looseObject({ name: z.string(), fold: z.number().int() })),
  e2e: z.array(
    z.looseObject({
      name: z.string(),
      fold: z.number().int(),
      /** Probabilities in `diagnoses` order. */
      diagnosis: z.array(z.number()),
    }),
  ),
});
export type OofFile = z.infer<typeof OofFile>;

/**
 * `parity.json` beside a trained extractor (and `<name>-<version>.parity.json` in models/): PyTorch's
 * outputs on the first frames of a fixed clip, and the sha256 of the tensor it read.
 */
export const ParityFixture = z.object({
  /** Path of the clip relative to the POCUS data directory. */
  clip: z.string().min(1),
  /** sha256 of the whole clip's uint8 [n,1,S,S] tensor as training read it. */
  tensorSha256: Sha256Hex,
  /** PyTorch outputs on the first `frames` frames. */
  frames: z.number().int().positive(),
  biomarkers: z.array(z.array(z.number())),
  embedding: z.array(z.array(z.number())),
});
export type ParityFixture = z.infer<typeof ParityFixture>;

// ---------------------------------------------------------------------------
// Written by the TypeScript side
// ---------------------------------------------------------------------------

/** `dataset.json` of a training set (training/datasets/export.ts): what the recipe and the reports read. */
export const TrainingSetFile = z.looseObject({
  /** 'pocus', or 'pocus+covid-blues' for both collections (items then carry their `dataset`). */
  dataset: z.enum(['pocus', 'pocus+covid-blues']),
  /** Absolute: the clips the frames were decoded from (parity decodes its clip again from here). */
  dataDir: z.string().min(1),
  size: z.number().int().positive(),
  maxFrames: z.number().int().positive(),
  folds: z.number().int().min(2),
  diagnoses: z.array(z.string()).min(2),
  items: z
    .array(
      z.looseObject({
        name: z.string().min(1),
        file: z.string().min(1),
        /** The item's collection (absent in POCUS-only sets written before COVID-BLUES). */
        dataset: z.string().optional(),
        /** The item's frames, relative to the training-set directory. */
        npy: z.string().min(1),
        kind: z.string(),
        license: z.string(),
        source: z.string().min(1),
        group: z.string().min(1),
        /** null: not labelled for diagnosis (COVID-BLUES patients outside the three classes). */
        diagnosis: z.string().min(1).nullable(),
        fold: z.number().int().nonnegative(),
        sha256: Sha256Hex,
      }),
    )
    .min(1),
});
export type TrainingSetFile = z.infer<typeof TrainingSetFile>;
export type DatasetItem = TrainingSetFile['items'][number];

/**
 * `dataset.json` of the chest X-ray training set (exportCxrTrainingSet in training/datasets/export.ts):
 * one xray-1 picture per image (uint8 [1,1,S,S] .npy), its per-finding targets (null: not labelled for
 * that finding), patient group and fold.
 */
export const CxrTrainingSetFile = z.object({
  dataset: z.literal('cxr'),
  /** Absolute: the collection the pictures were decoded from (parity decodes one again from here). */
  dataDir: z.string().min(1),
  preprocessing: z.literal('xray-1'),
  size: z.number().int().positive(),
  maxFrames: z.literal(1),
  scale: z.literal('1/255'),
  folds: z.number().int().min(2),
  findings: z.array(z.string()).min(1),
  items: z
    .array(
      z.object({
        name: z.string().min(1),
        file: z.string().min(1),
        npy: z.string().min(1),
        source: z.string().min(1),
        group: z.string().min(1),
        label: z.string().min(1),
        finding: z.string(),
        view: z.string(),
        license: z.string(),
        fold: z.number().int().nonnegative(),
        targets: z.record(z.string(), z.union([z.literal(0), z.literal(1), z.null()])),
        sha256: Sha256Hex,
      }),
    )
    .min(1),
});
export type CxrTrainingSetFile = z.infer<typeof CxrTrainingSetFile>;

const MaxAbsDiff = z.object({ biomarkers: z.number().nonnegative(), embedding: z.number().nonnegative() });

/** `extractor/<name>-<version>.metrics.json` in models/: the training report of the shipped model, and its parity. */
export const ExtractorMetrics = ExtractorTrainingReport.extend({
  model: ModelRef,
  /** onnxruntime against PyTorch on the parity fixture's frames. */
  parity: MaxAbsDiff,
  /** The same on every training frame. */
  parityAllFrames: MaxAbsDiff.extend({ frames: z.number().int().positive() }),
  /** What changed since the previous version, in words. */
  changes: z.string().optional(),
});
export type ExtractorMetrics = z.infer<typeof ExtractorMetrics>;

const Interval = z.object({ value: z.number(), ci95: Ci95.optional() });

/** training/experts/metrics.ts `Evaluation`. */
export const EvaluationJson = z.object({
  rows: z.number().int().nonnegative(),
  metrics: z.record(z.string(), Interval),
  confusion: z.object({ labels: z.array(z.string()), matrix: z.array(z.array(z.number().int().nonnegative())) }),
  bootstrap: z.object({
    unit: z.enum(['group', 'clip']),
    resamples: z.number().int().nonnegative(),
    seed: z.number().int(),
  }),
});

const Family = z.enum(['linear', 'mlp']);

/** `<name>-<version>.report.json` of `sonomark experts train --report` (training/experts/train-command.ts). */
export const ExpertReport = z.looseObject({
  tool: z.literal('sonomark experts train'),
  createdAt: z.string().datetime(),
  options: z.looseObject({ name: ExpertEntry.shape.name, kind: TaskKind, dryRun: z.boolean() }),
  data: z.looseObject({
    target: z.string(),
    kind: TaskKind,
    classes: z.array(z.string()).min(2),
    rows: z.number().int().positive(),
    perClass: z.record(z.string(), z.number().int().nonnegative()),
    /** null without a group column (then every row is its own group). */
    groups: z.number().int().positive().nullable(),
    sources: z.number().int().positive().nullable(),
    features: z.string(),
    extractor: ModelRef,
    blocks: z.array(FeatureBlock).min(1),
    dim: z.number().int().positive(),
  }),
  selection: z.looseObject({
    metric: z.string(),
    higherIsBetter: z.boolean(),
    values: z.partialRecord(Family, z.number()),
  }),
  cv: z.looseObject({
    scheme: z.string(),
    folds: z.number().int().positive(),
    features: z.enum(['training', 'out-of-fold', 'per-fold']),
  }),
  candidates: z.partialRecord(Family, z.looseObject({ family: Family, evaluation: EvaluationJson, seconds: Seconds })),
  /** Present when the expert was trained with a source column. */
  leaveOneSourceOut: z
    .looseObject({
      family: Family,
      /** 'per-source': each held-out source's fit read features from an extractor trained without it. */
      features: z.enum(['training', 'out-of-fold', 'per-source']),
      perSource: z.array(
        z.looseObject({
          source: z.string(),
          rows: z.number().int(),
          accuracy: z.number(),
          /** Since 1.2: rows per label and the source's own metrics (bootstrap over its groups). */
          perClass: z.array(z.number().int().nonnegative()).optional(),
          evaluation: EvaluationJson.optional(),
        }),
      ),
      evaluation: EvaluationJson,
      seconds: Seconds,
    })
    .optional(),
  /** Present with a source column (training/experts/source-check.ts): whether the expert reads the source. */
  sourceCheck: z
    .looseObject({
      mixedSources: z.array(z.string()),
      classifier: z.looseObject({ chance: z.number(), evaluation: EvaluationJson }).optional(),
      sourceOnly: EvaluationJson,
      noSource: EvaluationJson,
      flags: z.array(z.string()),
      summary: z.string(),
    })
    .optional(),
  final: z.looseObject({ family: Family, description: z.string(), lambda: z.number().nonnegative() }),
  /** Known failure modes stated from the numbers (training/experts/failure-modes.ts); absent in older reports. */
  failureModes: z.array(z.string()).optional(),
  onnx: z.looseObject({ file: z.string(), sha256: Sha256Hex, written: z.boolean() }),
  expert: ExpertEntry,
  seconds: z.looseObject({ total: Seconds, final: Seconds }),
});
export type ExpertReport = z.infer<typeof ExpertReport>;

// ---------------------------------------------------------------------------
// Reading and checking
// ---------------------------------------------------------------------------

/** Checks a value against a schema; the error names `what` (a file, usually) and each bad field. */
export function checkTrainingJson<T extends z.ZodTypeAny>(schema: T, value: unknown, what: string): z.output<T> {
  try {
    return parsePayload(schema, value, what);
  } catch (e) {
    if (e instanceof PayloadError) throw new TrainingDataError(e.message);
    throw e;
  }
}

/** The file's JSON, unchecked: for the one caller that copies a file whole after checking it. */
export function readJsonFile(file: string, what: string, hint = ''): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new TrainingDataError(
      `Cannot read ${what} ${file}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}.${hint ? ` ${hint}` : ''}`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TrainingDataError(`${what} ${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Reads and checks a training JSON file. `what` says what the file is ("extractor training report"),
 * `hint` what makes it (a missing report.json: "train_extractor.py writes it").
 */
export function readTrainingJson<T extends z.ZodTypeAny>(
  file: string,
  schema: T,
  what: string,
  hint?: string,
): z.output<T> {
  return checkTrainingJson(schema, readJsonFile(file, what, hint), `${what} ${file}`);
}

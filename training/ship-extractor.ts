/**
 * Shipping a trained extractor into models/ (`sonomark train extractor`, after the Python recipe).
 *
 * Verifies the ONNX/PyTorch parity first (the serving decoder gives the tensor training read;
 * onnxruntime-node matches PyTorch within 1e-4 on the fixture and on every training frame), then
 * copies the model, writes its metrics JSON, parity fixture and markdown card, and updates the
 * manifest's extractor entry. Experts trained on another extractor's features are dropped from the
 * manifest, with a note to retrain them (`sonomark train experts`): their inputs would no longer mean
 * anything.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { BIOMARKERS } from '../core/biomarkers';
import { fromNpy } from './npy';
import {
  checkFullParity,
  checkParity,
  PARITY_TOLERANCE,
  readParityFixture,
  type FullParityResult,
  type ParityResult,
} from './parity';
import { loadManifest, validateManifest, writeManifest, extractorFor } from '../core/manifest';
import { sha256Hex } from '../core/scan-id';
import type { Modality } from '../core/modality';
import type { ExtractorEntry, Manifest, Preprocessing } from '../core/schemas';
import {
  checkTrainingJson,
  CrossSourceFile,
  ExperimentFile,
  ExtractorMetrics,
  ExtractorTrainingReport,
  readJsonFile,
  readTrainingJson,
  TrainingSetFile,
  type DatasetItem,
  type ExtractorConfig,
  type ParityFixture,
} from './schemas';

type TrainingConfig = ExtractorConfig;
/** One `train_extractor.py --experiment TAG` run: a recipe variant cross-validated on the same folds. */
export type ExperimentResult = ExperimentFile & { tag: string };
/** What the card reads of the recipe's report.json (the end-to-end baseline is the evaluation report's). */
export type TrainingReport = Pick<
  ExtractorTrainingReport,
  | 'config'
  | 'seed'
  | 'hardware'
  | 'positives'
  | 'unlearnable'
  | 'dropped_upstream'
  | 'folds'
  | 'cv'
  | 'kept'
  | 'final'
  | 'wall_s'
>;
/** What the card reads of each training-set item. */
export type CardItem = Pick<DatasetItem, 'npy' | 'license' | 'kind' | 'source' | 'group' | 'dataset'>;

/** The cross-source section: biomarker AUCs of extractors that never saw the data they score. */
function crossSourceSection(x: CrossSourceFile | undefined): string {
  if (!x) return '';
  const blues = x.sources['covid-blues'];
  const rows: [string, CrossSourceFile['pocus_cross_source']['extractor'] | undefined, string][] = [
    ['POCUS, each source held out', x.pocus_cross_source.extractor, 'fold models trained without the whole source'],
    ['COVID-BLUES held out as a source', blues?.extractor, blues ? blues.model : 'not run'],
    [
      'COVID-BLUES, patients held out',
      x.covid_blues_held_out_patients?.extractor,
      'fold models trained without those patients (other BLUES patients seen)',
    ],
  ];
  const cell = (e: CrossSourceFile['pocus_cross_source']['extractor'] | undefined, b: string) => {
    const r = e?.per_biomarker[b];
    return r && r.auc !== undefined && r.auc !== null ? `${f3(r.auc)} (${ci(r.auc_ci95 ?? null)})` : 'n/a';
  };
  const perSource = Object.entries(x.sources)
    .map(([s, v]) => {
      const annotated = Object.values(v.extractor.per_biomarker).filter((r) => r.auc !== null && r.auc !== undefined);
      return `| ${s} | ${v.n} | ${f3(v.extractor.mean_auc)} | ${annotated.length} | ${v.model} |`;
    })
    .join('\n');
  return `
## Evaluation: cross-source (read this first)
Every number here scores clips with an extractor that never saw their source (or their patients, where
said). The folds of the training set hold whole POCUS sources (sources sharing a patient group together) and
whole COVID-BLUES patients (\`training/datasets/items.ts\`); COVID-BLUES as a whole source is scored by a model
trained on POCUS alone. AUC of the clip max of frame probabilities, 95% CI by group bootstrap.

| held out | ${BIOMARKERS.map((b) => `\`${b}\``).join(' | ')} | mean | model |
|---|${BIOMARKERS.map(() => '---|').join('')}---|---|
${rows.map(([name, e, model]) => `| ${name} | ${BIOMARKERS.map((b) => cell(e, b)).join(' | ')} | ${f3(e?.mean_auc)} | ${model} |`).join('\n')}

Per source (AUCs only where the source has both classes of a flag; small sources give wide intervals):

| source | items | mean AUC | flags with both classes | scored by |
|---|---|---|---|---|
${perSource}
`;
}

const f3 = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : x.toFixed(3));
const ci = (c: [number, number] | null) => (c ? `${f3(c[0])}–${f3(c[1])}` : 'n/a');

function countBy<T>(xs: T[], key: (x: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[key(x)] = (out[key(x)] ?? 0) + 1;
  return out;
}

/** The recipe switches that are on, in words, for the card. */
export function recipeSwitches(c: TrainingConfig): string[] {
  const on: string[] = [];
  if (c.frame_norm) on.push('per-frame standardisation of the input (zero mean, unit variance)');
  if (c.dropout) on.push(`dropout ${c.dropout} on the embedding`);
  if (c.aux_diagnosis) {
    on.push(
      `an auxiliary diagnosis head (weight ${c.aux_diagnosis}, class-balanced cross-entropy, not exported): ` +
        'every clip has a diagnosis while the biomarker flags are sparse',
    );
  }
  if (c.extra_conv) on.push('a sixth conv-BN-ReLU layer at 8×8 (receptive field 79 pixels instead of 47)');
  if (c.ema) on.push(`an exponential moving average of the weights (decay ${c.ema}) is the trained model`);
  return on;
}

/** Config keys whose value differs between two recipes, as `key=value` of `b`. */
function configDiff(a: Record<string, unknown>, b: Record<string, unknown>): string {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  const diff = keys.filter((k) => JSON.stringify(a[k] ?? null) !== JSON.stringify(b[k] ?? null));
  return diff.map((k) => `${k}=${JSON.stringify(b[k] ?? null)}`).join(', ') || 'same as shipped';
}

/** Runs before seeds were recorded used the default seed, which is the shipped model's. */
const seedOf = (r: TrainingReport, e: ExperimentResult) => e.seed ?? r.seed;

/** The shipped recipe under another --seed: same config and pretraining choice, all the data. */
function isReplicate(r: TrainingReport, e: ExperimentResult): boolean {
  return e.recipe === r.kept && configDiff(r.config, e.config) === 'same as shipped' && seedOf(r, e) !== r.seed;
}

/**
 * A learning-curve point: the shipped recipe trained on a part of each fold's training groups
 * (`--set train_fraction=F`, F < 1), tested on the same folds. Not a recipe to choose among.
 */
function isCurvePoint(r: TrainingReport, e: ExperimentResult): boolean {
  const { train_fraction: fraction, ...rest } = e.config;
  return (
    typeof fraction === 'number' &&
    fraction < 1 &&
    e.recipe === r.kept &&
    configDiff(r.config, rest) === 'same as shipped'
  );
}

/** The kept recipe's cross-validation (the report names it `kept`; a report without it is broken). */
function keptCv(r: Pick<TrainingReport, 'cv' | 'kept'>): NonNullable<TrainingReport['cv']['ssl']> {
  const cv = r.cv[r.kept];
  if (!cv)
    throw new Error(`The extractor training report keeps the ${r.kept} recipe but has no cross-validation for it.`);
  return cv;
}

/** The shipped recipe's mean AUC on each seed it was trained with (the shipped run and its replicates). */
function shippedBySeed(r: TrainingReport, experiments: ExperimentResult[]): Map<number, number | null> {
  const bySeed = new Map<number, number | null>([[r.seed, keptCv(r).mean_auc]]);
  for (const e of experiments) if (isReplicate(r, e)) bySeed.set(seedOf(r, e), e.mean_auc);
  return bySeed;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const signed = (x: number | null) => (x === null ? '' : `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(3)}`);

/**
 * The shipped recipe's spread over seeds: experiments with the shipped config and pretraining choice
 * but another --seed. One seed's mean AUC moves by a few hundredths with the seed alone, which is as
 * large as most recipe differences, so the card says so with the numbers.
 */
function seedSpread(r: TrainingReport, experiments: ExperimentResult[]): string {
  const others = experiments.filter((e) => isReplicate(r, e));
  const kept = keptCv(r).mean_auc;
  if (others.length === 0 || kept === null) return '';
  const all = [kept, ...others.map((e) => e.mean_auc).filter((x): x is number => x !== null)];
  return `
The shipped recipe with ${others.length === 1 ? 'another seed' : 'other seeds'} (same folds): ${others
    .map((e) => `${f3(e.mean_auc)} (seed ${e.seed})`)
    .join(', ')}, against ${f3(kept)} with the shipped seed. Over these ${all.length} seeds the recipe's mean CV AUC is
**${f3(mean(all))}** (range ${f3(Math.min(...all))}–${f3(Math.max(...all))}): the seed alone moves it by
${f3(Math.max(...all) - Math.min(...all))}, so read smaller differences between variants as noise.
`;
}

function selectionSection(
  r: TrainingReport,
  experiments: ExperimentResult[],
  baseline: Map<number, number | null>,
): string {
  if (experiments.length === 0) return '';
  const diffs = experiments.map((e) => configDiff(r.config, e.config));
  const sameRecipe = experiments.map((e, i) => e.recipe === r.kept && diffs[i] === 'same as shipped');
  const replicate = experiments.map((e) => isReplicate(r, e));
  // A variant is compared with the shipped recipe's mean AUC on its own seed (`baseline`), since the
  // seed alone moves the mean as much as most recipe changes do.
  const delta = experiments.map((e, i) => {
    const b = baseline.get(seedOf(r, e));
    return sameRecipe[i] || e.mean_auc === null || b === undefined || b === null ? null : e.mean_auc - b;
  });
  const rows = experiments.map(
    (e, i) =>
      `| \`${e.tag}\` | ${e.recipe} | ${diffs[i]}${seedOf(r, e) !== r.seed ? `, seed ${seedOf(r, e)}` : ''} | ${f3(e.mean_auc)} | ${signed(delta[i] ?? null)} | ${(e.wall_s / 60).toFixed(1)} |`,
  );
  const shippedTried = experiments.some((_, i) => sameRecipe[i] && !replicate[i]);
  const recipes =
    new Set(experiments.filter((_, i) => !replicate[i]).map((e) => `${e.recipe} ${JSON.stringify(e.config)}`)).size +
    (shippedTried ? 0 : 1);
  const better = [...new Set(experiments.filter((_, i) => (delta[i] ?? 0) > 0).map((e) => `\`${e.tag}\``))];
  // A variant tried on several seeds, summed up paired by seed: one seed's gain is within the seed spread,
  // the same sign on every seed is the stronger evidence.
  const bySeeds = new Map<string, { auc: number; delta: number }[]>();
  experiments.forEach((e, i) => {
    if (delta[i] === null) return;
    const key = `${diffs[i]}${e.recipe === r.kept ? '' : ` (${e.recipe})`}`;
    bySeeds.set(key, [...(bySeeds.get(key) ?? []), { auc: e.mean_auc!, delta: delta[i]! }]);
  });
  const overSeeds = [...bySeeds.entries()]
    .filter(([, runs]) => runs.length > 1)
    .map(([key, runs]) => {
      const d = mean(runs.map((x) => x.delta));
      return `- ${key}, on ${runs.length} seeds: mean ${f3(mean(runs.map((x) => x.auc)))}, ${signed(d)} against the shipped recipe on the same seeds (higher on ${runs.filter((x) => x.delta > 0).length} of ${runs.length}).`;
    });
  return `
## How the recipe was chosen
These variants (\`train_extractor.py --experiment\`) were cross-validated on the same folds, and the recipe with
the highest mean AUC at the time was shipped. Choosing among ${recipes} recipes on the same folds makes the mean AUC above
optimistic: read it as an upper estimate, and the leave-one-source-out numbers in models/EVALUATION.md as the
less biased check. "vs shipped" compares a variant with the shipped recipe trained on the same seed.
${
  better.length
    ? `
Above the shipped recipe on the same seed, and not shipped yet: ${better.join(', ')}. A variant ships only after the
whole recipe (cross-validation, per-source models, experts) is retrained with it.
`
    : ''
}
| experiment | pretraining | differs from the shipped recipe in | mean CV AUC | vs shipped | minutes |
|---|---|---|---|---|---|
${rows.join('\n')}
${overSeeds.length ? `\nVariants tried on more than one seed:\n${overSeeds.join('\n')}\n` : ''}${seedSpread(r, experiments)}`;
}

/** The extractor's target: mean per-biomarker grouped-CV AUC (the card measures every version against it). */
export const TARGET_MEAN_AUC = 0.85;

/**
 * The learning curve: the shipped recipe on less of each fold's training data, paired by seed with the
 * shipped recipe on all of it. Its slope says whether more data is what the model lacks, and how much
 * of it the target would take if the curve went on as it started (a rough log-linear reading).
 */
function learningCurveSection(
  r: TrainingReport,
  curve: ExperimentResult[],
  bySeed: Map<number, number | null>,
): string {
  const full = [...bySeed.entries()].filter((x): x is [number, number] => x[1] !== null);
  if (curve.length === 0 || full.length === 0) return '';
  const fractions = [...new Set(curve.map((e) => e.config['train_fraction'] as number))].sort((a, b) => a - b);
  const points = fractions.map((fraction) => {
    const runs = curve.filter((e) => e.config['train_fraction'] === fraction && e.mean_auc !== null);
    // Paired by seed: each seed's all-data run is the comparison, since the seed alone moves the mean.
    const paired = runs.filter((e) => typeof bySeed.get(seedOf(r, e)) === 'number');
    return {
      fraction,
      seeds: runs.map((e) => seedOf(r, e)),
      auc: mean(runs.map((e) => e.mean_auc!)),
      change: paired.length ? mean(paired.map((e) => e.mean_auc! - bySeed.get(seedOf(r, e))!)) : null,
    };
  });
  const pct = (f: number) => `${Math.round(f * 100)}%`;
  const rows = points.map(
    (p) =>
      `| ${pct(p.fraction)} | ${p.seeds.join(', ')} | ${f3(p.auc)} | ${p.change === null ? 'n/a' : signed(p.change)} |`,
  );
  const fullMean = mean(full.map(([, a]) => a));
  rows.push(`| 100% | ${full.map(([s]) => s).join(', ')} | ${f3(fullMean)} | |`);
  // Gain per doubling of the data between neighbouring points (all the data: change 0). Learning curves
  // flatten as data grows, so the step nearest all the data is the one to extrapolate from.
  const steps = points
    .filter((p) => p.change !== null)
    .map((p, i, all) => {
      const next = all[i + 1] ?? { fraction: 1, change: 0 };
      return {
        from: p.fraction,
        to: next.fraction,
        perDoubling: (next.change! - p.change!) / Math.log2(next.fraction / p.fraction),
      };
    });
  const last = steps.at(-1);
  let reading = '';
  if (last) {
    const multiple = Math.pow(2, (TARGET_MEAN_AUC - fullMean) / last.perDoubling);
    reading = `Mean AUC gained per doubling of the training data: ${steps
      .map((s) => `${signed(s.perDoubling)} from ${pct(s.from)} to ${pct(s.to)}`)
      .join(', ')}. ${
      fullMean >= TARGET_MEAN_AUC
        ? ''
        : last.perDoubling > 0
          ? `If the curve went on at its last rate, a mean AUC of ${TARGET_MEAN_AUC} would take about
${multiple < 10 ? multiple.toFixed(1) : multiple.toFixed(0)}× the labelled clips (a log-linear extrapolation from few, noisy points, and curves flatten:
an order of magnitude, not a forecast).`
          : `The last step gained nothing: more of the same data is not what limits this recipe.`
    }`;
  }
  return `
## How much the data limits the model
The shipped recipe trained on a seeded random part of each fold's training groups (\`--set train_fraction=F\`; the
groups stay whole), tested on the same held-out folds; "change" is against the same seeds with all the data.

| training clips per fold | seeds | mean CV AUC | change |
|---|---|---|---|
${rows.join('\n')}

${reading}
`;
}

export function renderCard(
  entry: { name: string; version: string; sha256: string; input?: { preprocessing?: string } },
  r: TrainingReport,
  items: CardItem[],
  parity: { biomarkers: number; embedding: number },
  experiments: ExperimentResult[] = [],
  changes?: string,
  fullParity?: FullParityResult,
  crossSource?: CrossSourceFile,
): string {
  const kept = keptCv(r);
  const other = r.cv[r.kept === 'ssl' ? 'nossl' : 'ssl'];
  const trainS = (r.final.times.ssl_s ?? 0) + r.final.times.train_s;
  const licenses = Object.entries(countBy(items, (i) => i.license || 'unknown'))
    .map(([l, n]) => `${l} (${n})`)
    .join(', ');
  const rows = BIOMARKERS.map((b) => {
    const k = kept.per_biomarker[b]!;
    const o = other?.per_biomarker[b];
    return `| ${b} | ${k.positives} / ${k.annotated} | **${f3(k.auc)}** | ${ci(k.auc_ci95)} | ${f3(k.auc_clip_mean)} | ${o ? f3(o.auc) : 'not run'} |`;
  });
  const weak = BIOMARKERS.filter((b) => (kept.per_biomarker[b]!.auc ?? 0) < 0.8);
  // The shipped recipe's mean AUC per seed: what variants and learning-curve points are paired with.
  const bySeed = shippedBySeed(r, experiments);
  return `# ${entry.name} ${entry.version}: lung-ultrasound biomarker extractor

**Research use only. Not a medical device.** Not for diagnosis or any patient-care decision.

- File: \`extractor/${entry.name}-${entry.version}.onnx\`, sha256 \`${entry.sha256}\`
- Input \`frames\` [N, 1, 128, 128] float32: gray, ${
    entry.input?.preprocessing === 'roi-1'
      ? 'preprocessing `roi-1` (the ultrasound region found, cropped, masked and intensity-normalised)'
      : entry.input?.preprocessing === 'trim-1'
        ? 'preprocessing `trim-1` (black borders trimmed: the content box cropped and fitted, top-aligned)'
        : 'letterboxed'
  }, byte/255, exactly the frames
  \`gpu-tasks/feature-extractor/src/decode.ts\` produces (training read the same bytes).
- Outputs \`biomarkers\` [N, ${BIOMARKERS.length}] per-frame probabilities in the order
  ${BIOMARKERS.map((b) => `\`${b}\``).join(', ')}; \`embedding\` [N, ${r.config['embedding_dim']}] from the penultimate layer.
- Network: ${r.config.extra_conv ? 6 : 5} conv-BN-ReLU layers (stride 2 to 8×8), average + max pooling, a ${r.config['embedding_dim']}-d embedding,
  a linear biomarker head. ${r.final.parameters.toLocaleString('en-US')} parameters.
${changes ? `\n## Changes in ${entry.version}\n${changes}\n` : ''}
## Data and licenses
${
  items.some((i) => i.dataset === 'covid-blues')
    ? `COVID-BLUES (Wiedemann et al. 2025; \`../shared/data/covid-blues\`, CC BY-NC-ND 4.0): ${
        items.filter((i) => i.dataset === 'covid-blues').length
      } videos of ${new Set(items.filter((i) => i.dataset === 'covid-blues').map((i) => i.group)).size} patients, one device (Philips Lumify, convex), with
per-video A-lines, B-lines and severity, and weak consolidation / effusion / pleural-irregularity flags from the
findings text and the severity scheme (rules in \`training/datasets/covid-blues.ts\`). Non-commercial, no
derivatives of the data: the model is trained on it, nothing of it is redistributed.

And the public POCUS lung-ultrasound collection`
    : 'The public POCUS lung-ultrasound collection'
} (Born et al., POCOVID-Net; \`../shared/data/pocus\`, see its ATTRIBUTION.md):
${items.length} items (${Object.entries(countBy(items, (i) => i.kind))
    .map(([k, n]) => `${n} ${k}s`)
    .join(
      ', ',
    )}) from ${new Set(items.map((i) => i.source)).size} sources in ${new Set(items.map((i) => i.group)).size} patient/series groups.
Licenses: ${licenses}. Several sources are non-commercial (CC BY-NC): so is any use of this model.

Labels are the clip-level flags of metadata.csv (weak: a flag says the finding is somewhere in the clip;
A-lines are under-annotated). Dropped: ${
    Object.entries(r.dropped_upstream)
      .map(([k, v]) => `${k} (${v})`)
      .join('; ') || 'none'
  }${r.unlearnable.length ? `; no positives at training time: ${r.unlearnable.join(', ')}` : ''}.

## Training
Multiple-instance learning: ${r.config['frames_per_clip']} random frames per clip, frame logits pooled by
log-mean-exp (r = 5) into a clip logit, binary cross-entropy against the clip flags (unannotated flags
masked, positives up-weighted by neg/pos ≤ 10). Augmentation: gain and gamma, rotation ±8°, scale ±12%,
shift ±6%, left-right flip, multiplicative speckle. AdamW (weight decay ${r.config['weight_decay']}), cosine schedule,
${r.config['steps']} steps of ${r.config['batch_clips']} clips; seed ${r.seed}.${recipeSwitches(r.config)
    .map((t) => `\n- With ${t}.`)
    .join('')}${recipeSwitches(r.config).length ? '\n' : ''}
Self-supervised pretraining (${r.kept === 'ssl' ? '**kept**' : '**not kept**'}): clip-contrastive NT-Xent
(two frames of one clip are positives), ${r.config['ssl_steps']} steps of ${r.config['ssl_batch']} clips, on the training clips only
(per fold in cross-validation).

Hardware: ${r.hardware.device}, ${r.hardware.cpu_threads} threads, PyTorch ${r.hardware.torch}.
Training the shipped model took ${trainS.toFixed(0)} s; the whole recipe (2 × ${r.folds}-fold CV, the end-to-end
baseline, the final model) took ${(r.wall_s / 60).toFixed(1)} min.

${crossSourceSection(crossSource)}
## Evaluation: grouped ${r.folds}-fold cross-validation
Folds from \`training/datasets/pocus.ts\`: whole patient/series groups are assigned to folds (stratified by
diagnosis), so clips of one patient or series never straddle train and test. AUC is pooled over the
out-of-fold clips, scoring each clip by the max of its frame probabilities (the \`max\` statistic experts
read); 95% CIs resample whole groups (2,000 bootstrap draws).

| biomarker | positives / annotated | CV AUC (max) | 95% CI | AUC (clip mean) | AUC ${r.kept === 'ssl' ? 'without' : 'with'} SSL |
|---|---|---|---|---|---|
${rows.join('\n')}

**Mean per-biomarker AUC: ${f3(kept.mean_auc)}** (${r.kept === 'ssl' ? 'with' : 'without'} pretraining;
${other ? f3(other.mean_auc) : 'not run'} ${r.kept === 'ssl' ? 'without' : 'with'}). The target was ≥ ${TARGET_MEAN_AUC}.
${weak.length ? `\nWeak: ${weak.map((b) => `\`${b}\` (${f3(kept.per_biomarker[b]!.auc)}, ${kept.per_biomarker[b]!.positives} positives)`).join(', ')}. Read these outputs as weak evidence.\n` : ''}
ONNX/PyTorch parity (onnxruntime-node, CPU, 16 frames of a fixed clip): max abs diff
${parity.biomarkers.toExponential(1)} (biomarkers), ${parity.embedding.toExponential(1)} (embedding); tolerance ${PARITY_TOLERANCE}.${
    fullParity
      ? `
On all ${fullParity.frames.toLocaleString('en-US')} training frames: ${fullParity.maxAbsDiff.biomarkers.toExponential(1)} (biomarkers), ${fullParity.maxAbsDiff.embedding.toExponential(1)} (embedding).`
      : ''
  }

## Known failure modes
- Trained on ${items.length} items from public teaching collections: expect worse numbers on a new site's
  machines, presets and patients. Validate locally before any research conclusion.
- Clip-level weak labels: per-frame probabilities are not localised findings; they are trained so that the
  clip's strongest frames carry the flag.
- A-lines and pleural irregularity have few positives, and A-lines are under-annotated (a negative flag often
  means "not mentioned").
- Not trained on non-lung views, Doppler, M-mode, or annotated/marked-up frames; such input gives arbitrary outputs.
- Source and diagnosis are confounded in this collection (many sources publish one class only), so part of
  what the model learns may be source appearance; see the experts' leave-one-source-out evaluation.
${
  r.config.aux_diagnosis
    ? `- The auxiliary diagnosis loss shapes the embedding (and so the biomarker outputs) towards the three
  diagnoses of this collection: a biomarker probability is partly evidence for a diagnosis, not a pure
  finding detector.
`
    : ''
}${selectionSection(
    r,
    experiments.filter((e) => !isCurvePoint(r, e)),
    bySeed,
  )}${learningCurveSection(
    r,
    experiments.filter((e) => isCurvePoint(r, e)),
    bySeed,
  )}`;
}

/** One item's uint8 frames as the training-set export wrote them (what training read). */
export function readFrames(file: string): Uint8Array {
  const { data } = fromNpy(readFileSync(file), file);
  if (!(data instanceof Uint8Array)) throw new Error(`${file}: expected uint8 frames`);
  return data;
}

/** PyTorch's outputs on every training item, as the recipe (`recipe`) leaves them beside the model. */
function readFullParityReference(from: string, recipe: string): { biomarkers: Float32Array; embedding: Float32Array } {
  const read = (key: string) => {
    const file = path.join(from, `parity-full-${key}.npy`);
    if (!existsSync(file)) {
      throw new Error(`${file} is missing: ${recipe} writes it with the final model; re-run it.`);
    }
    const { data } = fromNpy(readFileSync(file), file);
    if (!(data instanceof Float32Array)) throw new Error(`${file}: expected float32 outputs`);
    return data;
  };
  return { biomarkers: read('biomarkers'), embedding: read('embedding') };
}

/**
 * The manifest with `entry` as `modality`'s extractor, validated before anything is written (an invalid one
 * throws, "Nothing was shipped."). That modality's experts trained on another extractor's features are dropped:
 * their inputs no longer mean anything. Other modalities' experts read features this does not change.
 */
export function manifestWithExtractor(
  manifest: Manifest,
  modality: Modality,
  entry: ExtractorEntry,
): { next: Manifest; dropped: string[] } {
  const kept = manifest.experts.filter(
    (e) =>
      e.extractor.modality !== modality || (e.extractor.name === entry.name && e.extractor.version === entry.version),
  );
  const dropped = manifest.experts.filter((e) => !kept.includes(e)).map((e) => `${e.name}@${e.version}`);
  const next: Manifest = { ...manifest, extractors: { ...manifest.extractors, [modality]: entry }, experts: kept };
  try {
    validateManifest(next, `model manifest with ${entry.name}@${entry.version}`);
  } catch (e) {
    (e as Error).message += ' Nothing was shipped.';
    throw e;
  }
  return { next, dropped };
}

export interface ParityGateInput {
  /** The training output folder: extractor.onnx, parity.json and the recipe's parity-full-*.npy. */
  readonly from: string;
  /** The collection the parity fixture's clip or picture is read from. */
  readonly dataDir: string;
  readonly entry: ExtractorEntry;
  /** How many training items, and each one's uint8 input as the training-set export wrote it. */
  readonly items: number;
  readonly read: (i: number) => Uint8Array;
  /** What one input is called in messages: "frames" (ultrasound) or "pictures" (X-ray). */
  readonly unit: string;
  /** The recipe that writes the reference outputs, named when they are missing. */
  readonly recipe: string;
  readonly log: (line: string) => void;
}

/**
 * Parity before anything is written into models/: a model that serving would compute differently is not
 * shipped. The fixture's tensor through the serving decoder must equal the one training read, and onnxruntime's
 * outputs must match PyTorch's, on the fixture and then on every training item.
 */
export async function parityGate(
  g: ParityGateInput,
): Promise<{ fixture: ParityFixture; parity: ParityResult; full: FullParityResult }> {
  const staging = path.join(g.from, 'staging');
  mkdirSync(path.join(staging, 'extractor'), { recursive: true });
  copyFileSync(path.join(g.from, 'extractor.onnx'), path.join(staging, g.entry.file));
  const fixture = readParityFixture(path.join(g.from, 'parity.json'));
  const parity = await checkParity(fixture, g.dataDir, staging, g.entry);
  if (!parity.sameTensor) {
    throw new Error(`Parity: the decoder's tensor for ${fixture.clip} differs from the one training read.`);
  }
  const worst = Math.max(parity.maxAbsDiff.biomarkers, parity.maxAbsDiff.embedding);
  if (worst > PARITY_TOLERANCE) throw new Error(`Parity: max abs diff ${worst} > ${PARITY_TOLERANCE}.`);
  g.log(`parity ok: ${JSON.stringify(parity.maxAbsDiff)}`);
  const full = await checkFullParity(g.items, g.read, readFullParityReference(g.from, g.recipe), staging, g.entry);
  if (full.overTolerance > 0) {
    throw new Error(
      `Parity on all ${full.frames} training ${g.unit}: ${full.overTolerance} values differ by more than ${PARITY_TOLERANCE} ` +
        `(max ${JSON.stringify(full.maxAbsDiff)}).`,
    );
  }
  g.log(`parity ok on all ${full.frames} training ${g.unit}: ${JSON.stringify(full.maxAbsDiff)}`);
  return { fixture, parity, full };
}

/** Every `--experiment` result in a training output folder, in tag order. */
export function readExperiments(from: string): ExperimentResult[] {
  const dir = path.join(from, 'experiments');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({
      tag: f.replace(/\.json$/, ''),
      ...readTrainingJson(path.join(dir, f), ExperimentFile, 'experiment result'),
    }));
}

export interface ShipOptions {
  /** The Python recipe's output folder (report.json, extractor.onnx, parity.json, parity-full-*.npy). */
  readonly from: string;
  /** The training-set folder the recipe read (dataset.json and the frames). */
  readonly data: string;
  readonly modelsDir: string;
  /** @default the manifest's extractor name */
  readonly name?: string;
  /** @default the manifest's extractor version (a re-run reproduces the shipped extractor in place) */
  readonly version?: string;
  /** What changed since the previous version, in words, for the card and the metrics JSON. */
  readonly changes?: string;
  readonly log?: (line: string) => void;
}

/**
 * The name and version a ship writes: the ones given, else the manifest's extractor's. A version is
 * never made up: without --version the run re-ships the model the manifest names (what reproducing the
 * shipped extractor means); a new model gets its new version from the command line.
 */
export function shipTarget(
  manifest: Manifest,
  opts: { name?: string; version?: string },
): { name: string; version: string; fromManifest: boolean } {
  const ultrasound = extractorFor(manifest, 'ultrasound');
  return {
    name: opts.name ?? ultrasound.name,
    version: opts.version ?? ultrasound.version,
    fromManifest: opts.version === undefined,
  };
}

function withoutPreprocessing(input: ExtractorEntry['input']): Omit<ExtractorEntry['input'], 'preprocessing'> {
  const { preprocessing: _dropped, ...rest } = input;
  return rest;
}

/** loso/<recipe>/cross_source.json when `train_extractor.py --loso` has written it. */
function readCrossSource(from: string, recipe: string): CrossSourceFile | undefined {
  const file = path.join(from, 'loso', recipe, 'cross_source.json');
  if (!existsSync(file)) return undefined;
  return readTrainingJson(file, CrossSourceFile, 'cross-source evaluation');
}

export interface ShipResult {
  readonly entry: ExtractorEntry;
  /** Experts trained on other features, removed from the manifest (`name@version`). */
  readonly dropped: string[];
}

export async function shipExtractor(opts: ShipOptions): Promise<ShipResult> {
  const log = opts.log ?? (() => {});
  const { from, modelsDir } = opts;
  const recipeHint = 'training/python/train_extractor.py writes it (sonomark train extractor).';
  // Read once: checked against the schema, and copied whole into the metrics JSON.
  const reportFile = path.join(from, 'report.json');
  const rawReport = readJsonFile(reportFile, 'extractor training report', recipeHint);
  const report = checkTrainingJson(ExtractorTrainingReport, rawReport, `extractor training report ${reportFile}`);
  const dataset = readTrainingJson(
    path.join(opts.data, 'dataset.json'),
    TrainingSetFile,
    'training set',
    'training/datasets/export.ts writes it (sonomark train extractor).',
  );
  const { manifest } = loadManifest(modelsDir);
  const { name, version } = shipTarget(manifest, opts);
  const base = `${name}-${version}`;
  const file = `extractor/${base}.onnx`;
  const bytes = readFileSync(path.join(from, 'extractor.onnx'));
  const sha256 = sha256Hex(bytes);
  const previous = extractorFor(manifest, 'ultrasound');
  const entry: ExtractorEntry = {
    name,
    version,
    file,
    sha256,
    // The preprocessing is the training set's: the model only ever saw frames made that way.
    input: {
      ...withoutPreprocessing(previous.input),
      name: 'frames',
      size: 128,
      ...(dataset.preprocessing ? { preprocessing: dataset.preprocessing as Preprocessing } : {}),
    },
    outputs: {
      biomarkers: { name: 'biomarkers', labels: [...BIOMARKERS] },
      embedding: { name: 'embedding', dim: report.config.embedding_dim },
    },
    card: {
      status: 'trained',
      summary: `Small CNN (${report.final.parameters} parameters) trained by multiple-instance learning on clip-level biomarker flags of the public POCUS collection. Mean grouped-CV AUC ${f3(keptCv(report).mean_auc)}.`,
      intendedUse:
        'Research only, not a medical device: feature extraction for research experts on lung ultrasound clips.',
      trainingData: `${dataset.items.length} clips and images of the public POCUS collection (../shared/data/pocus; licenses per source, several CC BY-NC).`,
      metrics: {
        split: `grouped ${report.folds}-fold CV by patient/series (training/datasets/pocus.ts)`,
        statistic: 'clip max of frame probabilities; pooled out-of-fold AUC; 95% CI by group bootstrap',
        meanCvAuc: keptCv(report).mean_auc,
        selfSupervisedPretraining: report.kept === 'ssl' ? 'kept' : 'not kept',
        meanCvAucWithoutSsl: report.cv.nossl?.mean_auc ?? null,
        meanCvAucWithSsl: report.cv.ssl.mean_auc,
        perBiomarker: Object.fromEntries(
          BIOMARKERS.map((b) => {
            const row = keptCv(report).per_biomarker[b];
            if (!row) throw new Error(`${reportFile} has no cross-validation row for the biomarker ${b}.`);
            return [b, { auc: row.auc, ci95: row.auc_ci95, positives: row.positives, annotated: row.annotated }];
          }),
        ),
        trainingSeconds: Math.round((report.final.times.ssl_s ?? 0) + report.final.times.train_s),
        hardware: report.hardware.device,
      },
      limitations: [
        'Public teaching clips from few sources: expect lower performance on new sites.',
        'Weak clip-level labels; A-lines under-annotated; few pleural-irregularity positives.',
        'Source and diagnosis are confounded in the training collection.',
      ],
      cardFile: `extractor/${base}.md`,
    },
  };

  // The manifest is validated (a version like "1.2.0", ...) before anything is written into models/.
  const { next, dropped } = manifestWithExtractor(manifest, 'ultrasound', entry);
  const { fixture, parity, full } = await parityGate({
    from,
    dataDir: dataset.dataDir,
    entry,
    items: dataset.items.length,
    read: (i) => readFrames(path.join(opts.data, dataset.items[i]!.npy)),
    unit: 'frames',
    recipe: 'train_extractor.py',
    log,
  });

  // The report is copied whole (its own key order, fields the schema does not name), then checked as a metrics file.
  const metrics = {
    model: { name, version, sha256 },
    ...(rawReport as Record<string, unknown>),
    parity: parity.maxAbsDiff,
    parityAllFrames: { frames: full.frames, ...full.maxAbsDiff },
    changes: opts.changes,
  };
  checkTrainingJson(ExtractorMetrics, metrics, `metrics of ${name}@${version}`);

  mkdirSync(path.join(modelsDir, 'extractor'), { recursive: true });
  copyFileSync(path.join(from, 'extractor.onnx'), path.join(modelsDir, file));
  writeFileSync(path.join(modelsDir, 'extractor', `${base}.parity.json`), JSON.stringify(fixture) + '\n');
  writeFileSync(path.join(modelsDir, 'extractor', `${base}.metrics.json`), JSON.stringify(metrics, null, 1) + '\n');
  writeFileSync(
    path.join(modelsDir, entry.card.cardFile!),
    renderCard(
      entry,
      report,
      dataset.items,
      parity.maxAbsDiff,
      readExperiments(from),
      opts.changes,
      full,
      readCrossSource(from, report.kept),
    ),
  );
  // Last, so the manifest never names a file that is not there yet.
  writeManifest(modelsDir, next);
  log(`shipped ${name}@${version} (${sha256}) into ${modelsDir}`);
  if (dropped.length) {
    log(`dropped experts trained on other features: ${dropped.join(', ')}; retrain them: sonomark train experts`);
  }
  return { entry, dropped };
}

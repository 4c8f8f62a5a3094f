/**
 * Shipping the chest X-ray extractor into models/ (`sonomark train xray`, after train_xray.py), the
 * X-ray counterpart of ship-extractor.ts with the same guarantees and the same parity code (parity.ts):
 * the serving decoder gives the tensor training read, and onnxruntime-node matches PyTorch within 1e-4
 * on the fixture and on every training picture. Then the model, its metrics JSON, parity fixture and
 * card go into models/extractor/, the manifest's `extractors.xray` entry is set (the ultrasound
 * extractor and its experts are untouched; X-ray experts trained on other features are dropped), and
 * the "Chest X-ray" block of models/EVALUATION.md is rewritten from the report.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { markdownTable, replaceGeneratedBlock } from '../core/generated-block';
import { loadManifest, writeManifest } from '../core/manifest';
import { XRAY_FINDINGS } from '../core/modality';
import { sha256Hex } from '../core/scan-id';
import type { ExtractorEntry, Manifest } from '../core/schemas';
import { manifestWithExtractor, parityGate, readFrames } from './ship-extractor';
import { PARITY_TOLERANCE } from './parity';
import { checkTrainingJson, CxrTrainingSetFile, readJsonFile, readTrainingJson } from './schemas';

const Ci = z.tuple([z.number(), z.number()]).nullable();
const AucRow = z.object({
  auc: z.number().nullable(),
  ci95: Ci,
  n: z.number().int(),
  positives: z.number().int(),
  patients: z.number().int(),
});
const AnchorRow = AucRow.extend({
  fraction: z.number(),
  seed: z.number().int(),
  arm: z.enum(['ssl-finetune', 'scratch', 'ssl-linear']),
  train_images: z.number().int(),
  train_patients: z.number().int(),
  fit_s: z.number(),
});
export const XrayAnchorReport = z.looseObject({
  task: z.string(),
  config: z.looseObject({ ft_steps: z.number().int(), ft_batch: z.number().int(), ft_lr: z.number() }).optional(),
  test: z.object({
    fold: z.number().int(),
    images: z.number().int(),
    patients: z.number().int(),
    positives: z.number().int(),
  }),
  pool: z.object({ images: z.number().int(), patients: z.number().int() }),
  rows: z.array(AnchorRow).min(1),
});
export type XrayAnchorReport = z.infer<typeof XrayAnchorReport>;

/** report.json of train_xray.py. */
export const XrayTrainingReport = z.looseObject({
  recipe: z.string(),
  config: z.looseObject({ ssl_steps: z.number().int(), mask_ratio: z.number(), patch: z.number().int() }),
  seed: z.number().int(),
  quick: z.boolean(),
  size: z.number().int().positive(),
  embedding_dim: z.number().int().positive(),
  parameters: z.number().int().positive(),
  findings: z.array(z.string()),
  items: z.number().int().positive(),
  sources: z.record(z.string(), z.number().int()),
  ssl_curve: z.array(z.object({ step: z.number().int(), loss: z.number() })).min(1),
  heads_oof: z.record(z.string(), z.object({ all: AucRow, sources: z.record(z.string(), AucRow) })),
  source_probe: AucRow,
  times: z.looseObject({ ssl_s: z.number(), total_s: z.number(), anchor_s: z.number().optional() }),
  hardware: z.looseObject({ threads: z.number().int() }),
  anchor: XrayAnchorReport.optional(),
});
export type XrayTrainingReport = z.infer<typeof XrayTrainingReport>;

/** What models/extractor/<name>-<version>.metrics.json holds for the X-ray extractor. */
export const XrayMetrics = XrayTrainingReport.extend({
  model: z.object({ name: z.string(), version: z.string(), sha256: z.string() }),
  parity: z.object({ biomarkers: z.number(), embedding: z.number() }),
  parityAllFrames: z.object({ frames: z.number().int(), biomarkers: z.number(), embedding: z.number() }),
  changes: z.string().optional(),
});
export type XrayMetrics = z.infer<typeof XrayMetrics>;

const f3 = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : v.toFixed(3));
const ci = (c: [number, number] | null) => (c ? `${f3(c[0])}–${f3(c[1])}` : 'n/a');
const pct = (f: number) => `${Math.round(f * 100)}%`;

/** The command that reproduces a report (the card and EVALUATION.md print it). */
export const XRAY_COMMAND = 'npm run train:xray -- --version 1.0.0';

/** The anchor table: one row per label fraction, each arm's AUC (mean over seeds, with the CI of one seed or the range). */
export function anchorTable(a: XrayAnchorReport): string {
  const fractions = [...new Set(a.rows.map((r) => r.fraction))].sort((x, y) => x - y);
  const arms = ['ssl-finetune', 'scratch', 'ssl-linear'] as const;
  const cell = (fraction: number, arm: (typeof arms)[number]) => {
    const rows = a.rows.filter((r) => r.fraction === fraction && r.arm === arm && r.auc !== null);
    if (rows.length === 0) return 'n/a';
    if (rows.length === 1) return `${f3(rows[0]!.auc)} (${ci(rows[0]!.ci95)})`;
    const aucs = rows.map((r) => r.auc!);
    const mean = aucs.reduce((s, v) => s + v, 0) / aucs.length;
    return `${f3(mean)} (${rows.length} seeds: ${f3(Math.min(...aucs))}–${f3(Math.max(...aucs))})`;
  };
  const rows = fractions.map((f) => {
    const r = a.rows.find((x) => x.fraction === f)!;
    return [pct(f), `${r.train_patients} / ${r.train_images}`, ...arms.map((arm) => cell(f, arm))];
  });
  return markdownTable(
    [
      'labels',
      'patients / images',
      'SSL-pretrained, fine-tuned',
      'same network from scratch',
      'SSL encoder frozen + linear',
    ],
    rows,
  );
}

/** Mean AUC of one arm at one fraction over its seeds (undefined when it has no row). */
function meanAuc(a: XrayAnchorReport, fraction: number, arm: string): number | undefined {
  const v = a.rows.filter((r) => r.fraction === fraction && r.arm === arm && r.auc !== null).map((r) => r.auc!);
  return v.length ? v.reduce((s, x) => s + x, 0) / v.length : undefined;
}

/** One generated sentence per fraction: which arm was ahead, by how much (the table's own numbers). */
export function anchorVerdict(a: XrayAnchorReport): string {
  const fractions = [...new Set(a.rows.map((r) => r.fraction))].sort((x, y) => x - y);
  return fractions
    .map((f) => {
      const ssl = meanAuc(a, f, 'ssl-finetune');
      const scratch = meanAuc(a, f, 'scratch');
      if (ssl === undefined || scratch === undefined) return '';
      const d = ssl - scratch;
      return `at ${pct(f)}, pretrained minus scratch ${d >= 0 ? '+' : ''}${d.toFixed(3)} AUC`;
    })
    .filter(Boolean)
    .join('; ');
}

/** Per-finding out-of-fold AUCs, all labelled pictures and per source. */
export function findingsTable(r: XrayTrainingReport): string {
  const rows: string[][] = [];
  for (const k of r.findings) {
    const h = r.heads_oof[k];
    if (!h) continue;
    rows.push([
      k,
      'all labelled',
      f3(h.all.auc),
      ci(h.all.ci95),
      `${h.all.positives}/${h.all.n}`,
      String(h.all.patients),
    ]);
    for (const [s, row] of Object.entries(h.sources)) {
      rows.push([k, s, f3(row.auc), ci(row.ci95), `${row.positives}/${row.n}`, String(row.patients)]);
    }
  }
  return markdownTable(['finding', 'pictures', 'AUC', '95% CI (patients)', 'positives/n', 'patients'], rows);
}

function curveSummary(r: XrayTrainingReport): string {
  const c = r.ssl_curve;
  const first = c[0]!;
  const last = c[c.length - 1]!;
  return `masked-pixel MSE ${first.loss.toFixed(4)} over the first ${first.step} steps → ${last.loss.toFixed(4)} at step ${last.step}`;
}

export const XRAY_BLOCK_BEGIN =
  '<!-- xray:begin (generated by sonomark train xray from the X-ray extractor metrics; do not edit) -->';
export const XRAY_BLOCK_END = '<!-- xray:end -->';

/** The "Chest X-ray" section of models/EVALUATION.md, from the shipped metrics. */
export function renderXraySection(m: XrayMetrics): string {
  const a = m.anchor;
  const anchor = a
    ? `### The anchor comparison: 1% / 10% / 100% of the labels

Task: ${a.task}, the honest within-source question (one hospital, children 1–5). Test: the patients of fold ${a.test.fold}
(${a.test.patients} patients, ${a.test.images} pictures, ${a.test.positives} pneumonia), never trained on. Training pool: the other
folds' Kermany patients (${a.pool.patients} patients, ${a.pool.images} pictures); 1% and 10% are seeded random subsets of
*patients* (every picture of each). Each arm is the same encoder with one logit: "SSL-pretrained, fine-tuned" starts from the
self-supervised encoder and trains end to end; "from scratch" the same network from random weights, same steps, batch, learning
rate and augmentation${a.config ? ` (${a.config.ft_steps} steps of ${a.config.ft_batch} pictures, AdamW ${a.config.ft_lr}, whatever the number of labels)` : ''}; "frozen + linear" is how the shipped extractor is used (encoder frozen, logistic head). AUC on the test
patients, 95% CI by patient bootstrap (one seed), or the mean and range over seeds.

${anchorTable(a)}

Measured: ${anchorVerdict(a)}. Seeds change which patients form the 1% subset, and that moves the AUC more than the
initialisation does; a difference inside the seed range is not evidence either way.

`
    : '';
  return `## Chest X-ray (${m.model.name} ${m.model.version})

**Data.** ../shared/data/cxr: ${m.items} pictures (${Object.entries(m.sources)
    .map(([s, n]) => `${s} ${n}`)
    .join(
      ', ',
    )}), labels per image from each collection, patient ids, licences (training/datasets/cxr.ts; two pictures listed
twice under two patient ids are kept once, their patients merged). Folds: 5, by patient, stratified by source and label.

**Preprocessing** (\`xray-1\`, gpu-tasks/feature-extractor/src/decode.ts, shared by training and serving): one picture, grey,
fitted inside ${m.size}×${m.size} with its aspect kept and black padding, then the picture's own 0.5th/99.5th percentiles stretched to
0 and 255 (exposure and detector gain differ between sites more than lungs do).

**Recipe** (training/python/train_xray.py): group-masked self-supervised pretraining of a small CNN (${m.parameters} parameters,
GroupNorm, embedding ${m.embedding_dim} = mean and max of the last feature map) on every picture, no labels: groups of
${m.config.patch}-px patches (rectangles of 2–4 × 2–4 patches) hidden until ${pct(m.config.mask_ratio)} of the picture is, the hidden pixels
reconstructed (${m.config.ssl_steps} steps; ${curveSummary(m)}). Then the encoder frozen and one logistic head per finding
(${XRAY_FINDINGS.join(', ')}) fitted with a masked BCE on the pictures labelled for it. Pretraining took ${Math.round(m.times.ssl_s)} s,
the whole recipe ${Math.round(m.times.total_s)} s on ${m.hardware.threads} CPU threads. Parity: onnxruntime-node vs PyTorch on all
${m.parityAllFrames.frames} training pictures, max abs diff ${m.parityAllFrames.biomarkers.toExponential(1)} (biomarkers),
${m.parityAllFrames.embedding.toExponential(1)} (embedding).

### Per-finding AUC, out of fold by patient

The heads refitted five times, each without one patient fold, scored on it (the encoder saw every picture during pretraining,
never a label). Adult vs pediatric is told apart from the frozen embedding with out-of-fold AUC ${f3(m.source_probe.auc)}: the
embedding knows the source, so a pooled AUC mixes disease with source; read the per-source rows.

${findingsTable(m)}

${anchor}Reproduce: \`${XRAY_COMMAND}\` (export through the decoder, the recipe with the anchor comparison, parity, ship).

**What this does not show.** Performance on other hospitals, adult normal chests (9 in the collection) or any clinical
population: every figure is within these public collections. The pneumonia head's negatives are almost all pediatric, so on
adults it cannot be read as "pneumonia vs normal". The self-supervised encoder saw the unlabelled test pictures (pretraining on
every picture is the shipped recipe); the labels of the test patients were never used.${
    a
      ? ` The anchor comparison uses one test fold, not five, and a fixed, small fine-tuning budget (a CPU budget: under one
epoch at 100%), so its 100% row is not either arm at convergence; the pretraining itself was short (${m.config.ssl_steps} steps).`
      : ''
  }`;
}

/** EVALUATION.md with the X-ray block replaced, or appended (with its markers) when it has none. */
export function withXraySection(text: string, section: string): string {
  return (
    replaceGeneratedBlock(text, XRAY_BLOCK_BEGIN, XRAY_BLOCK_END, section) ??
    `${text.trimEnd()}\n\n${XRAY_BLOCK_BEGIN}\n\n${section}\n\n${XRAY_BLOCK_END}\n`
  );
}

/**
 * EVALUATION.md text with the X-ray block rendered from the manifest's X-ray extractor's shipped metrics
 * (`sonomark train evaluate` re-renders the rest of the file from the ultrasound reports and keeps this
 * block so); unchanged when the manifest has no X-ray extractor.
 */
export const XRAY_EVALUATION_BEGIN = '<!-- BEGIN chest X-ray experts: generated by sonomark train xray-experts -->';
export const XRAY_EVALUATION_END = '<!-- END chest X-ray experts -->';

/**
 * `text` (models/EVALUATION.md) with the "Chest X-ray experts" section's block set to `section`: replaced
 * between its markers, or appended with its heading the first time.
 */
export function withXrayExpertsSection(text: string, section: string): string {
  return (
    replaceGeneratedBlock(text, XRAY_EVALUATION_BEGIN, XRAY_EVALUATION_END, section) ??
    `${text.trimEnd()}\n\n## Chest X-ray experts\n\n${XRAY_EVALUATION_BEGIN}\n\n${section.trim()}\n\n${XRAY_EVALUATION_END}\n`
  );
}

export function withShippedXraySection(text: string, modelsDir: string, manifest: Manifest): string {
  const x = manifest.extractors.xray;
  if (!x) return text;
  const file = path.join(modelsDir, 'extractor', `${x.name}-${x.version}.metrics.json`);
  const metrics = readTrainingJson(file, XrayMetrics, 'X-ray extractor metrics', 'sonomark train xray writes it.');
  return withXraySection(text, renderXraySection(metrics));
}

/** The extractor card (models/extractor/<name>-<version>.md). */
export function renderXrayCard(m: XrayMetrics, entry: ExtractorEntry): string {
  return `# ${m.model.name} ${m.model.version} — chest X-ray extractor

${entry.card.summary}

- **File:** \`${entry.file}\` (sha256 \`${m.model.sha256}\`)
- **Input:** \`frames\` float32 [N,1,${m.size},${m.size}] in [0,1], preprocessing \`xray-1\` (one picture per scan)
- **Outputs:** \`biomarkers\` [N,${XRAY_FINDINGS.length}] probabilities (${XRAY_FINDINGS.join(', ')}), \`embedding\` [N,${m.embedding_dim}]
- **Intended use:** ${entry.card.intendedUse}
- **Training data:** ${entry.card.trainingData}
${m.changes ? `- **Changes:** ${m.changes}\n` : ''}
## What the outputs mean

- \`pneumonia\`: any pneumonia (bacterial, viral, COVID-19) vs a normal chest. Normals are almost all pediatric (Kermany).
- \`viral\`: among pneumonias, viral (COVID-19 included) vs bacterial, from the collections' finding words.
- \`covid\`: among adult pneumonias (ieee8023, figure1), COVID-19 vs other pneumonia.

The \`embedding\` comes from the self-supervised encoder, trained without labels and frozen when the heads were fitted, so
experts cross-validated on it (by patient) never read features of a model that saw their test fold's labels.

## Per-finding AUC, out of fold by patient (95% CI by patient bootstrap)

${findingsTable(m)}

## Failure modes

- **Source confounding.** Labels go with source: almost every normal is a child from one hospital, almost every COVID image an
  adult from case reports. The frozen embedding separates adult from pediatric pictures (out-of-fold AUC
  ${f3(m.source_probe.auc)}), so a head can score well by reading the source. Only within-source rows above are evidence about
  disease.
- Kermany pictures were resized to 224×224 without keeping their aspect; adult pictures are ≤ 512 px JPEGs from publications.
- Lateral views, pictures with burnt-in annotations or arrows, and non-chest images are not refused; they get numbers.
- Not a medical device; research use only. Many training images are CC BY-NC(-SA).

## Parity

onnxruntime-node vs PyTorch: fixture max abs diff ${m.parity.biomarkers.toExponential(1)} / ${m.parity.embedding.toExponential(1)}
(biomarkers / embedding); all ${m.parityAllFrames.frames} training pictures ${m.parityAllFrames.biomarkers.toExponential(1)} /
${m.parityAllFrames.embedding.toExponential(1)} (tolerance ${PARITY_TOLERANCE}).

Reproduce: \`${XRAY_COMMAND}\`.
`;
}

export interface ShipXrayOptions {
  /** train_xray.py's output folder (report.json, extractor.onnx, parity.json, parity-full-*.npy). */
  readonly from: string;
  /** The X-ray training-set folder (dataset.json and the pictures). */
  readonly data: string;
  readonly modelsDir: string;
  readonly name: string;
  readonly version: string;
  readonly changes?: string;
  readonly log?: (line: string) => void;
}

export async function shipXrayExtractor(opts: ShipXrayOptions): Promise<ExtractorEntry> {
  const log = opts.log ?? (() => {});
  const { from, modelsDir, name, version } = opts;
  const reportFile = path.join(from, 'report.json');
  const raw = readJsonFile(reportFile, 'X-ray training report', 'training/python/train_xray.py writes it.');
  const report = checkTrainingJson(XrayTrainingReport, raw, `X-ray training report ${reportFile}`);
  const dataset = readTrainingJson(
    path.join(opts.data, 'dataset.json'),
    CxrTrainingSetFile,
    'chest X-ray training set',
    'exportCxrTrainingSet (training/datasets/export.ts) writes it (sonomark train xray).',
  );
  if (report.findings.join(',') !== XRAY_FINDINGS.join(',')) {
    throw new Error(`${reportFile}: findings ${report.findings.join(', ')}, expected ${XRAY_FINDINGS.join(', ')}.`);
  }
  const base = `${name}-${version}`;
  const file = `extractor/${base}.onnx`;
  const sha256 = sha256Hex(readFileSync(path.join(from, 'extractor.onnx')));
  const within = report.heads_oof.pneumonia?.sources['kermany-pediatric'];
  const entry: ExtractorEntry = {
    name,
    version,
    file,
    sha256,
    input: { name: 'frames', size: dataset.size, maxFrames: 1, batchSize: 32, preprocessing: 'xray-1' },
    outputs: {
      biomarkers: { name: 'biomarkers', labels: [...XRAY_FINDINGS] },
      embedding: { name: 'embedding', dim: report.embedding_dim },
    },
    card: {
      status: 'trained',
      summary:
        `Small CNN (${report.parameters} parameters) pretrained by group-masked image modelling on ${report.items} public chest ` +
        `X-rays without labels, then frozen; one logistic head per finding. Pneumonia vs normal within Kermany (children), ` +
        `out of fold by patient: AUC ${f3(within?.auc)}.`,
      intendedUse:
        'Research only, not a medical device: feature extraction for research experts on chest X-rays (frontal views).',
      trainingData: `${report.items} chest X-rays of ../shared/data/cxr (ieee8023, figure1, Kermany pediatric; licences per image, many CC BY-NC-SA).`,
      metrics: {
        split: 'grouped 5-fold CV by patient (training/datasets/cxr.ts); heads refitted per fold on the frozen encoder',
        statistic: 'per-picture out-of-fold AUC; 95% CI by patient bootstrap',
        perFinding: Object.fromEntries(
          Object.entries(report.heads_oof).map(([k, h]) => [
            k,
            {
              auc: h.all.auc,
              ci95: h.all.ci95,
              perSource: Object.fromEntries(
                Object.entries(h.sources).map(([s, r]) => [s, { auc: r.auc, ci95: r.ci95 }]),
              ),
            },
          ]),
        ),
        sourceProbeAuc: report.source_probe.auc,
        trainingSeconds: Math.round(report.times.total_s),
      },
      limitations: [
        'Labels are confounded with source (normals pediatric, COVID adult): read per-source figures only.',
        'Public collections from publications and one pediatric hospital: expect lower performance elsewhere.',
      ],
      cardFile: `extractor/${base}.md`,
    },
  };

  const { manifest } = loadManifest(modelsDir);
  const { next, dropped } = manifestWithExtractor(manifest, 'xray', entry);
  const { fixture, parity, full } = await parityGate({
    from,
    dataDir: dataset.dataDir,
    entry,
    items: dataset.items.length,
    read: (i) => readFrames(path.join(opts.data, dataset.items[i]!.npy)),
    unit: 'pictures',
    recipe: 'train_xray.py',
    log,
  });

  const metrics = {
    model: { name, version, sha256 },
    ...(raw as Record<string, unknown>),
    parity: parity.maxAbsDiff,
    parityAllFrames: { frames: full.frames, ...full.maxAbsDiff },
    ...(opts.changes ? { changes: opts.changes } : {}),
  };
  const checked = checkTrainingJson(XrayMetrics, metrics, `metrics of ${name}@${version}`);
  mkdirSync(path.join(modelsDir, 'extractor'), { recursive: true });
  copyFileSync(path.join(from, 'extractor.onnx'), path.join(modelsDir, file));
  writeFileSync(path.join(modelsDir, 'extractor', `${base}.parity.json`), JSON.stringify(fixture) + '\n');
  writeFileSync(path.join(modelsDir, 'extractor', `${base}.metrics.json`), JSON.stringify(metrics, null, 1) + '\n');
  writeFileSync(path.join(modelsDir, entry.card.cardFile!), renderXrayCard(checked, entry));
  const evaluation = path.join(modelsDir, 'EVALUATION.md');
  if (existsSync(evaluation)) {
    writeFileSync(evaluation, withXraySection(readFileSync(evaluation, 'utf8'), renderXraySection(checked)));
  }
  // Last, so the manifest never names a file that is not there yet.
  writeManifest(modelsDir, next);
  log(`shipped ${name}@${version} (${sha256}) into ${modelsDir} as extractors.xray`);
  if (dropped.length) log(`dropped X-ray experts trained on other features: ${dropped.join(', ')}`);
  return entry;
}

/**
 * models/EVALUATION.md (`sonomark train evaluate`, the last step of `sonomark train experts`): from the
 * experts' training reports, the biomarkers-only ablation reports, the extractor's training report and
 * the end-to-end baseline's out-of-fold predictions. Every number is read from those files; the
 * baseline's metrics go through the same `evaluate` (and bootstrap) as the experts'.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { generatedBlockBody, markdownTable, replaceGeneratedBlock } from '../core/generated-block';
import {
  withShippedXraySection,
  withXrayExpertsSection,
  XRAY_EVALUATION_BEGIN,
  XRAY_EVALUATION_END,
} from './ship-xray';
import * as path from 'node:path';
import { ECE_DEFINITION, evaluate, type Evaluation, type Interval } from './experts/metrics';
import { findExpert, loadManifest, extractorFor } from '../core/manifest';
import type { Manifest } from '../core/schemas';
import {
  CrossSourceFile,
  ExpertReport,
  ExtractorTrainingReport,
  OofFile,
  readTrainingJson,
  TrainingSetFile,
  type DatasetItem,
} from './schemas';
import { TrainingDataError } from './experts/errors';

/** The experts EVALUATION.md reports on, in its order. */
export const EVALUATED_EXPERTS = ['diagnosis', 'severity', 'triage', 'b-lines'] as const;
type Evaluated = (typeof EVALUATED_EXPERTS)[number];
/**
 * Evaluated when the manifest has them: the B-line expert is new, and a models directory trained
 * before it (or a fixture set) still gets its evaluation of the others.
 */
export const OPTIONAL_EXPERTS: readonly Evaluated[] = ['b-lines'];

/** The evaluated experts this manifest has: every required one (findExpert names a missing one), the optional ones it holds. */
function evaluatedIn(manifest: Manifest): Evaluated[] {
  return EVALUATED_EXPERTS.filter(
    (name) => !OPTIONAL_EXPERTS.includes(name) || manifest.experts.some((e) => e.name === name),
  );
}

/** An expert report that has the leave-one-source-out section the evaluation reads. */
type LosoReport = ExpertReport & { leaveOneSourceOut: NonNullable<ExpertReport['leaveOneSourceOut']> };

type Reports = Record<Exclude<Evaluated, 'b-lines'>, LosoReport> & Partial<Record<'b-lines', LosoReport>>;

export interface EvaluationInputs {
  readonly manifest: Manifest;
  /** The shipped experts' reports. */
  readonly reports: Reports;
  /** The biomarkers-only ablation reports (same folds, only the input blocks differ). */
  readonly ablations: Reports;
  /** train_extractor.py's report.json. */
  readonly extractor: ExtractorTrainingReport;
  readonly oof: OofFile;
  readonly items: readonly Pick<DatasetItem, 'name' | 'group' | 'diagnosis'>[];
  /** loso/<recipe>/cross_source.json: the extractor's biomarker AUCs on sources it never saw (absent before 1.2.0). */
  readonly crossSource?: CrossSourceFile;
}

const fmt = (m: Interval | undefined, d = 2) =>
  m === undefined
    ? 'n/a'
    : `${m.value.toFixed(d)}${m.ci95 ? ` [${m.ci95[0].toFixed(d)}, ${m.ci95[1].toFixed(d)}]` : ''}`;
const chosen = (r: ExpertReport) => r.candidates[r.final.family]!.evaluation;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const fitSeconds = (ts: { ssl_s?: number; train_s: number }[]) => sum(ts.map((t) => (t.ssl_s ?? 0) + t.train_s));

function diagnosisRows(e: Evaluation, labels: readonly string[]): string[] {
  return labels.map(
    (c) =>
      `| ${c} | ${fmt(e.metrics[`sensitivity.${c}`])} | ${fmt(e.metrics[`specificity.${c}`])} | ${fmt(e.metrics[`f1.${c}`])} |`,
  );
}

/** The primary metric's column title in the per-source tables. */
const PRIMARY_TITLE: Record<string, string> = { balancedAccuracy: 'balanced accuracy', auc: 'AUC', mae: 'MAE' };

/** Calibration of the chosen model, in grouped CV and on unseen sources. */
function calibrationLine(r: LosoReport): string {
  const cv = chosen(r).metrics['ece'];
  if (!cv) {
    return 'Calibration: not in this report (trained before the expected calibration error was reported): retrain (`npm run train:experts`).';
  }
  return `Calibration: expected calibration error ${fmt(cv)} in grouped CV, ${fmt(r.leaveOneSourceOut.evaluation.metrics['ece'])} on unseen sources (LOSO).`;
}

/**
 * Each held-out source's own numbers from the leave-one-source-out fits (bootstrap over that source's
 * groups): the pooled LOSO number hides a source the expert fails on.
 */
function perSourceTable(r: LosoReport): string {
  const primary = r.selection.metric;
  const labels = r.data.classes;
  const rows = r.leaveOneSourceOut.perSource;
  if (rows.every((s) => !s.evaluation)) {
    return (
      'Per source (LOSO accuracy, no intervals: this report predates per-source evaluations; retrain): ' +
      rows.map((s) => `${s.source} ${s.accuracy.toFixed(2)} (${s.rows})`).join(', ') +
      '.'
    );
  }
  const head = `| held-out source | clips (${labels.join(' / ')}) | accuracy | ${PRIMARY_TITLE[primary] ?? primary} | ECE |`;
  const body = rows.map((s) => {
    const m = s.evaluation?.metrics ?? {};
    const counts = s.perClass ? s.perClass.join(' / ') : String(s.rows);
    return `| ${s.source} | ${counts} | ${fmt(m['accuracy'])} | ${fmt(m[primary])} | ${fmt(m['ece'])} |`;
  });
  return [
    "Per held-out source (leave-one-source-out; 95% CI by bootstrap over the source's own groups, none for a source of one group; n/a where the source lacks a class the metric needs):",
    '',
    head,
    '|---|---|---|---|---|',
    ...body,
  ].join('\n');
}

/** The failure modes the trainer stated from the numbers (training/experts/failure-modes.ts). */
function failureList(r: LosoReport): string {
  if (!r.failureModes) return 'Known failure modes: not in this report (it predates them): retrain.';
  if (r.failureModes.length === 0)
    return 'Known failure modes: none crossed the thresholds of training/experts/failure-modes.ts.';
  return [
    'Known failure modes (from the numbers; thresholds in training/experts/failure-modes.ts):',
    ...r.failureModes.map((f) => `- ${f}`),
  ].join('\n');
}

/** What every expert section ends with: calibration, per-source numbers, failure modes. */
function robustness(r: LosoReport): string {
  return [calibrationLine(r), perSourceTable(r), failureList(r)].join('\n\n');
}

/** The source name of COVID-BLUES items in the labels file (training/datasets/covid-blues.ts). */
const BLUES_SOURCE = 'covid-blues';

/** One source's metrics in the chosen candidate's grouped-CV predictions (its patients held out by the fold split). */
function cvSource(r: ExpertReport, source: string): Evaluation | undefined {
  const c = r.candidates[r.final.family] as { perSource?: readonly { source: string; evaluation: Evaluation }[] };
  return c.perSource?.find((s) => s.source === source)?.evaluation;
}

/** One held-out source's metrics in leave-one-source-out. */
function losoSource(r: LosoReport, source: string): Evaluation | undefined {
  return r.leaveOneSourceOut.perSource.find((s) => s.source === source)?.evaluation;
}

/** "met" / "not met" against a target, read on the point estimate (the interval is printed beside it). */
function verdict(m: Interval | undefined, target: number, higherIsBetter: boolean): string {
  if (m === undefined) return 'not measured';
  return (higherIsBetter ? m.value >= target : m.value <= target) ? 'met' : 'not met';
}

/**
 * The table EVALUATION.md leads with: what a new site or a new device can expect, measured on sources and patients
 * the models never saw, before the within-collection cross-validation figures. Targets are issue 20's.
 */
function crossSourceLead(reports: Reports): string {
  const { diagnosis: dx, severity: sev, triage: tri, 'b-lines': bl } = reports;
  const row = (
    task: string,
    r: LosoReport | undefined,
    metric: string,
    title: string,
    target?: { where: 'loso' | 'blues'; value: number; higher: boolean },
  ) => {
    if (!r) return undefined;
    const loso = r.leaveOneSourceOut.evaluation.metrics[metric];
    const bluesOut = losoSource(r, BLUES_SOURCE)?.metrics[metric];
    const bluesCv = cvSource(r, BLUES_SOURCE)?.metrics[metric];
    const cv = chosen(r).metrics[metric];
    const t = target
      ? `${target.where === 'loso' ? 'LOSO' : 'COVID-BLUES patients'} ${target.higher ? '≥' : '≤'} ${target.value}: ${verdict(
          target.where === 'loso' ? loso : bluesCv,
          target.value,
          target.higher,
        )}`
      : '—';
    return `| ${task} | ${title} | ${fmt(loso)} | ${fmt(bluesOut)} | ${fmt(bluesCv)} | ${fmt(cv)} | ${t} |`;
  };
  const rows = [
    row('diagnosis', dx, 'balancedAccuracy', 'balanced accuracy', { where: 'loso', value: 0.75, higher: true }),
    row('severity', sev, 'mae', 'MAE (grades)', { where: 'blues', value: 0.55, higher: false }),
    row('triage', tri, 'auc', 'AUC'),
    row('b-lines', bl, 'auc', 'AUC', { where: 'blues', value: 0.85, higher: true }),
  ].filter((r): r is string => r !== undefined);
  return `## Cross-source results first
What a new site or a new device can expect: every number here comes from predictions on sources or patients that neither
the extractor nor the expert saw in training. Read these before the within-collection figures further down.

| task | metric | leave-one-source-out, pooled | COVID-BLUES held out as a whole source | COVID-BLUES patients held out (grouped CV) | grouped CV, all sources | target |
|---|---|---|---|---|---|---|
${rows.join('\n')}

- *Leave-one-source-out:* each source is predicted by an expert trained without it, on features of an extractor trained
  without it (see Protocol); pooled over every held-out source.
- *COVID-BLUES held out as a whole source:* a different device and hospital from every POCUS source: the closest
  stand-in here for a new site.
- *COVID-BLUES patients held out:* the grouped-CV predictions of COVID-BLUES rows (each patient's videos in one fold,
  predicted by fold models that never saw that patient): a known device, new patients.
- 95% intervals by bootstrap over whole groups (patients / series); "n/a" where a set lacks a class the metric needs.

`;
}

/** The B-line expert's section (the manifest may predate it). */
function bLinesSection(bl: LosoReport): string {
  const counts = Object.entries(bl.data.perClass)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
  return `## B-lines (present vs absent)
${bl.data.rows} clips with a B-lines flag (${counts}).
Chosen: ${bl.final.description}. AUC **${fmt(chosen(bl).metrics['auc'])}**, sensitivity ${fmt(chosen(bl).metrics['sensitivity'])} and specificity ${fmt(chosen(bl).metrics['specificity'])} at 0.5.
LOSO AUC ${fmt(bl.leaveOneSourceOut.evaluation.metrics['auc'])}.

${robustness(bl)}

`;
}

/** The expert's report, checked: it must describe the model the manifest ships and have a LOSO section. */
function expertReport(file: string, name: string, shipped?: { version: string; sha256: string }): LosoReport {
  const r = readTrainingJson(file, ExpertReport, 'expert report', 'sonomark train experts writes it.');
  if (shipped && (r.expert.version !== shipped.version || r.expert.sha256 !== shipped.sha256)) {
    throw new TrainingDataError(
      `${file} describes ${name}@${r.expert.version} (sha256 ${r.expert.sha256.slice(0, 12)}…), but the manifest ships ` +
        `${name}@${shipped.version} (sha256 ${shipped.sha256.slice(0, 12)}…): retrain the experts (sonomark train experts).`,
    );
  }
  if (!r.leaveOneSourceOut) {
    throw new TrainingDataError(
      `${file} has no leave-one-source-out section: the evaluation needs experts trained with --source-column.`,
    );
  }
  return r as LosoReport;
}

/** Where each input of the evaluation lives: the reports of the manifest's experts, and the training folder. */
export function evaluationFiles(trainingDir: string, modelsDir: string, manifest: Manifest) {
  return {
    reports: Object.fromEntries(
      evaluatedIn(manifest).map((name) => {
        const e = findExpert(manifest, name);
        return [name, path.join(modelsDir, 'experts', `${e.name}-${e.version}.report.json`)];
      }),
    ) as Record<Evaluated, string>,
    ablations: Object.fromEntries(
      evaluatedIn(manifest).map((name) => [
        name,
        path.join(trainingDir, 'experts', `${name}-biomarkers-only.report.json`),
      ]),
    ) as Record<Evaluated, string>,
    extractor: path.join(trainingDir, 'extractor', 'report.json'),
    oof: path.join(trainingDir, 'extractor', 'oof.json'),
    dataset: path.join(trainingDir, 'pocus', 'dataset.json'),
  };
}

/**
 * Reads every input of the evaluation, each through its schema. The shipped experts' reports are found
 * by the versions the manifest gives them, so the evaluation always describes the models that ship.
 */
export function readEvaluationInputs(trainingDir: string, modelsDir: string): EvaluationInputs {
  const { manifest } = loadManifest(modelsDir);
  const files = evaluationFiles(trainingDir, modelsDir, manifest);
  const recipeHint = 'training/python/train_extractor.py writes it (sonomark train extractor).';
  const per = (f: (name: Evaluated) => LosoReport): Reports =>
    Object.fromEntries(evaluatedIn(manifest).map((name) => [name, f(name)])) as Reports;
  return {
    manifest,
    reports: per((name) => expertReport(files.reports[name], name, findExpert(manifest, name))),
    ablations: per((name) => expertReport(files.ablations[name], name)),
    extractor: readTrainingJson(files.extractor, ExtractorTrainingReport, 'extractor training report', recipeHint),
    oof: readTrainingJson(files.oof, OofFile, 'out-of-fold predictions', recipeHint),
    items: readTrainingJson(files.dataset, TrainingSetFile, 'training set').items,
    ...crossSourceOf(files.extractor),
  };
}

function crossSourceOf(reportFile: string): { crossSource?: CrossSourceFile } {
  const kept = readTrainingJson(reportFile, ExtractorTrainingReport, 'extractor training report', '').kept;
  const file = path.join(path.dirname(reportFile), 'loso', kept, 'cross_source.json');
  if (!existsSync(file)) return {};
  return {
    crossSource: readTrainingJson(
      file,
      CrossSourceFile,
      'cross-source evaluation',
      'train_extractor.py --loso writes it.',
    ),
  };
}

export const README_MODELS_BEGIN =
  '<!-- models:begin (generated by sonomark train evaluate from the training reports; do not edit) -->';
export const README_MODELS_END = '<!-- models:end -->';

const auc2 = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : v.toFixed(2));
const point = (m: Interval | undefined) => fmt(m);

/**
 * The README's models table: cross-source numbers first (sources and patients the models never saw), then
 * grouped CV; every figure from the same reports as EVALUATION.md.
 */
export function renderModelsTable(inputs: EvaluationInputs): string {
  const x = extractorFor(inputs.manifest, 'ultrasound');
  const cs = inputs.crossSource;
  const blues = cs?.sources['covid-blues']?.extractor.mean_auc;
  const rows: string[][] = [
    [
      `\`${x.name}\` ${x.version}`,
      `CNN, ${inputs.extractor.final.parameters.toLocaleString('en-US')} parameters, \`${x.input.preprocessing ?? 'letterbox'}\` preprocessing: per-frame biomarkers + ${x.outputs.embedding.dim}-d embedding`,
      cs
        ? `mean biomarker AUC ${auc2(cs.pocus_cross_source.extractor.mean_auc)} (POCUS sources held out), ${auc2(blues)} (COVID-BLUES held out)`
        : 'not measured',
      `mean biomarker AUC ${auc2(inputs.extractor.cv[inputs.extractor.kept]?.mean_auc)}`,
    ],
  ];
  const metricOf: Record<string, [string, string]> = {
    diagnosis: ['balancedAccuracy', 'balanced accuracy'],
    severity: ['mae', 'MAE'],
    triage: ['auc', 'AUC'],
    'b-lines': ['auc', 'AUC'],
  };
  for (const [name, r] of Object.entries(inputs.reports) as [string, LosoReport | undefined][]) {
    if (!r) continue;
    const [metric, title] = metricOf[name] ?? ['accuracy', 'accuracy'];
    const blue = losoSource(r, BLUES_SOURCE)?.metrics[metric];
    rows.push([
      `\`${name}\` ${r.expert.version}`,
      r.final.description,
      `${title} ${point(r.leaveOneSourceOut.evaluation.metrics[metric])} (LOSO)${blue ? `; ${point(blue)} (COVID-BLUES held out)` : ''}`,
      `${title} ${point(chosen(r).metrics[metric])}`,
    ]);
  }
  return markdownTable(
    ['model', 'what', 'cross-source: sources never seen in training', 'grouped 5-fold CV (patient-disjoint)'],
    rows,
  );
}

/** Rewrites the README's models block; false when the README has no such block. */
export function writeReadmeModelsTable(readme: string, inputs: EvaluationInputs): boolean {
  const text = replaceGeneratedBlock(
    readFileSync(readme, 'utf8'),
    README_MODELS_BEGIN,
    README_MODELS_END,
    renderModelsTable(inputs),
  );
  if (text === undefined) return false;
  writeFileSync(readme, text);
  return true;
}

/** Reads the inputs and writes models/EVALUATION.md; returns its path. */
export function writeEvaluationReport(trainingDir: string, modelsDir: string, readme?: string): string {
  const file = path.join(modelsDir, 'EVALUATION.md');
  const inputs = readEvaluationInputs(trainingDir, modelsDir);
  // The X-ray extractor's section comes from its own shipped metrics (sonomark train xray); the X-ray
  // experts' section belongs to `sonomark train xray-experts` and is carried over as it stands.
  const previous = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const xrayExperts = generatedBlockBody(previous, XRAY_EVALUATION_BEGIN, XRAY_EVALUATION_END);
  const text = withShippedXraySection(renderEvaluation(inputs), modelsDir, inputs.manifest);
  writeFileSync(file, xrayExperts === undefined ? text : withXrayExpertsSection(text, xrayExperts));
  // The README's models table (between its markers) from the same reports; a README without them is left alone.
  if (readme && existsSync(readme)) writeReadmeModelsTable(readme, inputs);
  return file;
}

/** The data paragraph when COVID-BLUES was a source of the experts' data. */
function dataBoth(dx: LosoReport): string {
  return `- **Data:** two collections. The public POCUS collection (\`../shared/data/pocus\`, many sources and devices;
  \`training/datasets/pocus.ts\` maps its labels) and COVID-BLUES (\`../shared/data/covid-blues\`, one hospital, one
  convex-probe device, BLUE-protocol points; \`training/datasets/covid-blues.ts\` maps its labels, findings-text keyword
  rules included). The diagnosis expert's labelled rows: ${dx.data.rows} items, ${dx.data.groups} patient/series groups,
  ${dx.data.sources} sources (COVID-BLUES counts as one source).
- **Grouped 5-fold CV:** one fold assignment (\`training/datasets/collections.ts\`) for the extractor, the experts and the
  end-to-end baseline: each fold holds whole POCUS sources (sources that share a patient group together) and whole
  COVID-BLUES patients, so a patient or series never straddles train and test, and a POCUS row is always predicted by
  models that never saw its source.
`;
}

/** The data paragraph of a POCUS-only training set (the shipped 1.1.x reports). */
function dataPocus(dx: LosoReport): string {
  return `- **Data:** the public POCUS collection, ${dx.data.rows} items (clips and stills), ${dx.data.groups} patient/series groups,
  ${dx.data.sources} sources (\`../shared/data/pocus\`; \`training/datasets/pocus.ts\` maps the labels).
- **Grouped 5-fold CV:** one fold assignment (\`training/datasets/pocus.ts\`, whole groups per fold, stratified by diagnosis)
  for the extractor, the experts and the end-to-end baseline. A patient or series never straddles train and test.
`;
}

function caveatBoth(): string {
  return `- POCUS items come from public teaching collections, where sources are confounded with diagnosis (many publish a
  single class), which LOSO exposes; COVID-BLUES is one hospital and one device. Confidence intervals are wide.
`;
}

function caveatPocus(dx: LosoReport): string {
  return `- ${dx.data.rows} items from public teaching collections; confidence intervals are wide and sources are confounded
  with diagnosis (many sources publish a single class), which LOSO exposes.
`;
}

/** models/EVALUATION.md from its inputs. */
export function renderEvaluation(inputs: EvaluationInputs): string {
  const x = extractorFor(inputs.manifest, 'ultrasound');
  const { diagnosis: dx, severity: sev, triage: tri, 'b-lines': bl } = inputs.reports;
  const { diagnosis: dxA, severity: sevA, triage: triA, 'b-lines': blA } = inputs.ablations;
  const { extractor: xr, oof, items } = inputs;
  const withBlues = dx.leaveOneSourceOut.perSource.some((p) => p.source === BLUES_SOURCE);

  // The end-to-end baseline through the experts' own metric code and bootstrap.
  const labels = oof.diagnoses;
  const byName = new Map(items.map((i) => [i.name, i]));
  const item = (name: string) => {
    const i = byName.get(name);
    if (!i) throw new TrainingDataError(`oof.json names ${name}, which the training set's dataset.json does not have.`);
    return i;
  };
  const y = Int32Array.from(oof.e2e, (r) => labels.indexOf(item(r.name).diagnosis ?? ''));
  const prob = {
    data: Float64Array.from(oof.e2e.flatMap((r) => r.diagnosis)),
    rows: oof.e2e.length,
    cols: labels.length,
  };
  const groups = oof.e2e.map((r) => item(r.name).group);
  // Absent when the recipe run left the baseline out (report.json's e2e.not_run says why).
  const e2e =
    oof.e2e.length > 0 ? evaluate('classification', labels, y, prob, groups, { seed: 1, resamples: 1000 }) : undefined;
  const e2eNotRun = (xr.e2e as { not_run?: string }).not_run ?? 'no out-of-fold predictions in oof.json';

  const dxE = chosen(dx);
  // LOSO is only free of extractor leakage when every report read per-source extractor features.
  const losoReports = [dx, sev, tri, dxA, sevA, triA, ...(bl && blA ? [bl, blA] : [])];
  const losoPerSource = losoReports.every((r) => r.leaveOneSourceOut.features === 'per-source');
  const leaky = [...new Set(losoReports.map((r) => r.leaveOneSourceOut.features))].filter((f) => f !== 'per-source');
  const losoFeatures = `${leaky.join(' / ')}${losoReports.some((r) => r.leaveOneSourceOut.features === 'per-source') ? ', in some reports' : ''}`;
  const losoProtocol = losoPerSource
    ? `the held-out predictions are pooled. Each held-out source's expert trains and tests on features from an extractor
  trained without the held-out source (one extractor per source, \`--loso-features\`), so this measures how extractor and
  expert together transfer to an unseen source.`
    : `the held-out predictions are pooled. **Warning:** the LOSO features (${losoFeatures}) come from an extractor that saw
  every source, the held-out one included (no extractor was retrained per source), so LOSO measures only how the
  *expert* transfers to an unseen source and is optimistic about the whole pipeline.`;
  const extractorCvSeconds = fitSeconds(xr.cv[xr.kept]!.times);
  const e2eSeconds = fitSeconds(xr.e2e.times);
  const params = xr.final.parameters;
  return `# Evaluation: sonomark experts on ${x.name} ${x.version} features

Generated by \`sonomark train evaluate\` (the last step of \`npm run train:experts\`) from the training reports; nothing
here is typed by hand. Research use only, not a medical device.

${crossSourceLead(inputs.reports)}## Protocol
${withBlues ? dataBoth(dx) : dataPocus(dx)}- **No leakage through the extractor:** for outer fold *f*, the expert trains and tests on features from the fold-*f*
  extractor, which never saw fold *f* (${dx.cv.features}). The shipped experts are then fit on all items with the shipped extractor's features.
- **Leave one source out (LOSO):** each of the ${dx.data.sources} sources is held out in turn and the expert is trained on the rest;
  ${losoProtocol}
- **95% CIs:** percentile bootstrap over whole groups (1,000 resamples, seeded).
- **Calibration:** ${ECE_DEFINITION}. On a few dozen clips it is biased upwards; read it with its interval.
- **Per source:** each held-out source's own metrics from the leave-one-source-out fits, with intervals from a bootstrap
  over that source's groups; known failure modes are stated from these numbers by fixed thresholds.
- **Model choice:** regularised linear model vs a small MLP (16 ReLU units), picked by grouped CV; L2 strength by inner CV.

## Diagnosis (covid / pneumonia / healthy)
Chosen: ${dx.final.description}. Balanced accuracy **${fmt(dxE.metrics['balancedAccuracy'])}**, macro-F1 ${fmt(dxE.metrics['macroF1'])}, accuracy ${fmt(dxE.metrics['accuracy'])}.
LOSO balanced accuracy ${fmt(dx.leaveOneSourceOut.evaluation.metrics['balancedAccuracy'])}, macro-F1 ${fmt(dx.leaveOneSourceOut.evaluation.metrics['macroF1'])}.

| class | sensitivity | specificity | F1 |
|---|---|---|---|
${diagnosisRows(dxE, dxE.confusion.labels).join('\n')}

Confusion matrix (rows true, columns predicted; ${dxE.confusion.labels.join(', ')}): ${JSON.stringify(dxE.confusion.matrix)}.

${robustness(dx)}

## Severity (lung severity score 0–3, ${sev.data.rows} clips that have one)
Chosen: ${sev.final.description}. MAE **${fmt(sev.candidates[sev.final.family]!.evaluation.metrics['mae'])}**, within-1 accuracy ${fmt(chosen(sev).metrics['within1'])}, quadratic kappa ${fmt(chosen(sev).metrics['qwk'])}.
LOSO MAE ${fmt(sev.leaveOneSourceOut.evaluation.metrics['mae'])}, within-1 ${fmt(sev.leaveOneSourceOut.evaluation.metrics['within1'])}.
Per grade: ${JSON.stringify(sev.data.perClass)}; grade 3 has very few clips, so read the severity numbers as rough.

${robustness(sev)}

## Triage (abnormal vs healthy)
Chosen: ${tri.final.description}. AUC **${fmt(chosen(tri).metrics['auc'])}**, sensitivity ${fmt(chosen(tri).metrics['sensitivity'])} and specificity ${fmt(chosen(tri).metrics['specificity'])} at 0.5.
LOSO AUC ${fmt(tri.leaveOneSourceOut.evaluation.metrics['auc'])}.

${robustness(tri)}

${bl ? bLinesSection(bl) : ''}## Ablation: interpretable biomarkers only vs biomarkers + pooled embedding
Same folds, same per-fold extractors, same trainer; only the input blocks differ.

| task | metric | biomarker statistics only (24 dims) | + embedding mean/max (shipped) |
|---|---|---|---|
| diagnosis | balanced accuracy | ${fmt(chosen(dxA).metrics['balancedAccuracy'])} | ${fmt(dxE.metrics['balancedAccuracy'])} |
| diagnosis | LOSO balanced accuracy | ${fmt(dxA.leaveOneSourceOut.evaluation.metrics['balancedAccuracy'])} | ${fmt(dx.leaveOneSourceOut.evaluation.metrics['balancedAccuracy'])} |
| severity | MAE | ${fmt(chosen(sevA).metrics['mae'])} | ${fmt(chosen(sev).metrics['mae'])} |
| triage | AUC | ${fmt(chosen(triA).metrics['auc'])} | ${fmt(chosen(tri).metrics['auc'])} |
${bl && blA ? `| b-lines | AUC | ${fmt(chosen(blA).metrics['auc'])} | ${fmt(chosen(bl).metrics['auc'])} |\n` : ''}
## End-to-end baseline
${
  e2e
    ? `The same backbone (${params.toLocaleString('en-US')} parameters${xr.e2e.variant === 'e2e-ssl' ? ', same contrastive pretraining' : ''}) trained directly on the
diagnosis with a 3-class head (mean-pooled frame logits, class-weighted cross-entropy), same folds, same steps and
augmentation, evaluated with the same metric code:

| | balanced accuracy | macro-F1 | covid sens. | pneumonia sens. | healthy sens. |
|---|---|---|---|---|---|
| experts on biomarker features (CV) | ${fmt(dxE.metrics['balancedAccuracy'])} | ${fmt(dxE.metrics['macroF1'])} | ${fmt(dxE.metrics['sensitivity.covid'])} | ${fmt(dxE.metrics['sensitivity.pneumonia'])} | ${fmt(dxE.metrics['sensitivity.healthy'])} |
| end-to-end CNN (CV) | ${fmt(e2e.metrics['balancedAccuracy'])} | ${fmt(e2e.metrics['macroF1'])} | ${fmt(e2e.metrics['sensitivity.covid'])} | ${fmt(e2e.metrics['sensitivity.pneumonia'])} | ${fmt(e2e.metrics['sensitivity.healthy'])} |`
    : `Not trained for ${x.name} ${x.version}: ${e2eNotRun}. The comparison on these folds is still owed.`
}

## Training cost (same machine: ${xr.hardware.device}, ${xr.hardware.cpu_threads} threads)
| what | seconds |
|---|---|
| extractor, 5 CV fold models (${xr.kept === 'ssl' ? 'pretraining + ' : ''}MIL), total | ${extractorCvSeconds.toFixed(0)} |
| extractor, shipped model | ${fitSeconds([xr.final.times]).toFixed(0)} |
| end-to-end baseline, 5 CV fold models, total | ${e2e ? e2eSeconds.toFixed(0) : 'not run'} |
| diagnosis expert: CV + LOSO + final fit (final fit alone) | ${dx.seconds.total.toFixed(1)} (${dx.seconds.final.toFixed(2)}) |
| severity expert | ${sev.seconds.total.toFixed(1)} (${sev.seconds.final.toFixed(2)}) |
| triage expert | ${tri.seconds.total.toFixed(1)} (${tri.seconds.final.toFixed(2)}) |
${bl ? `| b-lines expert | ${bl.seconds.total.toFixed(1)} (${bl.seconds.final.toFixed(2)}) |\n` : ''}
A new task costs an expert (seconds, CPU) on stored features; the extractor and the end-to-end model cost GPU-class
training per task.

## Against the published anchor
POCOVID-Net (VGG16 pretrained on ImageNet, about 14.7 M convolutional parameters) reports balanced accuracy 0.82 on
this collection with 5-fold CV split **by file**, which puts frames of one patient on both sides of the split. Our
numbers above use patient/series-disjoint folds and a ${params.toLocaleString('en-US')}-parameter extractor
(${(14.7e6 / params).toFixed(0)}× smaller), so they are not directly comparable: a per-file split inflates accuracy.
Diagnosis balanced accuracy here: ${fmt(dxE.metrics['balancedAccuracy'])}${
    dxE.metrics['balancedAccuracy']!.value > 0.82 ? ' (above the anchor)' : ' (below the anchor: we do not beat it yet)'
  }.

## Caveats
${withBlues ? caveatBoth() : caveatPocus(dx)}- Severity labels exist for ${sev.data.rows} clips only.
- Research use only; not validated for any clinical decision.
`;
}

/**
 * The training pipeline's orchestration, with the heavy steps (Python, decoding, feature extraction,
 * expert fits, the ship's parity) replaced by fakes that record their calls: which steps run in which
 * order, with which paths and versions, and how unfinished training output stops a run.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { loadManifest, writeManifest } from '../../../core/manifest';
import { DEFAULT_MODELS_DIR } from '../../../core/paths';
import { sha256Hex } from '../../../core/scan-id';
import type { Manifest } from '../../../core/schemas';
import { TrainingSetupError } from '../../../training/errors';
import type { TrainOptions, TrainOutcome } from '../../../training/experts/train-command';
import { writeFixtureModels } from '../../../training/onnx/fixture-models';
import {
  evaluateSteps,
  expertsSteps,
  extractorSteps,
  runSteps,
  trainingLayout,
  type PipelineDeps,
} from '../../../training/pipeline';
import { RECIPE_SCRIPT } from '../../../training/python-recipe';

let work: string;
let models: string;
let training: string;
let data: string;
let manifest: Manifest;
let calls: { step: string; args: unknown }[];
let report: { config: Record<string, unknown>; seed: number };

/** Fakes for every heavy step: each records its call and does the least the next step needs. */
function fakes(): Partial<PipelineDeps> {
  const record = (step: string, args: unknown): void => {
    calls.push({ step, args });
  };
  return {
    checkRecipeDependencies: (python) => record('check', python),
    runPython: async (python, args) => {
      record('python', [python, ...args]);
    },
    exportTrainingSet: async (dataDir, outDir, opts) => {
      record('export', { dataDir, outDir, size: opts.size, maxFrames: opts.maxFrames, folds: opts.folds });
      return { items: [] } as never;
    },
    shipExtractor: async (opts) => {
      record('ship', { name: opts.name, version: opts.version, from: opts.from, data: opts.data });
      // What a ship does to the manifest: the new extractor, the experts on the old one dropped.
      const m = loadManifest(opts.modelsDir).manifest;
      const changed = opts.name !== m.extractors.ultrasound.name || opts.version !== m.extractors.ultrasound.version;
      writeManifest(opts.modelsDir, {
        ...m,
        extractors: {
          ...m.extractors,
          ultrasound: { ...m.extractors.ultrasound, name: opts.name!, version: opts.version! },
        },
        experts: changed ? [] : m.experts,
      });
      return { entry: m.extractors.ultrasound, dropped: [] };
    },
    writeFeaturesJsonl: async (opts) => {
      record('features', { modelsDir: opts.modelsDir, out: opts.out, inputs: opts.inputs, cacheDir: opts.cacheDir });
      return { clips: 0, cached: 0 };
    },
    runExpertTraining: async (options: TrainOptions) => {
      record('expert', options);
      return {
        entry: { name: options.name, version: options.version },
        written: !options.dryRun,
        modelsDir: options.modelsDir,
        result: { selection: { metric: 'm' }, chosen: 'linear', candidates: {} },
      } as unknown as TrainOutcome;
    },
    writeEvaluationReport: (trainingDir, modelsDir) => {
      record('evaluate', { trainingDir, modelsDir });
      return path.join(modelsDir, 'EVALUATION.md');
    },
  };
}

const steps = (step: string) => calls.filter((c) => c.step === step).map((c) => c.args);
const rel = (p: string) => path.relative(process.cwd(), p);

/** The recipe's output as train_extractor.py leaves it: the report, fold models and (optionally) per-source models. */
function recipeOutput(opts: { loso?: 'finished' | 'unfinished' | 'other-seed' | 'missing-model' } = {}): void {
  const t = trainingLayout(training);
  mkdirSync(t.foldModels('ssl'), { recursive: true });
  writeFileSync(t.report, JSON.stringify(report));
  for (const f of [1, 0, 2]) writeFileSync(path.join(t.foldModels('ssl'), `fold-${f}.onnx`), `fold model ${f}`);
  writeFileSync(path.join(t.foldModels('ssl'), 'fold-x.onnx.bak'), 'not a fold model');
  if (!opts.loso) return;
  const dir = t.sourceModels('ssl');
  mkdirSync(dir, { recursive: true });
  for (const s of ['1', '2']) writeFileSync(path.join(dir, `source-${s}.onnx`), `source model ${s}`);
  if (opts.loso === 'unfinished') return;
  writeFileSync(
    path.join(dir, 'times.json'),
    JSON.stringify({
      recipe: 'ssl',
      config: report.config,
      seed: opts.loso === 'other-seed' ? report.seed + 1 : report.seed,
      sources: opts.loso === 'missing-model' ? ['1', '2', '3'] : ['1', '2'],
      times: [],
    }),
  );
}

beforeEach(() => {
  work = mkdtempSync(path.join(tmpdir(), 'sonomark-pipeline-'));
  models = path.join(work, 'models');
  training = path.join(work, 'training');
  data = path.join(work, 'pocus');
  manifest = writeFixtureModels(models).manifest;
  calls = [];
  // The shipped extractor's training report (its metrics JSON holds it whole).
  report = JSON.parse(
    readFileSync(
      path.join(
        DEFAULT_MODELS_DIR,
        loadManifest(DEFAULT_MODELS_DIR).manifest.extractors.ultrasound.file.replace(/\.onnx$/, '.metrics.json'),
      ),
      'utf8',
    ),
  );
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

const paths = () => ({ trainingDir: training, dataDir: data, modelsDir: models });
const quiet = { log: () => {}, print: () => {} };

describe('train experts', () => {
  it('extracts shipped, per-fold and per-source features, trains each expert and its ablation, then evaluates', async () => {
    // Prepare
    recipeOutput({ loso: 'finished' });
    const t = trainingLayout(training);
    const x = manifest.extractors.ultrasound;

    // Act
    await runSteps(expertsSteps({ ...paths(), log: () => {}, deps: fakes() }), quiet);

    // Assess
    expect(calls.map((c) => c.step)).toEqual([
      ...Array(1 + 3 + 2).fill('features'),
      ...Array(8).fill('expert'),
      'evaluate',
    ]);
    const features = steps('features') as { modelsDir: string; out: string; inputs: string[]; cacheDir: string }[];
    expect(features.map((f) => path.relative(training, f.out))).toEqual([
      'experts/features.jsonl',
      'experts/cv/fold0.jsonl',
      'experts/cv/fold1.jsonl',
      'experts/cv/fold2.jsonl',
      'experts/loso/source1.jsonl',
      'experts/loso/source2.jsonl',
    ]);
    expect(features.every((f) => f.inputs[0] === data && f.cacheDir === t.cache)).toBe(true);
    expect(features[0]!.modelsDir).toBe(models);
    // Each held-out model runs behind its own manifest: named apart, so the cache never mixes them.
    const heldOut = loadManifest(features[2]!.modelsDir).manifest;
    expect(heldOut.extractors.ultrasound).toMatchObject({
      name: `${x.name}-cv1`,
      version: x.version,
      file: 'extractor/cv1.onnx',
      sha256: sha256Hex(Buffer.from('fold model 1')),
      card: { summary: 'Cross-validation fold model 1: trained without fold 1.' },
    });
    expect(heldOut.extractors.ultrasound.card.cardFile).toBeUndefined();
    expect(heldOut.experts).toEqual([]);
    expect(loadManifest(features[5]!.modelsDir).manifest.extractors.ultrasound.name).toBe(`${x.name}-loso2`);

    const experts = steps('expert') as TrainOptions[];
    expect(experts.map((o) => [o.name, o.target, o.kind, o.classes, o.dryRun ?? false, o.blocks])).toEqual([
      ['diagnosis', 'diagnosis', 'classification', 'covid,pneumonia,healthy', false, undefined],
      ['diagnosis', 'diagnosis', 'classification', 'covid,pneumonia,healthy', true, ['biomarker-stats']],
      ['severity', 'severity', 'ordinal', '0,1,2,3', false, undefined],
      ['severity', 'severity', 'ordinal', '0,1,2,3', true, ['biomarker-stats']],
      ['triage', 'triage', 'binary', '0=healthy,1=abnormal', false, undefined],
      ['triage', 'triage', 'binary', '0=healthy,1=abnormal', true, ['biomarker-stats']],
      ['b-lines', 'b_lines', 'binary', '0=absent,1=present', false, undefined],
      ['b-lines', 'b_lines', 'binary', '0=absent,1=present', true, ['biomarker-stats']],
    ]);
    // Paths as the shipped reports and cards name them: relative to the working directory.
    expect(experts[0]).toMatchObject({
      features: rel(t.features),
      labels: rel(t.labels),
      groupColumn: 'group',
      foldColumn: 'fold',
      sourceColumn: 'source',
      cvFeatures: rel(path.join(training, 'experts', 'cv', 'fold{fold}.jsonl')),
      losoFeatures: rel(path.join(training, 'experts', 'loso', 'source{source}.jsonl')),
      modelsDir: rel(models),
      // No --version: the experts carry the version of the extractor whose features they read.
      version: x.version,
      report: rel(path.join(models, 'experts', `diagnosis-${x.version}.report.json`)),
    });
    expect(experts[1]!.report).toBe(rel(path.join(training, 'experts', 'diagnosis-biomarkers-only.report.json')));
    expect(steps('evaluate')).toEqual([{ trainingDir: training, modelsDir: models }]);
  });

  it('takes --version for the experts', async () => {
    recipeOutput({ loso: 'finished' });
    await runSteps(expertsSteps({ ...paths(), version: '3.1.4', log: () => {}, deps: fakes() }), quiet);
    expect((steps('expert') as TrainOptions[]).map((o) => o.version)).toEqual(Array(8).fill('3.1.4'));
    expect((steps('expert') as TrainOptions[])[4]!.report).toBe(
      rel(path.join(models, 'experts', 'triage-3.1.4.report.json')),
    );
  });

  it('goes on without per-source features when the recipe never ran --loso, and says what that costs', async () => {
    // Prepare
    recipeOutput();
    const lines: string[] = [];

    // Act
    await runSteps(expertsSteps({ ...paths(), log: (l) => lines.push(l), deps: fakes() }), { ...quiet, log: () => {} });

    // Assess
    expect(steps('features')).toHaveLength(4);
    expect((steps('expert') as TrainOptions[]).every((o) => o.losoFeatures === undefined)).toBe(true);
    expect(lines.join('\n')).toContain('leave-one-source-out will read features of an extractor that saw every source');
  });

  it.each([
    ['unfinished', /has no times\.json: train_extractor\.py --loso has not finished/],
    ['other-seed', /was trained with another recipe or seed than the extractor training report/],
    ['missing-model', /lists source 3, but .*source-3\.onnx is missing/],
  ] as const)('stops on a per-source set that is %s, before any expert trains', async (loso, message) => {
    // Prepare
    recipeOutput({ loso });

    // Act / Assess
    const run = runSteps(expertsSteps({ ...paths(), log: () => {}, deps: fakes() }), quiet);
    await expect(run).rejects.toThrow(TrainingSetupError);
    await expect(run).rejects.toThrow(message);
    expect(steps('expert')).toEqual([]);
  });

  it('stops when the recipe left no fold models', async () => {
    mkdirSync(path.join(training, 'extractor'), { recursive: true });
    writeFileSync(path.join(training, 'extractor', 'report.json'), JSON.stringify(report));
    await expect(runSteps(expertsSteps({ ...paths(), log: () => {}, deps: fakes() }), quiet)).rejects.toThrow(
      /No fold-<f>\.onnx in .*folds\/ssl: train_extractor\.py writes one per cross-validation fold/,
    );
  });

  it('stops when the manifest changed under the run', async () => {
    // Prepare
    recipeOutput({ loso: 'finished' });
    const plan = expertsSteps({ ...paths(), log: () => {}, deps: fakes() });
    writeManifest(models, {
      ...manifest,
      extractors: { ultrasound: { ...manifest.extractors.ultrasound, version: '9.9.9' } },
      experts: [],
    });

    // Act / Assess
    await expect(runSteps(plan, quiet)).rejects.toThrow(
      `The manifest in ${models} now runs ${manifest.extractors.ultrasound.name}@9.9.9, but this run was planned for ${manifest.extractors.ultrasound.name}@${manifest.extractors.ultrasound.version}.`,
    );
  });
});

describe('train extractor', () => {
  it('checks the packages, exports the training set, runs the recipe and --loso, ships, then trains the experts', async () => {
    // Prepare
    recipeOutput({ loso: 'finished' });
    const t = trainingLayout(training);

    // Act
    await runSteps(extractorSteps({ ...paths(), python: '/opt/py', log: () => {}, deps: fakes() }), quiet);

    // Assess
    expect(calls.map((c) => c.step).slice(0, 6)).toEqual(['check', 'export', 'python', 'python', 'ship', 'features']);
    expect(steps('check')).toEqual(['/opt/py']);
    expect(steps('export')).toEqual([
      {
        dataDir: data,
        outDir: t.trainingSet,
        size: manifest.extractors.ultrasound.input.size,
        maxFrames: manifest.extractors.ultrasound.input.maxFrames,
        folds: 5,
      },
    ]);
    expect(steps('python')).toEqual([
      ['/opt/py', RECIPE_SCRIPT, '--data', t.trainingSet, '--out', t.extractor],
      ['/opt/py', RECIPE_SCRIPT, '--data', t.trainingSet, '--out', t.extractor, '--loso'],
    ]);
    // No --version: the manifest's extractor is re-shipped under its own name and version.
    expect(steps('ship')).toEqual([
      {
        name: manifest.extractors.ultrasound.name,
        version: manifest.extractors.ultrasound.version,
        from: t.extractor,
        data: t.trainingSet,
      },
    ]);
    expect(steps('expert')).toHaveLength(8);
    expect(calls.at(-1)!.step).toBe('evaluate');
  });

  it('ships a new version, and the experts follow it', async () => {
    // Prepare
    recipeOutput({ loso: 'finished' });

    // Act
    await runSteps(
      extractorSteps({
        ...paths(),
        python: '/opt/py',
        name: 'next-extractor',
        version: '2.0.0',
        log: () => {},
        deps: fakes(),
      }),
      quiet,
    );

    // Assess
    expect(steps('ship')).toMatchObject([{ name: 'next-extractor', version: '2.0.0' }]);
    expect((steps('expert') as TrainOptions[]).map((o) => o.version)).toEqual(Array(8).fill('2.0.0'));
    expect(
      loadManifest((steps('features')[1] as { modelsDir: string }).modelsDir).manifest.extractors.ultrasound.name,
    ).toBe('next-extractor-cv0');
  });

  it('--ship-only ships what the recipe left, without exporting or running Python', async () => {
    recipeOutput({ loso: 'finished' });
    await runSteps(
      extractorSteps({ ...paths(), python: '/opt/py', shipOnly: true, log: () => {}, deps: fakes() }),
      quiet,
    );
    expect(calls.map((c) => c.step).slice(0, 2)).toEqual(['ship', 'features']);
    expect(steps('python')).toEqual([]);
  });

  it('--dry-run prints every step with what it reads and writes, and runs none', async () => {
    // Prepare
    const printed: string[] = [];

    // Act
    await runSteps(extractorSteps({ ...paths(), python: '/opt/py', log: () => {}, deps: fakes() }), {
      dryRun: true,
      log: () => {},
      print: (l) => printed.push(l),
    });

    // Assess
    expect(calls).toEqual([]);
    const titles = printed.filter((l) => /^\d+\. /.test(l));
    expect(titles).toEqual([
      '1. the recipe has PyTorch and onnx',
      '2. training set (the extractor decoder)',
      '3. extractor recipe: grouped CV, end-to-end baseline, final model, parity',
      '4. one extractor per held-out source',
      `5. ship ${manifest.extractors.ultrasound.name}@${manifest.extractors.ultrasound.version}`,
      '6. features with the shipped extractor',
      '7. per-fold extractor features',
      '8. per-source extractor features',
      `9. expert diagnosis@${manifest.extractors.ultrasound.version}`,
      '10. ablation diagnosis: biomarker statistics only',
      `11. expert severity@${manifest.extractors.ultrasound.version}`,
      '12. ablation severity: biomarker statistics only',
      `13. expert triage@${manifest.extractors.ultrasound.version}`,
      '14. ablation triage: biomarker statistics only',
      `15. expert b-lines@${manifest.extractors.ultrasound.version}`,
      '16. ablation b-lines: biomarker statistics only',
      '17. models/EVALUATION.md',
    ]);
    expect(printed).toContain(
      `     /opt/py ${RECIPE_SCRIPT} --data ${path.join(training, 'pocus')} --out ${path.join(training, 'extractor')} --loso`,
    );
    expect(printed.join('\n')).toContain(
      "the manifest's extractor version: re-ships the shipped model; --version for a new one",
    );
    // Before the recipe ran, the plan cannot know which recipe it keeps.
    expect(printed.join('\n')).toContain(path.join(training, 'extractor', 'folds', '<kept recipe>', 'fold-<f>.onnx'));
  });
});

describe('train evaluate', () => {
  it('is the evaluation step alone', async () => {
    await runSteps(evaluateSteps({ ...paths(), log: () => {}, deps: fakes() }), quiet);
    expect(calls).toEqual([{ step: 'evaluate', args: { trainingDir: training, modelsDir: models } }]);
  });

  it('fails at once when the manifest lacks one of the evaluated experts', () => {
    writeManifest(models, { ...manifest, experts: manifest.experts.filter((e) => e.name !== 'severity') });
    expect(() => evaluateSteps({ ...paths(), log: () => {} })).toThrow('No expert named "severity" in the manifest');
  });
});

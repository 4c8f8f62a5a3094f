/** The extractor's model card says which recipe switches trained it and how the recipe was chosen. */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { BIOMARKERS } from '../../../core/biomarkers';
import { tempDir } from '../../helpers/temp';
import {
  readExperiments,
  recipeSwitches,
  renderCard,
  type ExperimentResult,
  type TrainingReport,
} from '../../../training/ship-extractor';

const base = {
  embedding_dim: 48,
  steps: 900,
  batch_clips: 12,
  frames_per_clip: 8,
  lr: 0.002,
  weight_decay: 0.01,
  ssl_steps: 1000,
  ssl_batch: 24,
};

function variant(mean: number) {
  const row = {
    positives: 5,
    annotated: 20,
    auc: mean,
    auc_ci95: [0.5, 0.9] as [number, number],
    auc_clip_mean: mean,
    auc_per_fold: [],
  };
  return {
    per_biomarker: Object.fromEntries(BIOMARKERS.map((b) => [b, row])),
    mean_auc: mean,
    wall_s: 60,
    times: [],
  };
}

function report(config: TrainingReport['config']): TrainingReport {
  return {
    config,
    seed: 1,
    hardware: { device: 'CPU (x86_64)', cpu_threads: 2, torch: '1.13', python: '3.11' },
    positives: {},
    unlearnable: [],
    dropped_upstream: {},
    folds: 5,
    cv: { nossl: variant(0.7), ssl: variant(0.8) },
    kept: 'ssl',
    final: { times: { ssl_s: 10, train_s: 20 }, parameters: 1000 },
    wall_s: 600,
  };
}

const entry = { name: 'm', version: '1.1.0', sha256: 'ab'.repeat(32) };
const items = [{ npy: 'frames/a.npy', license: 'CC BY', kind: 'clip', source: '1', group: 'g' }];
const parity = { biomarkers: 1e-7, embedding: 1e-6 };

describe('recipeSwitches', () => {
  it('lists nothing for the default recipe and every switch that is on', () => {
    expect(recipeSwitches({ embedding_dim: 48 })).toEqual([]);
    const on = recipeSwitches({
      embedding_dim: 48,
      frame_norm: true,
      dropout: 0.2,
      aux_diagnosis: 0.5,
      extra_conv: true,
      ema: 0.98,
    });
    expect(on).toHaveLength(5);
    expect(on.join(' ')).toMatch(
      /standardisation.*dropout 0\.2.*diagnosis head \(weight 0\.5.*sixth conv.*decay 0\.98/,
    );
  });
});

describe('renderCard', () => {
  it('names the switches, the diagnosis caveat and every variant with what it changed', () => {
    const experiments: ExperimentResult[] = [
      { tag: 'a', recipe: 'ssl', config: { ...base, frame_norm: true }, mean_auc: 0.71, wall_s: 300 },
      { tag: 'b', recipe: 'nossl', config: { ...base, aux_diagnosis: 0.5 }, mean_auc: 0.75, wall_s: 120 },
    ];
    const card = renderCard(entry, report({ ...base, aux_diagnosis: 0.5 }), items, parity, experiments);
    expect(card).toContain('AdamW (weight decay 0.01)');
    expect(card).toContain('- With an auxiliary diagnosis head (weight 0.5');
    expect(card).toMatch(/not a pure\s+finding detector/);
    expect(card).toContain('## How the recipe was chosen');
    expect(card).toMatch(/Choosing among\s+3 recipes/);
    expect(card).toContain('| `a` | ssl | aux_diagnosis=null, frame_norm=true | 0.710 | −0.090 | 5.0 |');
    expect(card).toContain('| `b` | nossl | same as shipped | 0.750 | −0.050 | 2.0 |');
    expect(card).not.toContain('not shipped yet');
    expect(card).not.toContain('more than one seed');
  });

  it('reports the shipped recipe under other seeds as seed spread, not as recipes chosen among', () => {
    const experiments: ExperimentResult[] = [
      { tag: 'shipped', recipe: 'ssl', config: base, mean_auc: 0.8, wall_s: 60 },
      { tag: 's2', recipe: 'ssl', config: base, seed: 2, mean_auc: 0.74, wall_s: 60 },
      { tag: 's3', recipe: 'ssl', config: base, seed: 3, mean_auc: 0.77, wall_s: 60 },
      { tag: 'other', recipe: 'ssl', config: { ...base, steps: 450 }, seed: 2, mean_auc: 0.7, wall_s: 60 },
      { tag: 'up', recipe: 'ssl', config: { ...base, steps: 450 }, seed: 3, mean_auc: 0.8, wall_s: 60 },
    ];
    const card = renderCard(entry, report(base), items, parity, experiments);
    expect(card).toMatch(/Choosing among\s+2 recipes/);
    expect(card).toContain('| `s2` | ssl | same as shipped, seed 2 | 0.740 |  | 1.0 |');
    // Each variant against the shipped recipe on its own seed: 0.70 - 0.74 and 0.80 - 0.77.
    expect(card).toContain('| `other` | ssl | steps=450, seed 2 | 0.700 | −0.040 | 1.0 |');
    expect(card).toContain('| `up` | ssl | steps=450, seed 3 | 0.800 | +0.030 | 1.0 |');
    expect(card).toMatch(/Above the shipped recipe on the same seed, and not shipped yet: `up`\./);
    // The same variant on two seeds, summed up paired: (−0.040 + 0.030) / 2.
    expect(card).toContain(
      '- steps=450, on 2 seeds: mean 0.750, −0.005 against the shipped recipe on the same seeds (higher on 1 of 2).',
    );
    expect(card).toMatch(/0\.740 \(seed 2\), 0\.770 \(seed 3\), against 0\.800 with the shipped seed/);
    expect(card).toMatch(/Over these 3 seeds the recipe's mean CV AUC is\s+\*\*0\.770\*\* \(range 0\.740–0\.800\)/);
    expect(card).toMatch(/moves it by\s+0\.060/);
  });

  it('reports train_fraction runs as a learning curve paired by seed, not as recipes chosen among', () => {
    const experiments: ExperimentResult[] = [
      { tag: 's2', recipe: 'ssl', config: base, seed: 2, mean_auc: 0.74, wall_s: 60 },
      { tag: 'half1', recipe: 'ssl', config: { ...base, train_fraction: 0.5 }, mean_auc: 0.7, wall_s: 60 },
      { tag: 'half2', recipe: 'ssl', config: { ...base, train_fraction: 0.5 }, seed: 2, mean_auc: 0.7, wall_s: 60 },
      // No all-data run on seed 9: it counts in the fraction's mean but not in the paired change.
      { tag: 'half9', recipe: 'ssl', config: { ...base, train_fraction: 0.5 }, seed: 9, mean_auc: 0.64, wall_s: 60 },
      { tag: 'q1', recipe: 'ssl', config: { ...base, train_fraction: 0.25 }, mean_auc: 0.62, wall_s: 60 },
      // Another recipe on less data is a variant like any other.
      { tag: 'odd', recipe: 'ssl', config: { ...base, steps: 1, train_fraction: 0.5 }, mean_auc: 0.5, wall_s: 60 },
    ];
    const card = renderCard(entry, report(base), items, parity, experiments);
    expect(card).not.toContain('`half1`');
    expect(card).toContain('| `odd` | ssl | steps=1, train_fraction=0.5 | 0.500 | −0.300 | 1.0 |');
    expect(card).toMatch(/Choosing among\s+2 recipes/);
    expect(card).toContain('## How much the data limits the model');
    // Seed 1 (shipped) 0.80, seed 2 0.74: the 50% runs lose 0.10 and 0.04 on their seeds.
    expect(card).toContain('| 25% | 1 | 0.620 | −0.180 |');
    expect(card).toContain('| 50% | 1, 2, 9 | 0.680 | −0.070 |');
    expect(card).toContain('| 100% | 1, 2 | 0.770 | |');
    // Per doubling: 0.18 - 0.07 from 25% to 50%, 0.07 from 50% to all; the last step extrapolates:
    // 0.85 - 0.77 = 0.08 more takes 2^(0.08/0.07) ≈ 2.2× the clips.
    expect(card).toContain('per doubling of the training data: +0.110 from 25% to 50%, +0.070 from 50% to 100%.');
    expect(card).toMatch(/would take about\s+2\.2× the labelled clips/);

    const flat = renderCard(entry, report(base), items, parity, [
      { tag: 'h', recipe: 'ssl', config: { ...base, train_fraction: 0.5 }, mean_auc: 0.81, wall_s: 60 },
    ]);
    expect(flat).toContain('−0.010 from 50% to 100%. The last step gained nothing');
    expect(flat).not.toContain('would take');
    expect(flat).not.toContain('How the recipe was chosen');
  });

  it('adds the all-frame parity when the check ran', () => {
    const full = { frames: 6101, maxAbsDiff: { biomarkers: 1.3e-6, embedding: 1.34e-5 }, overTolerance: 0 };
    expect(renderCard(entry, report(base), items, parity, [], undefined, full)).toContain(
      'On all 6,101 training frames: 1.3e-6 (biomarkers), 1.3e-5 (embedding).',
    );
    expect(renderCard(entry, report(base), items, parity)).not.toContain('training frames:');
  });

  it('has a changes section only when the version says what changed', () => {
    expect(renderCard(entry, report(base), items, parity, [], 'Re-exported.')).toContain(
      '## Changes in 1.1.0\nRe-exported.',
    );
    expect(renderCard(entry, report(base), items, parity)).not.toContain('## Changes');
  });

  it('has no selection section or diagnosis caveat when nothing was selected', () => {
    const card = renderCard(entry, report(base), items, parity);
    expect(card).not.toContain('How the recipe was chosen');
    expect(card).not.toContain('finding detector');
    expect(card).not.toContain('- With ');
    expect(card).toContain('- Network: 5 conv-BN-ReLU layers');
    expect(renderCard(entry, report({ ...base, extra_conv: true }), items, parity)).toContain(
      '- Network: 6 conv-BN-ReLU layers',
    );
  });
});

describe('readExperiments', () => {
  it('reads every experiment JSON in tag order and ignores the fold-model folders', () => {
    const dir = tempDir('sonomark-exp-');
    expect(readExperiments(dir)).toEqual([]);
    mkdirSync(path.join(dir, 'experiments', 'b'), { recursive: true });
    for (const [tag, auc] of [
      ['b', 0.7],
      ['a', 0.6],
    ] as const) {
      writeFileSync(
        path.join(dir, 'experiments', `${tag}.json`),
        JSON.stringify({ recipe: 'ssl', config: base, mean_auc: auc, wall_s: 1, per_biomarker: {} }),
      );
    }
    expect(readExperiments(dir).map((e) => [e.tag, e.mean_auc])).toEqual([
      ['a', 0.6],
      ['b', 0.7],
    ]);
  });
});

/**
 * The fixture model set: one extractor and the three experts, with the manifest
 * that describes them. `training/make-fixture-models.ts` writes it into models/;
 * tests write it into temp dirs. Deterministic: no timestamps, fixed seeds, so
 * the output is byte-for-byte reproducible and a test can prove the committed
 * files match the script.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { BIOMARKERS } from '../../core/biomarkers';
import { blocksDim } from '../../core/features';
import { manifestJson, writeManifest } from '../../core/manifest';
import { MODELS } from '../../core/contract';
import { sha256Hex } from '../../core/scan-id';
import type { ExpertEntry, FeatureBlock, Manifest, ModelCard, TaskKind } from '../../core/schemas';
import { buildFixtureExtractor, buildLinearExpert, EXPERT_IO, EXTRACTOR_IO } from './fixtures';

export const FIXTURE_EXTRACTOR = {
  name: 'sonomark-fixture-extractor',
  version: '0.0.1',
  size: 128,
  embeddingDim: 32,
  maxFrames: 64,
  batchSize: 32,
  seed: 1001,
} as const;

export const FIXTURE_EXPERT_VERSION = '0.0.1';
export const FIXTURE_BLOCKS: readonly FeatureBlock[] = ['biomarker-stats', 'embedding-mean', 'embedding-max'];

interface FixtureExpertSpec {
  readonly name: string;
  readonly task: TaskKind;
  readonly labels: readonly string[];
  readonly positive?: string;
  readonly seed: number;
  readonly purpose: string;
}

export const FIXTURE_EXPERTS: readonly FixtureExpertSpec[] = [
  {
    name: 'diagnosis',
    task: 'classification',
    labels: ['covid', 'pneumonia', 'healthy'],
    seed: 2001,
    purpose: 'diagnosis (covid / pneumonia / healthy)',
  },
  { name: 'severity', task: 'ordinal', labels: ['0', '1', '2', '3'], seed: 2002, purpose: 'lung severity score (0-3)' },
  {
    name: 'triage',
    task: 'binary',
    labels: ['healthy', 'abnormal'],
    positive: 'abnormal',
    seed: 2003,
    purpose: 'triage (probability the clip is abnormal)',
  },
];

const FIXTURE_WARNING =
  'FIXTURE, NOT TRAINED: the weights are deterministic random projections (seeded PRNG) for exercising the pipeline. ' +
  'Its outputs carry no clinical meaning and must never be used for any decision. To be replaced by the trained';

function fixtureCard(what: string, seed: number): ModelCard {
  return {
    status: 'fixture',
    summary: `${FIXTURE_WARNING} ${what}. It only has the input/output contract of the ${what}.`,
    intendedUse: 'Pipeline, integration and load tests only. Not for research results, not for patient care.',
    trainingData: `None. Not trained on any data: weights drawn from mulberry32(seed ${seed}) by training/onnx/fixtures.ts.`,
    metrics: {},
    limitations: [
      'Outputs are arbitrary functions of the pixels and carry no clinical meaning.',
      'Any agreement with real labels is coincidence.',
      `Regenerate with "npx tsx training/make-fixture-models.ts"; replace with the trained ${what}.`,
    ],
  };
}

export interface FixtureModelSet {
  readonly manifest: Manifest;
  /** Relative path under the models dir → bytes (manifest.json included). */
  readonly files: ReadonlyMap<string, Uint8Array>;
}

/** Builds every fixture file in memory. */
export function buildFixtureModelSet(): FixtureModelSet {
  const files = new Map<string, Uint8Array>();
  const x = FIXTURE_EXTRACTOR;
  const extractorFile = `extractor/${x.name}-${x.version}.onnx`;
  const extractorBytes = buildFixtureExtractor({ size: x.size, embeddingDim: x.embeddingDim, seed: x.seed });
  files.set(extractorFile, extractorBytes);

  const dim = blocksDim(FIXTURE_BLOCKS, { labels: BIOMARKERS, embeddingDim: x.embeddingDim });
  const experts: ExpertEntry[] = FIXTURE_EXPERTS.map((spec) => {
    const file = `experts/${spec.name}-${FIXTURE_EXPERT_VERSION}.onnx`;
    const bytes = buildLinearExpert({
      inputDim: dim,
      labels: spec.labels,
      seed: spec.seed,
      name: `sonomark_fixture_${spec.name}`,
      docString: `sonomark FIXTURE expert "${spec.name}" (seed ${spec.seed}): deterministic random projection, NOT trained; outputs carry no clinical meaning.`,
    });
    files.set(file, bytes);
    return {
      name: spec.name,
      version: FIXTURE_EXPERT_VERSION,
      file,
      sha256: sha256Hex(bytes),
      task: spec.task,
      extractor: { modality: 'ultrasound', name: x.name, version: x.version },
      input: { name: EXPERT_IO.input, blocks: [...FIXTURE_BLOCKS], dim },
      output: {
        name: EXPERT_IO.output,
        labels: [...spec.labels],
        ...(spec.positive !== undefined ? { positive: spec.positive } : {}),
      },
      lambda: { memoryMb: 1024, timeoutSeconds: 60, reservedConcurrency: 10 },
      card: fixtureCard(`${spec.purpose} expert`, spec.seed),
    };
  });

  const manifest: Manifest = {
    schemaVersion: 2,
    extractors: {
      ultrasound: {
        name: x.name,
        version: x.version,
        file: extractorFile,
        sha256: sha256Hex(extractorBytes),
        input: { name: EXTRACTOR_IO.input, size: x.size, maxFrames: x.maxFrames, batchSize: x.batchSize },
        outputs: {
          biomarkers: { name: EXTRACTOR_IO.biomarkers, labels: [...BIOMARKERS] },
          embedding: { name: EXTRACTOR_IO.embedding, dim: x.embeddingDim },
        },
        card: fixtureCard('biomarker extractor', x.seed),
      },
    },
    experts,
  };
  files.set(MODELS.manifestFile, new TextEncoder().encode(manifestJson(manifest)));
  return { manifest, files };
}

/**
 * Writes the fixture model set under `dir` (created if missing); returns what was written. The models
 * first, the manifest last (through writeManifest), so the manifest never names a missing file.
 */
export function writeFixtureModels(dir: string): FixtureModelSet {
  const set = buildFixtureModelSet();
  for (const [rel, bytes] of set.files) {
    if (rel === MODELS.manifestFile) continue;
    const file = path.join(dir, rel);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, bytes);
  }
  writeManifest(dir, set.manifest);
  return set;
}

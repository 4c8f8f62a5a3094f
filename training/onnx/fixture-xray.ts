/**
 * The X-ray FIXTURE models: an extractor with the X-ray interface (input `frames` [N,1,S,S], outputs
 * `biomarkers` [N,3] in XRAY_FINDINGS order and `embedding` [N,D]) and two experts reading its
 * features, added to a model directory that already holds a manifest. Deterministic random
 * projections (fixtures.ts), NOT trained: tests route X-rays through the workflow with them without
 * depending on the trained X-ray extractor or experts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { blocksDim } from '../../core/features';
import { loadManifest, writeManifest, type LoadedManifest } from '../../core/manifest';
import { XRAY_FINDINGS } from '../../core/modality';
import { sha256Hex } from '../../core/scan-id';
import type { ExpertEntry, ExtractorEntry, FeatureBlock, ModelCard } from '../../core/schemas';
import { buildFixtureExtractor, buildLinearExpert, EXPERT_IO, EXTRACTOR_IO } from './fixtures';

export const FIXTURE_XRAY_EXTRACTOR = {
  name: 'sonomark-fixture-xray',
  version: '0.0.1',
  size: 128,
  embeddingDim: 16,
  seed: 3001,
} as const;

const BLOCKS: readonly FeatureBlock[] = ['biomarker-stats', 'embedding-mean'];

/** Two experts with the shape of the X-ray ones (binary tasks on one image's features). */
export const FIXTURE_XRAY_EXPERTS = [
  { name: 'xray-fixture-pneumonia', labels: ['normal', 'pneumonia'], positive: 'pneumonia', seed: 3101 },
  { name: 'xray-fixture-covid', labels: ['other', 'covid'], positive: 'covid', seed: 3102 },
] as const;

function card(what: string, seed: number): ModelCard {
  return {
    status: 'fixture',
    summary: `FIXTURE, NOT TRAINED: deterministic random projections (seed ${seed}) with the interface of the X-ray ${what}.`,
    intendedUse: 'Pipeline and integration tests only. Not for research results, not for patient care.',
    trainingData: `None: weights drawn from mulberry32(seed ${seed}) by training/onnx/fixtures.ts.`,
    metrics: {},
    limitations: ['Outputs are arbitrary functions of the pixels and carry no clinical meaning.'],
  };
}

/**
 * Writes the X-ray fixture extractor and experts into `dir` and adds them to its manifest (the X-ray
 * extractor replaced, the X-ray fixture experts added beside the others). Returns the new manifest.
 */
export function addXrayFixtureModels(dir: string): LoadedManifest {
  const { manifest } = loadManifest(dir);
  const x = FIXTURE_XRAY_EXTRACTOR;
  const write = (rel: string, bytes: Uint8Array) => {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), bytes);
    return sha256Hex(bytes);
  };
  const extractorFile = `extractor/${x.name}-${x.version}.onnx`;
  const extractor: ExtractorEntry = {
    name: x.name,
    version: x.version,
    file: extractorFile,
    sha256: write(
      extractorFile,
      buildFixtureExtractor({
        size: x.size,
        embeddingDim: x.embeddingDim,
        outputs: XRAY_FINDINGS.length,
        seed: x.seed,
      }),
    ),
    // One image (maxFrames 1), made by the X-ray preprocessing of the decoder, as the trained extractor's.
    input: { name: EXTRACTOR_IO.input, size: x.size, maxFrames: 1, batchSize: 1, preprocessing: 'xray-1' },
    outputs: {
      biomarkers: { name: EXTRACTOR_IO.biomarkers, labels: [...XRAY_FINDINGS] },
      embedding: { name: EXTRACTOR_IO.embedding, dim: x.embeddingDim },
    },
    card: card('extractor', x.seed),
  };
  const dim = blocksDim(BLOCKS, { labels: XRAY_FINDINGS, embeddingDim: x.embeddingDim });
  const experts: ExpertEntry[] = FIXTURE_XRAY_EXPERTS.map((spec) => {
    const file = `experts/${spec.name}-${x.version}.onnx`;
    return {
      name: spec.name,
      version: x.version,
      file,
      sha256: write(
        file,
        buildLinearExpert({
          inputDim: dim,
          labels: spec.labels,
          seed: spec.seed,
          name: `sonomark_fixture_${spec.name.replace(/-/g, '_')}`,
          docString: `sonomark FIXTURE X-ray expert "${spec.name}" (seed ${spec.seed}): NOT trained.`,
        }),
      ),
      task: 'binary',
      extractor: { modality: 'xray', name: x.name, version: x.version },
      input: { name: EXPERT_IO.input, blocks: [...BLOCKS], dim },
      output: { name: EXPERT_IO.output, labels: [...spec.labels], positive: spec.positive },
      lambda: { memoryMb: 1024, timeoutSeconds: 60, reservedConcurrency: 10 },
      card: card(`${spec.name} expert`, spec.seed),
    };
  });
  return writeManifest(dir, {
    ...manifest,
    extractors: { ...manifest.extractors, xray: extractor },
    // The X-ray experts of the directory read another extractor: replaced by the fixtures'.
    experts: [...manifest.experts.filter((e) => e.extractor.modality !== 'xray'), ...experts],
  });
}

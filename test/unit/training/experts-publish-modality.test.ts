/**
 * Publishing an expert of the X-ray modality: the entry names its modality's extractor, its input
 * dim is counted on that extractor's labels and embedding, and features of the other modality's
 * extractor are refused. Pure planning (planPublish) on a fixture models dir with an X-ray entry.
 */
import { extractorRef, loadManifest, writeManifest, type LoadedManifest } from '../../../core/manifest';
import { XRAY_FINDINGS } from '../../../core/modality';
import { planPublish, type ExpertDraft } from '../../../training/experts/publish';
import { buildFixtureModelSet, writeFixtureModels } from '../../../training/onnx/fixture-models';
import { tempDir } from '../../helpers/temp';

/** Fixture models plus an X-ray extractor entry (the fixture extractor relabelled; nothing here runs it). */
function withXray(): LoadedManifest {
  const dir = tempDir();
  const { manifest } = writeFixtureModels(dir);
  const us = manifest.extractors.ultrasound;
  const xray = {
    ...us,
    name: 'fixture-cxr',
    version: '0.0.1',
    outputs: { ...us.outputs, biomarkers: { ...us.outputs.biomarkers, labels: [...XRAY_FINDINGS] } },
  };
  writeManifest(dir, { ...manifest, extractors: { ...manifest.extractors, xray } });
  return loadManifest(dir);
}

const card = { summary: 's', intendedUse: 'u', trainingData: 'd', metrics: {}, limitations: [] };

function draft(loaded: LoadedManifest, over: Partial<ExpertDraft> = {}): ExpertDraft {
  const x = loaded.manifest.extractors.xray!;
  return {
    name: 'pneumonia',
    version: '0.1.0',
    kind: 'binary',
    labels: ['normal', 'pneumonia'],
    positive: 'pneumonia',
    blocks: ['biomarker-stats', 'embedding-mean'],
    inputDim: XRAY_FINDINGS.length * 4 + x.outputs.embedding.dim,
    extractor: extractorRef(x),
    modality: 'xray',
    card,
    ...over,
  };
}

describe('planPublish for an X-ray expert', () => {
  it('names the X-ray extractor and counts the input on its labels', () => {
    // Prepare
    const loaded = withXray();
    const x = loaded.manifest.extractors.xray!;

    // Act
    const plan = planPublish(loaded, draft(loaded), new Uint8Array([1, 2, 3]));

    // Assess
    expect(plan.entry.extractor).toEqual({ modality: 'xray', name: 'fixture-cxr', version: '0.0.1' });
    expect(plan.entry.input.dim).toBe(3 * 4 + x.outputs.embedding.dim);
    expect(plan.manifestJson.experts.map((e) => e.name)).toContain('pneumonia');
  });

  it('refuses ultrasound features for an X-ray expert, naming the modality', () => {
    // Prepare
    const loaded = withXray();
    const us = extractorRef(loaded.manifest.extractors.ultrasound);

    // Act / Assess
    expect(() => planPublish(loaded, draft(loaded, { extractor: us }), new Uint8Array([1]))).toThrow(
      /runs fixture-cxr@0\.0\.1 for xray/,
    );
  });

  it('refuses an X-ray expert for a models dir without an X-ray extractor', () => {
    // Prepare
    const dir = tempDir();
    writeFixtureModels(dir);
    const plain = loadManifest(dir);
    const d = draft(withXray());

    // Act / Assess
    expect(buildFixtureModelSet().manifest.extractors.xray).toBeUndefined();
    expect(() => planPublish(plain, d, new Uint8Array([1]))).toThrow(
      'The model manifest has no xray extractor (it has: ultrasound).',
    );
  });
});

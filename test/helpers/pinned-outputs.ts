/**
 * Pinned outputs of the shipped models on a few real POCUS clips: clip → decoder → extractor →
 * every manifest expert, through the serving code (extractFeatures, scoreFeatures). The pin file
 * (test/fixtures/pinned-model-outputs.json) records each expert's probability per label name and the
 * clip's per-biomarker mean, with the sha256 of every model and clip; test/integration/pinned-outputs.test.ts
 * recomputes them and fails on any difference beyond the tolerance. So a reordered label list, a
 * changed preprocessing (decoder, frame sampling, scaling), or a swapped model file cannot pass
 * unnoticed. After retraining on purpose, regenerate the pins:
 *
 *   npx tsx test/helpers/pinned-outputs.ts            (writes test/fixtures/pinned-model-outputs.json)
 *
 * and commit the file with the models, so the diff shows how the outputs moved.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { expertsFor, extractorFor, loadManifest, type LoadedManifest } from '../../core/manifest';
import { PACKAGE_ROOT } from '../../core/paths';
import { sha256Hex } from '../../core/scan-id';
import { BIOMARKERS } from '../../core/biomarkers';
import { Sha256Hex } from '../../core/schemas';
import { createExtractorSession, extractFeatures } from '../../gpu-tasks/feature-extractor/src';
import { scoreFeatures } from '../../lambdas/shared/scoring';
import { POCUS } from './pocus';

export const PIN_FILE = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'pinned-model-outputs.json');

/**
 * The clips, relative to the POCUS directory: one per diagnosis, a convex and a linear probe, a
 * video container of each kind the decoder handles (gif, mp4, avi) and a still image.
 */
export const PINNED_CLIPS = [
  'videos/convex/Reg-Atlas.gif',
  'videos/convex/Pneu_northumbria_0409_set6_vid1.avi',
  'videos/convex/Cov-Atlas-suspectedCovid.mp4',
  'videos/linear/Cov-Atlas-pleural.mp4',
] as const;

/**
 * Allowed |difference| per probability and biomarker mean. onnxruntime on another CPU may round
 * float32 differently (~1e-6); a reordered label list or another decoder moves outputs by far more.
 */
export const PIN_TOLERANCE = 1e-4;

const ModelPin = z.object({ name: z.string(), version: z.string(), sha256: Sha256Hex });

export const PinFile = z.object({
  generatedBy: z.string(),
  tolerance: z.number().positive(),
  extractor: ModelPin,
  experts: z.array(ModelPin.extend({ labels: z.array(z.string()).min(2) })),
  clips: z.array(
    z.object({
      clip: z.string(),
      sha256: Sha256Hex,
      /** Mean over the sampled frames of each biomarker's probability (the extractor's output). */
      biomarkerMeans: z.record(z.string(), z.number()),
      /** Per expert, as the result reports it: probability per label name (binary: the positive label's only). */
      experts: z.record(z.string(), z.record(z.string(), z.number())),
    }),
  ),
});
export type PinFile = z.infer<typeof PinFile>;

/** Runs the shipped models on the clips as serving does. */
export async function computePins(
  models: LoadedManifest = loadManifest(),
  clips: readonly string[] = PINNED_CLIPS,
  dataDir = POCUS,
): Promise<PinFile> {
  const { manifest } = models;
  const x = extractorFor(manifest, 'ultrasound');
  const session = await createExtractorSession(models.dir, x, { executionProvider: 'cpu' });
  const sessions = new Map();
  try {
    const out: PinFile['clips'] = [];
    for (const clip of clips) {
      const file = path.join(dataDir, clip);
      const features = await extractFeatures({ clip: file, scanId: '0'.repeat(32), session });
      const biomarkerMeans = Object.fromEntries(BIOMARKERS.map((b) => [b, features.biomarkers[b]!.mean]));
      const experts: Record<string, Record<string, number>> = {};
      for (const e of expertsFor(manifest, 'ultrasound')) {
        const r = await scoreFeatures(features, e, { models, sessions });
        // As the result reports it: every label's probability, or (binary) the positive label's.
        experts[e.name] =
          r.output.kind === 'binary' ? { [r.output.positive]: r.output.probability } : { ...r.output.probabilities };
      }
      out.push({ clip, sha256: sha256Hex(readFileSync(file)), biomarkerMeans, experts });
    }
    return {
      generatedBy: 'npx tsx test/helpers/pinned-outputs.ts',
      tolerance: PIN_TOLERANCE,
      extractor: { name: x.name, version: x.version, sha256: x.sha256 },
      experts: expertsFor(manifest, 'ultrasound').map((e) => ({
        name: e.name,
        version: e.version,
        sha256: e.sha256,
        labels: [...e.output.labels],
      })),
      clips: out,
    };
  } finally {
    await session.release();
  }
}

/** Every difference between the pins and freshly computed outputs, as sentences; empty when they agree. */
export function comparePins(pinned: PinFile, actual: PinFile): string[] {
  const diffs: string[] = [];
  const tol = pinned.tolerance;
  const model = (what: string, a: { version: string; sha256: string }, b: { version: string; sha256: string }) => {
    if (a.sha256 !== b.sha256)
      diffs.push(
        `${what}: pinned ${a.version} (sha256 ${a.sha256.slice(0, 12)}…), shipped ${b.version} (sha256 ${b.sha256.slice(0, 12)}…)`,
      );
  };
  model(`extractor ${pinned.extractor.name}`, pinned.extractor, actual.extractor);
  const names = (l: { name: string }[]) => l.map((e) => e.name).join(', ');
  if (names(pinned.experts) !== names(actual.experts)) {
    diffs.push(`experts: pinned [${names(pinned.experts)}], shipped [${names(actual.experts)}]`);
  }
  for (const p of pinned.experts) {
    const a = actual.experts.find((e) => e.name === p.name);
    if (!a) continue;
    model(`expert ${p.name}`, p, a);
    if (p.labels.join(',') !== a.labels.join(',')) {
      diffs.push(`expert ${p.name}: pinned labels [${p.labels.join(', ')}], shipped [${a.labels.join(', ')}]`);
    }
  }
  for (const pc of pinned.clips) {
    const ac = actual.clips.find((c) => c.clip === pc.clip);
    if (!ac) {
      diffs.push(`${pc.clip}: not computed`);
      continue;
    }
    if (ac.sha256 !== pc.sha256) diffs.push(`${pc.clip}: the clip's bytes changed (sha256)`);
    for (const [b, v] of Object.entries(pc.biomarkerMeans)) {
      const got = ac.biomarkerMeans[b];
      if (got === undefined || !(Math.abs(got - v) <= tol)) diffs.push(`${pc.clip}: ${b} mean ${got} ≠ pinned ${v}`);
    }
    for (const [expert, probs] of Object.entries(pc.experts)) {
      for (const [label, v] of Object.entries(probs)) {
        const got = ac.experts[expert]?.[label];
        if (got === undefined || !(Math.abs(got - v) <= tol)) {
          diffs.push(`${pc.clip}: ${expert} p(${label}) ${got} ≠ pinned ${v.toFixed(6)} (tolerance ${tol})`);
        }
      }
    }
  }
  return diffs;
}

export function readPins(file = PIN_FILE): PinFile {
  return PinFile.parse(JSON.parse(readFileSync(file, 'utf8')));
}

/** Rounded to 1e-7: well inside the tolerance, and the file's diff stays readable. */
function rounded(pins: PinFile): PinFile {
  const r = (v: number) => Math.round(v * 1e7) / 1e7;
  const map = (o: Record<string, number>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, r(v)]));
  return {
    ...pins,
    clips: pins.clips.map((c) => ({
      ...c,
      biomarkerMeans: map(c.biomarkerMeans),
      experts: Object.fromEntries(Object.entries(c.experts).map(([k, v]) => [k, map(v)])),
    })),
  };
}

if (require.main === module) {
  computePins()
    .then(async (pins) => {
      // Formatted as `npm run lint` (prettier --check .) wants it.
      const prettier = await import('prettier');
      const options = (await prettier.resolveConfig(PIN_FILE)) ?? {};
      writeFileSync(PIN_FILE, await prettier.format(JSON.stringify(rounded(pins)), { ...options, parser: 'json' }));
      process.stdout.write(
        `wrote ${path.relative(process.cwd(), PIN_FILE)}: ${pins.clips.length} clips × ${pins.experts.length} experts\n`,
      );
    })
    .catch((e: unknown) => {
      process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    });
}

/**
 * Adds a trained expert to a models directory: the ONNX file under experts/ and
 * its manifest entry (added, or replacing the entry of the same name). The new
 * manifest is validated as loadManifest reads it before anything is written, and
 * the written model is read back through readVerifiedModel, as the Lambda reads it.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { blocksDim, featureShape } from '../../core/features';
import { DEFAULT_MODALITY, type Modality } from '../../core/modality';
import {
  loadManifest,
  readVerifiedModel,
  validateManifest,
  writeManifest,
  type LoadedManifest,
  type ManifestJson,
  extractorFor,
} from '../../core/manifest';
import { MODELS } from '../../core/contract';
import { sha256Hex } from '../../core/scan-id';
import type { ExpertEntry, FeatureBlock, ModelCard, ModelRef, TaskKind } from '../../core/schemas';
import { TrainingDataError } from './errors';
import { EXPERT_IO } from './onnx-export';

export interface ExpertDraft {
  readonly name: string;
  /** @default the manifest's entry of the same name, patch level bumped; required for a new expert */
  readonly version?: string;
  readonly kind: TaskKind;
  readonly labels: readonly string[];
  readonly positive?: string;
  readonly blocks: readonly FeatureBlock[];
  readonly inputDim: number;
  /** The extractor of the training features, and their modality (the manifest's extractors[modality] must be it). */
  readonly extractor: ModelRef;
  readonly modality: Modality;
  readonly card: Omit<ModelCard, 'status'>;
}

export interface PublishPlan {
  readonly entry: ExpertEntry;
  /** The manifest JSON to write (the file's own JSON with one entry added or replaced). */
  readonly manifestJson: ManifestJson;
  readonly replaced?: { version: string; status: string };
}

export function nextVersion(previous: string): string {
  const [major, minor, patch] = previous.split('.').map(Number) as [number, number, number];
  return `${major}.${minor}.${patch + 1}`;
}

/**
 * The version an expert is published under: the one given, else the manifest's entry of that name
 * with its patch level bumped. A new expert has no entry to count from, and a made-up default would
 * say nothing about what it was trained on, so it needs its version given.
 */
export function expertVersion(
  loaded: LoadedManifest,
  name: string,
  version: string | undefined,
  modality: Modality = DEFAULT_MODALITY,
): string {
  if (version !== undefined) return version;
  const previous = loaded.manifest.experts.find((e) => e.name === name);
  if (!previous) {
    throw new TrainingDataError(
      `The manifest in ${loaded.dir} has no expert "${name}" to take the next version from: pass --version X.Y.Z ` +
        `(the shipped experts carry the version of the extractor they read, ${extractorFor(loaded.manifest, modality).version}).`,
    );
  }
  return nextVersion(previous.version);
}

/** An expert only runs behind the extractor its features came from (name, version and model file). */
export function checkExtractor(loaded: LoadedManifest, extractor: ModelRef, modality: Modality): void {
  const x = extractorFor(loaded.manifest, modality);
  if (x.name !== extractor.name || x.version !== extractor.version || x.sha256 !== extractor.sha256) {
    throw new TrainingDataError(
      `The features come from ${extractor.name}@${extractor.version} (sha256 ${extractor.sha256.slice(0, 12)}…), ` +
        `but the manifest in ${loaded.dir} runs ${x.name}@${x.version} for ${modality} (sha256 ${x.sha256.slice(0, 12)}…). ` +
        'An expert only runs behind the extractor it was trained on: point --models-dir at that manifest, or extract features with this one.',
    );
  }
}

/** The entry and manifest a publish would write; throws if the models dir cannot take this expert. */
export function planPublish(loaded: LoadedManifest, draft: ExpertDraft, bytes: Uint8Array): PublishPlan {
  const m = loaded.manifest;
  const x = extractorFor(m, draft.modality);
  checkExtractor(loaded, draft.extractor, draft.modality);
  const dim = blocksDim(draft.blocks, featureShape(x));
  if (dim !== draft.inputDim) {
    throw new TrainingDataError(
      `Blocks [${draft.blocks.join(', ')}] give ${draft.inputDim} values in the features but ${dim} for the manifest's extractor (embedding dim ${x.outputs.embedding.dim}).`,
    );
  }
  const previous = m.experts.find((e) => e.name === draft.name);
  const version = expertVersion(loaded, draft.name, draft.version, draft.modality);
  const file = `experts/${draft.name}-${version}.onnx`;
  const entry: ExpertEntry = {
    name: draft.name,
    version,
    file,
    sha256: sha256Hex(bytes),
    task: draft.kind,
    extractor: { modality: draft.modality, name: draft.extractor.name, version: draft.extractor.version },
    input: { name: EXPERT_IO.input, blocks: [...draft.blocks], dim },
    output: {
      name: EXPERT_IO.output,
      labels: [...draft.labels],
      ...(draft.positive !== undefined ? { positive: draft.positive } : {}),
    },
    // Keep the deployment settings someone tuned for this expert.
    lambda: previous?.lambda ?? { memoryMb: 1024, timeoutSeconds: 60, reservedConcurrency: 10 },
    card: { status: 'trained', ...draft.card },
  };
  // The file's own JSON (loadManifest validated it), not zod's copy with its defaults filled in.
  const raw = JSON.parse(readFileSync(path.join(loaded.dir, MODELS.manifestFile), 'utf8')) as ManifestJson;
  const experts = raw.experts.filter((e) => e.name !== draft.name);
  const at = raw.experts.findIndex((e) => e.name === draft.name);
  experts.splice(at < 0 ? experts.length : at, 0, entry);
  const manifestJson = { ...raw, experts };

  // Validate exactly what will be written, as the loader every consumer uses reads it.
  validateManifest(manifestJson, `model manifest with ${draft.name}@${version} for ${loaded.dir}`);
  return {
    entry,
    manifestJson,
    ...(previous ? { replaced: { version: previous.version, status: previous.card.status } } : {}),
  };
}

function writeAtomically(file: string, data: Uint8Array | string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

/** Writes the model, then the manifest (so the manifest never names a missing file), then reads both back. */
export function publishExpert(dir: string, plan: PublishPlan, bytes: Uint8Array): LoadedManifest {
  writeAtomically(path.join(dir, plan.entry.file), bytes);
  writeManifest(dir, plan.manifestJson);
  const loaded = loadManifest(dir);
  readVerifiedModel(dir, plan.entry);
  return loaded;
}

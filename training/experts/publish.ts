/**
 * Adds a trained expert to a models directory: the ONNX file under experts/ and
 * its manifest entry (added, or replacing the entry of the same name). The new
 * manifest is validated by loadManifest before anything is written, and the
 * written model is read back through readVerifiedModel, as the Lambda reads it.
 */
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { blocksDim } from '../../core/features';
import { loadManifest, readVerifiedModel, type LoadedManifest } from '../../core/manifest';
import { MODELS } from '../../core/contract';
import { sha256Hex } from '../../core/scan-id';
import type { ExpertEntry, FeatureBlock, ModelCard, ModelRef, TaskKind } from '../../core/schemas';
import { TrainingDataError } from './errors';
import { EXPERT_IO } from './onnx-export';

export interface ExpertDraft {
  readonly name: string;
  /** @default the existing entry's version with the patch level bumped, or 0.1.0 */
  readonly version?: string;
  readonly kind: TaskKind;
  readonly labels: readonly string[];
  readonly positive?: string;
  readonly blocks: readonly FeatureBlock[];
  readonly inputDim: number;
  /** The extractor of the training features. */
  readonly extractor: ModelRef;
  readonly card: Omit<ModelCard, 'status'>;
}

export interface PublishPlan {
  readonly entry: ExpertEntry;
  /** The manifest JSON to write (the file's own JSON with one entry added or replaced). */
  readonly manifestJson: Record<string, unknown>;
  readonly replaced?: { version: string; status: string };
}

export function nextVersion(previous: string | undefined): string {
  if (!previous) return '0.1.0';
  const [major, minor, patch] = previous.split('.').map(Number) as [number, number, number];
  return `${major}.${minor}.${patch + 1}`;
}

/** An expert only runs behind the extractor its features came from (name, version and model file). */
export function checkExtractor(loaded: LoadedManifest, extractor: ModelRef): void {
  const x = loaded.manifest.extractor;
  if (x.name !== extractor.name || x.version !== extractor.version || x.sha256 !== extractor.sha256) {
    throw new TrainingDataError(
      `The features come from ${extractor.name}@${extractor.version} (sha256 ${extractor.sha256.slice(0, 12)}…), ` +
        `but the manifest in ${loaded.dir} runs ${x.name}@${x.version} (sha256 ${x.sha256.slice(0, 12)}…). ` +
        'An expert only runs behind the extractor it was trained on: point --models-dir at that manifest, or extract features with this one.',
    );
  }
}

/** The entry and manifest a publish would write; throws if the models dir cannot take this expert. */
export function planPublish(loaded: LoadedManifest, draft: ExpertDraft, bytes: Uint8Array): PublishPlan {
  const m = loaded.manifest;
  const x = m.extractor;
  checkExtractor(loaded, draft.extractor);
  const dim = blocksDim(draft.blocks, x.outputs.embedding.dim);
  if (dim !== draft.inputDim) {
    throw new TrainingDataError(
      `Blocks [${draft.blocks.join(', ')}] give ${draft.inputDim} values in the features but ${dim} for the manifest's extractor (embedding dim ${x.outputs.embedding.dim}).`,
    );
  }
  const previous = m.experts.find((e) => e.name === draft.name);
  const version = draft.version ?? nextVersion(previous?.version);
  const file = `experts/${draft.name}-${version}.onnx`;
  const entry: ExpertEntry = {
    name: draft.name,
    version,
    file,
    sha256: sha256Hex(bytes),
    task: draft.kind,
    extractor: { name: draft.extractor.name, version: draft.extractor.version },
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
  const raw = JSON.parse(readFileSync(path.join(loaded.dir, MODELS.manifestFile), 'utf8')) as Record<string, unknown>;
  const experts = (raw.experts as Record<string, unknown>[]).filter((e) => e.name !== draft.name);
  const at = (raw.experts as Record<string, unknown>[]).findIndex((e) => e.name === draft.name);
  experts.splice(at < 0 ? experts.length : at, 0, entry as unknown as Record<string, unknown>);
  const manifestJson = { ...raw, experts };

  // Validate exactly what will be written, through the loader every consumer uses.
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'sonomark-manifest-'));
  try {
    writeFileSync(path.join(tmp, MODELS.manifestFile), JSON.stringify(manifestJson));
    loadManifest(tmp);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
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
  writeAtomically(path.join(dir, MODELS.manifestFile), `${JSON.stringify(plan.manifestJson, null, 2)}\n`);
  const loaded = loadManifest(dir);
  readVerifiedModel(dir, plan.entry);
  return loaded;
}

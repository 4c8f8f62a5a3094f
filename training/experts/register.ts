/**
 * `sonomark experts publish`: registers an expert ONNX file (and its Markdown card) as a new
 * version of a manifest expert. The entry keeps the expert's task, input and output contract
 * (a new version must read the same features and name the same labels), takes the file's
 * sha256, and is written through publishExpert (model first, then the validated manifest).
 * The model is loaded by onnxruntime and run once on a zero vector before anything is written,
 * so a file that cannot serve this expert is refused with the reason.
 */
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { MODELS } from '../../core/contract';
import type { LoadedManifest, ManifestJson } from '../../core/manifest';
import { validateManifest } from '../../core/manifest';
import { sha256Hex } from '../../core/scan-id';
import type { ExpertEntry } from '../../core/schemas';
import { readFileSync } from 'node:fs';
import { TrainingDataError } from './errors';
import type { PublishPlan } from './publish';

export interface RegisterInput {
  readonly name: string;
  readonly version: string;
  readonly bytes: Uint8Array;
  /** The card's Markdown; stored as `experts/{name}-{version}.md` and named by the entry's cardFile. */
  readonly cardMarkdown?: string;
}

/** `NAME@X.Y.Z` → its parts; throws saying what is accepted. */
export function parseExpertRef(spec: string): { name: string; version: string } {
  const m = /^([a-z][a-z0-9-]*)@(\d+\.\d+\.\d+)$/.exec(spec);
  if (!m) throw new TrainingDataError(`"${spec}" is not NAME@X.Y.Z (e.g. diagnosis@1.2.0).`);
  return { name: m[1] as string, version: m[2] as string };
}

export const cardFileFor = (name: string, version: string): string => `experts/${name}-${version}.md`;

/** The first paragraph of a Markdown card that is not a heading: the card's one-line summary. */
function firstParagraph(markdown: string): string | undefined {
  return markdown
    .split(/\n\s*\n/)
    .map((p) => p.trim())
    .find((p) => p.length > 0 && !p.startsWith('#'))
    ?.replace(/\s+/g, ' ');
}

/** The entry and manifest that registering this file would write; throws if it cannot serve the expert. */
export async function planRegister(loaded: LoadedManifest, input: RegisterInput): Promise<PublishPlan> {
  const previous = loaded.manifest.experts.find((e) => e.name === input.name);
  if (!previous) {
    throw new TrainingDataError(
      `The manifest in ${loaded.dir} has no expert "${input.name}" (it has ${loaded.manifest.experts.map((e) => e.name).join(', ') || 'none'}): ` +
        'a new expert is added by "sonomark experts train", which writes its task, inputs and labels; publish registers new versions.',
    );
  }
  if (previous.version === input.version) {
    throw new TrainingDataError(
      `${input.name}@${input.version} is already the manifest's version in ${loaded.dir}: publish under a new version.`,
    );
  }
  await checkServes(previous, input.bytes);
  const raw = JSON.parse(readFileSync(path.join(loaded.dir, MODELS.manifestFile), 'utf8')) as ManifestJson;
  const rawPrevious = raw.experts.find((e) => e.name === input.name) as ManifestJson['experts'][number];
  const summary = (input.cardMarkdown && firstParagraph(input.cardMarkdown)) ?? previous.card.summary;
  const entry = {
    ...rawPrevious,
    version: input.version,
    file: `experts/${input.name}-${input.version}.onnx`,
    sha256: sha256Hex(input.bytes),
    card: {
      ...rawPrevious.card,
      summary,
      // The previous version's numbers describe another model: this one's are in its card file.
      metrics: {},
      ...(input.cardMarkdown !== undefined ? { cardFile: cardFileFor(input.name, input.version) } : {}),
    },
  };
  const manifestJson = { ...raw, experts: raw.experts.map((e) => (e.name === input.name ? entry : e)) };
  const parsed = validateManifest(manifestJson, `model manifest with ${input.name}@${input.version} for ${loaded.dir}`);
  return {
    entry: parsed.experts.find((e) => e.name === input.name) as ExpertEntry,
    manifestJson,
    replaced: { version: previous.version, status: previous.card.status },
  };
}

/** Loads the model and runs it once on zeros: the input and output the entry names, one probability per label. */
async function checkServes(entry: ExpertEntry, bytes: Uint8Array): Promise<void> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'] });
  } catch (err) {
    throw new TrainingDataError(`The file is not an ONNX model onnxruntime can load: ${(err as Error).message}`);
  }
  try {
    const out = await session.run({
      [entry.input.name]: new ort.Tensor('float32', new Float32Array(entry.input.dim), [1, entry.input.dim]),
    });
    const probs = out[entry.output.name];
    if (!probs || probs.data.length !== entry.output.labels.length) {
      throw new TrainingDataError(
        `The model gives ${probs ? `${probs.data.length} values on output "${entry.output.name}"` : `no output "${entry.output.name}"`}, ` +
          `but ${entry.name} names ${entry.output.labels.length} labels (${entry.output.labels.join(', ')}).`,
      );
    }
  } catch (err) {
    if (err instanceof TrainingDataError) throw err;
    throw new TrainingDataError(
      `The model does not take ${entry.name}'s input "${entry.input.name}" of ${entry.input.dim} values: ${(err as Error).message}`,
    );
  } finally {
    await session.release();
  }
}

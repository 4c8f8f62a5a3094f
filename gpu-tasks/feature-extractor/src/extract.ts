/**
 * One clip → one features document: decode → extractor → aggregate → validate.
 * No AWS here: the container (main.ts) and local mode both call it.
 */
import { ModelError } from '../../../core/errors';
import { aggregateFrames } from '../../../core/features';
import { extractorRef } from '../../../core/manifest';
import { DEFAULT_MODALITY, MODALITY_LABELS, type Modality } from '../../../core/modality';
import { SAMPLING_STRATEGY } from '../../../core/sampling';
import { FeaturesDocument, type ExtractorEntry } from '../../../core/schemas';
import { parsePayload } from '../../../core/zod-parse';
import { decodeFrames, type DecodedClip, type DecodeOptions } from './decode';
import type { ExtractorSession } from './infer';

export interface ExtractFeaturesInput {
  /** The clip's bytes, or a path to it. */
  readonly clip: Buffer | string;
  readonly scanId: string;
  /** The session to run; its manifest entry sets the frame size, frame cap and batch size. */
  readonly session: ExtractorSession;
  /** When given, must be the entry the session was created from (guards against mixing models). */
  readonly entry?: ExtractorEntry;
  /** ffmpeg binary, timeout, DICOM pseudonym salt; size and frame cap come from the manifest entry. */
  readonly decode?: Pick<DecodeOptions, 'ffmpegPath' | 'timeoutMs' | 'pseudonymSalt'>;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /**
   * The decoder. @default decodeFrames. Training passes a memo of it: several extractors (per-fold,
   * per-source) read the same clips with the same decode options, and decoding is most of the cost.
   */
  readonly decodeWith?: (clip: Buffer | string, opts: DecodeOptions) => Promise<DecodedClip>;
  /**
   * The modality of the scan, whose extractor the session runs (the manifest's `extractors[modality]`).
   * @default DEFAULT_MODALITY
   */
  readonly modality?: Modality;
}

export async function extractFeatures(input: ExtractFeaturesInput): Promise<FeaturesDocument> {
  const { session } = input;
  const entry = input.entry ?? session.entry;
  if (entry.sha256 !== session.entry.sha256) {
    throw new ModelError(
      `Extractor entry ${entry.name}@${entry.version} does not match the loaded session (${session.entry.name}@${session.entry.version}).`,
    );
  }

  const modality = input.modality ?? DEFAULT_MODALITY;
  const labels = MODALITY_LABELS[modality];
  if (entry.outputs.biomarkers.labels.join(',') !== labels.join(',')) {
    throw new ModelError(
      `Extractor ${entry.name}@${entry.version} emits [${entry.outputs.biomarkers.labels.join(', ')}], not the ${modality} labels [${labels.join(', ')}]: it is not the ${modality} extractor.`,
    );
  }

  const t0 = performance.now();
  const clip = await (input.decodeWith ?? decodeFrames)(input.clip, {
    ...input.decode,
    size: entry.input.size,
    maxFrames: entry.input.maxFrames,
    ...(entry.input.preprocessing ? { preprocessing: entry.input.preprocessing } : {}),
  });
  const t1 = performance.now();
  const outputs = await session.run(clip.frames, clip.count);
  const t2 = performance.now();

  const doc: FeaturesDocument = {
    schemaVersion: 1,
    scanId: input.scanId,
    extractor: extractorRef(entry),
    sampling: {
      strategy: SAMPLING_STRATEGY,
      maxFrames: entry.input.maxFrames,
      decodedFrames: clip.decodedFrames,
      frameIndices: clip.frameIndices,
      width: clip.size,
      height: clip.size,
      colorspace: 'gray',
    },
    ...(clip.dicom ? { dicom: clip.dicom } : {}),
    ...aggregateFrames(outputs, modality),
    runtime: {
      executionProvider: session.executionProvider,
      decodeMs: round1(t1 - t0),
      inferMs: round1(t2 - t1),
    },
    createdAt: (input.now?.() ?? new Date()).toISOString(),
  };
  // Catches NaN/Infinity from a broken model and any drift from the contract before anything is written.
  return parsePayload(FeaturesDocument, doc, 'features document');
}

function round1(ms: number): number {
  return Math.round(ms * 10) / 10;
}

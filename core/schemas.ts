/**
 * Every payload that crosses a boundary in sonomark, as a zod schema.
 *
 * Types come from `z.infer`, so a handler, the extractor, the CLI and the tests
 * can never disagree about a field. Schemas are strict where the payload is
 * ours (an unknown key is a bug) and lenient where AWS owns the shape (EventBridge
 * adds fields over time).
 */
import { z } from 'zod';
import { CLIP_STATISTICS } from './biomarkers';
import { DEFAULT_MODALITY, MODALITIES, MODALITY_LABELS } from './modality';

// ---------------------------------------------------------------------------
// Identifiers
// ---------------------------------------------------------------------------

/** Site and study ids come from the upload key; they name a folder, never a person. */
export const SegmentId = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/,
    'must be 1-64 characters of letters, digits, "_" or "-", starting with a letter or digit',
  );

/** 32 lowercase hex characters: see scan-id.ts for how it is derived. */
export const ScanId = z.string().regex(/^[0-9a-f]{32}$/, 'must be 32 lowercase hex characters');

export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters');

/** Containers sonomark decodes, named by what the bytes are, never by the file extension (core/formats.ts has one row each). */
export const MediaContainer = z.enum([
  'mp4',
  'mov',
  'avi',
  'gif',
  'mpeg',
  'm2v',
  'mpegts',
  'webm',
  'mkv',
  'jpeg',
  'png',
  'bmp',
  'dicom',
]);
export type MediaContainer = z.infer<typeof MediaContainer>;

// ---------------------------------------------------------------------------
// S3 "Object Created" event, as EventBridge delivers it (and local mode fakes it)
// ---------------------------------------------------------------------------

export const S3ObjectCreatedEvent = z.object({
  'detail-type': z.literal('Object Created'),
  source: z.literal('aws.s3'),
  id: z.string().optional(),
  time: z.string().optional(),
  region: z.string().optional(),
  detail: z.object({
    bucket: z.object({ name: z.string().min(3) }),
    object: z.object({
      key: z.string().min(1),
      size: z.number().int().nonnegative().optional(),
      etag: z.string().optional(),
      'version-id': z.string().optional(),
      sequencer: z.string().optional(),
    }),
    reason: z.string().optional(),
  }),
});
export type S3ObjectCreatedEvent = z.infer<typeof S3ObjectCreatedEvent>;

// ---------------------------------------------------------------------------
// Sidecar metadata: uploads/{site}/{study}/{file}.meta.json, optional
// ---------------------------------------------------------------------------

/**
 * Acquisition metadata a site may upload next to a clip. Strict on purpose:
 * an unknown key is rejected, so free-text fields that could carry patient
 * identifiers cannot ride along into results.
 */
export const SidecarMetadata = z
  .object({
    probe: z.enum(['convex', 'linear', 'phased', 'unknown']).optional(),
    bodyRegion: z.enum(['lung', 'other']).optional(),
    frameRate: z.number().positive().max(1000).optional(),
    /** Free label chosen by the site for its own bookkeeping, e.g. "zone-R2". Not a patient id. */
    zone: SegmentId.optional(),
    /**
     * What the upload is (core/modality-detect.ts): an explicit hint, so a DICOM header that says
     * otherwise is refused as a conflict.
     */
    modality: z.enum(MODALITIES).optional(),
    /**
     * A modality to assume when nothing else names one (the CLI writes its default `--modality
     * ultrasound` here): never in conflict with a DICOM header, a folder or `modality`.
     */
    defaultModality: z.enum(MODALITIES).optional(),
  })
  .strict();
export type SidecarMetadata = z.infer<typeof SidecarMetadata>;

// ---------------------------------------------------------------------------
// Validate → rest of the workflow
// ---------------------------------------------------------------------------

export const ModelRef = z.object({
  name: z.string().min(1),
  version: z.string().min(1),
  sha256: Sha256Hex,
});
export type ModelRef = z.infer<typeof ModelRef>;

export const ProblemDetail = z.object({
  /** Stable machine-readable code, e.g. UNSUPPORTED_FORMAT. */
  code: z.string().regex(/^[A-Z][A-Z0-9_]*$/),
  /** What was wrong and what is accepted, in one or two sentences a user can act on. */
  message: z.string().min(1),
});
export type ProblemDetail = z.infer<typeof ProblemDetail>;

/** The scan as Validate established it; every later state reads it at `$.scan`. */
export const ScanRef = z.object({
  scanId: ScanId,
  siteId: SegmentId,
  studyId: SegmentId,
  bucket: z.string().min(3),
  key: z.string().min(1),
  /** '' when the bucket is unversioned (Step Functions paths cannot point at a missing field). */
  versionId: z.string(),
  sha256: Sha256Hex,
  size: z.number().int().nonnegative(),
  container: MediaContainer,
  /**
   * What Validate decided the upload is (core/modality-detect.ts): which extractor reads it. Absent
   * in the state of an execution Validate started before modalities existed: ultrasound.
   */
  modality: z.enum(MODALITIES).default(DEFAULT_MODALITY),
  sidecar: SidecarMetadata.optional(),
  /** The extractor of `modality` in the manifest Validate read. */
  extractor: ModelRef,
  /** Where the extractor writes and the experts read the features document. */
  featuresBucket: z.string().min(3),
  featuresKey: z.string().min(1),
  receivedAt: z.string().datetime(),
});
export type ScanRef = z.infer<typeof ScanRef>;

export const ValidateOutput = z.discriminatedUnion('action', [
  /** New scan, claimed by this execution: go on to Extract. */
  z.object({ action: z.literal('analyze'), scan: ScanRef }),
  /** Another execution already claimed or finished these bytes: stop, successfully. */
  z.object({
    action: z.literal('skip'),
    scanId: ScanId,
    existingStatus: z.enum(['RUNNING', 'COMPLETED', 'FAILED']),
    reason: z.string(),
  }),
  /** The upload itself is bad (format, size, key, sidecar): record FAILED with this problem. */
  z.object({
    action: z.literal('reject'),
    scanId: ScanId,
    problem: ProblemDetail,
  }),
  /** Not a clip at all (a sidecar JSON): nothing to do. */
  z.object({ action: z.literal('ignore'), reason: z.string() }),
]);
export type ValidateOutput = z.infer<typeof ValidateOutput>;

// ---------------------------------------------------------------------------
// Features document (one per scan and extractor version)
// ---------------------------------------------------------------------------

/** The imaging modality of a scan, of a features document and of an extractor (core/modality.ts). */
export const Modality = z.enum(MODALITIES);
export type Modality = z.infer<typeof Modality>;

const Probability = z.number().min(0).max(1);

export const ClipStats = z.object(
  Object.fromEntries(CLIP_STATISTICS.map((s) => [s, Probability])) as Record<
    (typeof CLIP_STATISTICS)[number],
    typeof Probability
  >,
);
export type ClipStats = z.infer<typeof ClipStats>;

/**
 * Keyed by the document's modality's labels (MODALITY_LABELS), checked by FeaturesDocument's refinement:
 * a record rather than one fixed object because the key set depends on the sibling field `modality`.
 */
const labelRecord = <T extends z.ZodTypeAny>(value: T) => z.record(z.string(), value);

/**
 * What a features document says about a DICOM source: technical attributes and salted
 * pseudonyms only (core/dicom/deidentify.ts). Strict: nothing else from a header gets in.
 */
const CodeString = z.string().regex(/^[A-Z0-9 _]{1,16}$/);
const Pseudonym = z.string().regex(/^[0-9a-f]{32}$/);
export const DicomSource = z
  .object({
    transferSyntaxUid: z.string().regex(/^[0-9.]{1,64}$/),
    modality: CodeString.optional(),
    photometric: CodeString,
    rows: z.number().int().positive(),
    columns: z.number().int().positive(),
    frameRate: z
      .object({
        hz: z.number().positive(),
        source: z.enum(['FrameTime', 'FrameTimeVector', 'CineRate', 'RecommendedDisplayFrameRate']),
      })
      .strict()
      .optional(),
    /** The B-mode region of the Sequence of Ultrasound Regions the frames were cropped to (inclusive). */
    crop: z
      .object({
        x0: z.number().int().nonnegative(),
        y0: z.number().int().nonnegative(),
        x1: z.number().int().nonnegative(),
        y1: z.number().int().nonnegative(),
      })
      .strict()
      .optional(),
    /** HMAC-SHA256 of StudyInstanceUID / SeriesInstanceUID with the deployment's salt (core/dicom/salt-object.ts). */
    studyPseudonym: Pseudonym.optional(),
    seriesPseudonym: Pseudonym.optional(),
  })
  .strict();
export type DicomSource = z.infer<typeof DicomSource>;

export const FeaturesDocument = z
  .object({
    schemaVersion: z.literal(1),
    /** Absent in documents written before X-rays existed: those are ultrasound. */
    modality: Modality.default(DEFAULT_MODALITY),
    scanId: ScanId,
    extractor: ModelRef,
    sampling: z.object({
      strategy: z.literal('uniform'),
      /** Cap on frames fed to the network; longer clips are sampled uniformly. */
      maxFrames: z.number().int().positive(),
      /** Frames ffmpeg decoded from the clip. */
      decodedFrames: z.number().int().positive(),
      /** Indices (into the decoded frames) of the frames the network saw, ascending. */
      frameIndices: z.array(z.number().int().nonnegative()).min(1),
      width: z.number().int().positive(),
      height: z.number().int().positive(),
      colorspace: z.literal('gray'),
    }),
    /** DICOM input only. */
    dicom: DicomSource.optional(),
    /** Clip-level statistics per label of the modality (MODALITY_LABELS[modality]; ultrasound: BIOMARKERS). */
    biomarkers: labelRecord(ClipStats),
    /** Penultimate-layer embedding pooled over the sampled frames. */
    embedding: z.object({
      dim: z.number().int().positive(),
      mean: z.array(z.number()),
      max: z.array(z.number()),
    }),
    /** Per-frame probabilities per label, aligned with sampling.frameIndices (for timelines). */
    frames: labelRecord(z.array(Probability)),
    runtime: z.object({
      executionProvider: z.enum(['cuda', 'cpu']),
      decodeMs: z.number().nonnegative(),
      inferMs: z.number().nonnegative(),
    }),
    createdAt: z.string().datetime(),
  })
  .superRefine((doc, ctx) => {
    const labels = MODALITY_LABELS[doc.modality];
    for (const field of ['biomarkers', 'frames'] as const) {
      const keys = Object.keys(doc[field]);
      if (keys.length !== labels.length || labels.some((l) => !Object.hasOwn(doc[field], l))) {
        ctx.addIssue({
          code: 'custom',
          path: [field],
          message: `has keys [${keys.join(', ')}], but a features document of modality ${doc.modality} has exactly [${labels.join(', ')}]`,
        });
      }
    }
    // An X-ray is one image: no frame sampling, statistics of a 1-long series.
    if (doc.modality === 'xray' && doc.sampling.frameIndices.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['sampling', 'frameIndices'],
        message: `has ${doc.sampling.frameIndices.length} frames, but a features document of modality xray (one image) has exactly 1`,
      });
    }
  });
export type FeaturesDocument = z.infer<typeof FeaturesDocument>;

// ---------------------------------------------------------------------------
// Model manifest (models/manifest.json)
// ---------------------------------------------------------------------------

/** Blocks of the expert input vector, concatenated in the order listed. See features.ts. */
export const FeatureBlock = z.enum(['biomarker-stats', 'embedding-mean', 'embedding-max']);
export type FeatureBlock = z.infer<typeof FeatureBlock>;

export const ModelCard = z.object({
  /**
   * `trained`: fitted on real data, numbers in `metrics` are measured on held-out data.
   * `fixture`: deterministic weights for exercising the pipeline; its outputs mean nothing.
   */
  status: z.enum(['trained', 'fixture']),
  summary: z.string().min(1),
  intendedUse: z.string().min(1),
  trainingData: z.string().min(1),
  metrics: z.record(z.string(), z.unknown()).default({}),
  limitations: z.array(z.string()).default([]),
  /** Markdown card beside the model, relative to models/. */
  cardFile: z.string().optional(),
});
export type ModelCard = z.infer<typeof ModelCard>;

/**
 * How the decoder turns a clip into the model's frames (gpu-tasks/feature-extractor/src/decode.ts):
 * - `letterbox` (the default when the manifest names none; every model up to 1.1.x): the whole picture
 *   fitted into the square, aspect kept, black bars around it;
 * - `roi-1`: the ultrasound image region (fan or rectangle) found automatically, everything around it
 *   (overlays, text, UI, black borders) masked, the region cropped and fitted into the square, and its
 *   intensities normalised; black borders and aspect changes of the container do not move the output;
 * - `trim-1`: the picture's content box (rows and columns that hold any picture over the clip) cropped and
 *   fitted into the square against its top edge, nothing masked or normalised: black borders of any width
 *   (pillar-box, letterbox, padding) do not move the output, and everything inside is kept as letterbox keeps it;
 * - `xray-1` (chest X-ray extractor): exactly one picture, the letterbox fit (aspect kept, black bars),
 *   then a per-image percentile stretch of the picture's own pixels (XRAY_PERCENTILES in the decoder).
 */
export const Preprocessing = z.enum(['letterbox', 'roi-1', 'trim-1', 'xray-1']);
export type Preprocessing = z.infer<typeof Preprocessing>;

export const ExtractorEntry = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/),
  version: z.string().regex(/^\d+\.\d+\.\d+$/),
  /** Relative to models/. */
  file: z.string().min(1),
  sha256: Sha256Hex,
  input: z.object({
    name: z.string(),
    /** Frames are [batch, 1, size, size], gray, scaled to [0, 1]. */
    size: z.number().int().positive(),
    maxFrames: z.number().int().positive(),
    batchSize: z.number().int().positive(),
    /** @default letterbox (absent in manifests written before roi-1 existed) */
    preprocessing: Preprocessing.optional(),
  }),
  outputs: z.object({
    biomarkers: z.object({ name: z.string(), labels: z.array(z.string()).min(1) }),
    embedding: z.object({ name: z.string(), dim: z.number().int().positive() }),
  }),
  card: ModelCard,
});
export type ExtractorEntry = z.infer<typeof ExtractorEntry>;

export const TaskKind = z.enum(['classification', 'ordinal', 'binary']);
export type TaskKind = z.infer<typeof TaskKind>;

export const ExpertEntry = z.object({
  /** Stable task name: the result item key and the CLI's `experts.<name>`. */
  name: z.string().regex(/^[a-z][a-z0-9-]*$/),
  version: z.string().regex(/^\d+\.\d+\.\d+$/),
  file: z.string().min(1),
  sha256: Sha256Hex,
  task: TaskKind,
  /**
   * The extractor whose features this expert was trained on: the manifest's `extractors[modality]`,
   * whose name and version must match. The expert reads only features documents of that modality.
   */
  extractor: z.object({ modality: Modality, name: z.string(), version: z.string() }).strict(),
  input: z.object({
    name: z.string(),
    blocks: z.array(FeatureBlock).min(1),
    dim: z.number().int().positive(),
  }),
  output: z.object({
    /** [batch, labels.length] probabilities. */
    name: z.string(),
    labels: z.array(z.string()).min(2),
    /** For `binary`: the label whose probability is reported. */
    positive: z.string().optional(),
  }),
  lambda: z
    .object({
      memoryMb: z.number().int().min(128).max(10240).default(1024),
      timeoutSeconds: z.number().int().min(3).max(900).default(60),
      reservedConcurrency: z.number().int().min(1).max(1000).default(10),
    })
    .default({ memoryMb: 1024, timeoutSeconds: 60, reservedConcurrency: 10 }),
  card: ModelCard,
});
export type ExpertEntry = z.infer<typeof ExpertEntry>;

/**
 * One extractor per modality. Ultrasound is required (today's deployments and the CLI's default
 * modality); X-ray is optional (a manifest without it refuses X-rays: extractorFor names what it has).
 * Strict, so a misspelt or unknown modality key is an error rather than an ignored extractor.
 */
export const ManifestExtractors = z
  .object({
    ultrasound: ExtractorEntry,
    xray: ExtractorEntry.optional(),
  } satisfies Record<Modality, z.ZodTypeAny>)
  .strict();
export type ManifestExtractors = z.infer<typeof ManifestExtractors>;

/**
 * schemaVersion 2 (issue 21): `extractors` keyed by modality replaced version 1's single `extractor`,
 * and each expert's `extractor` names its modality. core/manifest.ts refuses a version 1 file with
 * what to change.
 */
export const Manifest = z.object({
  schemaVersion: z.literal(2),
  extractors: ManifestExtractors,
  /**
   * May be empty: a features-only deployment extracts and stores features now and
   * scores them later with experts trained on them (re-scoring never re-runs the
   * extractor). Shipping a new extractor also empties it until experts are retrained.
   */
  experts: z.array(ExpertEntry),
});
export type Manifest = z.infer<typeof Manifest>;

// ---------------------------------------------------------------------------
// Score: one Map item per expert, and what the expert returns
// ---------------------------------------------------------------------------

/** What the Map hands each expert invocation (the manifest entry travels with it). */
export const ExpertTaskInput = z.object({
  scan: ScanRef,
  expert: z.object({
    name: z.string(),
    version: z.string(),
    file: z.string(),
    sha256: Sha256Hex,
  }),
});
export type ExpertTaskInput = z.infer<typeof ExpertTaskInput>;

export const ExpertOutput = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('classification'),
    label: z.string(),
    probabilities: z.record(z.string(), Probability),
  }),
  z.object({
    kind: z.literal('ordinal'),
    /** Most probable grade. */
    score: z.number().int().nonnegative(),
    /** Probability-weighted grade, for ranking. */
    expected: z.number().nonnegative(),
    probabilities: z.record(z.string(), Probability),
  }),
  z.object({
    kind: z.literal('binary'),
    label: z.string(),
    positive: z.string(),
    /** Probability of `positive`. */
    probability: Probability,
  }),
]);
export type ExpertOutput = z.infer<typeof ExpertOutput>;

export const ExpertResult = z.object({
  scanId: ScanId,
  expert: z.object({ name: z.string(), version: z.string(), sha256: Sha256Hex }),
  extractor: ModelRef,
  output: ExpertOutput,
  inferMs: z.number().nonnegative(),
  createdAt: z.string().datetime(),
});
export type ExpertResult = z.infer<typeof ExpertResult>;

// ---------------------------------------------------------------------------
// Finalize and failure
// ---------------------------------------------------------------------------

/** Step Functions' error object as Catch places it (ResultPath $.error). */
export const StatesError = z.object({ Error: z.string(), Cause: z.string().optional() });
export type StatesError = z.infer<typeof StatesError>;

export const FinalizeInput = z.object({
  scan: ScanRef,
  extract: z
    .object({
      jobId: z.string().optional(),
      startedAt: z.number().optional(),
      stoppedAt: z.number().optional(),
    })
    .passthrough(),
  results: z.array(ExpertResult).min(1),
});
export type FinalizeInput = z.infer<typeof FinalizeInput>;

export const RecordFailureInput = z.object({
  /** The original event: always there, so a failure can be recorded even before a scan id exists. */
  event: S3ObjectCreatedEvent,
  scan: ScanRef.optional(),
  validation: ValidateOutput.optional(),
  error: StatesError.optional(),
});
export type RecordFailureInput = z.infer<typeof RecordFailureInput>;

export const ScanStatus = z.enum(['RUNNING', 'COMPLETED', 'FAILED']);
export type ScanStatus = z.infer<typeof ScanStatus>;

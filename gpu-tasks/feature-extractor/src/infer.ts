/**
 * The extractor network as a session: load the manifest's ONNX file (sha256-checked),
 * check its I/O against the manifest entry, pick an execution provider, and run
 * frames through it in batches.
 */
import { existsSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ModelError } from '../../../core/errors';
import type { FrameOutputs } from '../../../core/features';
import { readVerifiedModel } from '../../../core/manifest';
import type { ExtractorEntry } from '../../../core/schemas';

export type ExecutionProviderChoice = 'auto' | 'cuda' | 'cpu';
export type ExecutionProviderInUse = 'cuda' | 'cpu';

export interface ExtractorSessionOptions {
  /** `auto` tries CUDA and falls back to CPU with a warning. @default 'auto' */
  readonly executionProvider?: ExecutionProviderChoice;
  /** Where the fallback warning goes (one JSON line). @default console.warn */
  readonly warn?: (line: string) => void;
}

export interface ExtractorSession {
  readonly entry: ExtractorEntry;
  /** The provider the session was created with. */
  readonly executionProvider: ExecutionProviderInUse;
  /** `frames` is [count, 1, size, size] row-major (decodeFrames' output); run in batches of entry.input.batchSize. */
  run(frames: Float32Array, count: number): Promise<FrameOutputs>;
  release(): Promise<void>;
}

/**
 * One intra-op thread: the best CPU setting `npm run bench` measured (BENCHMARKS.md, frames/s by
 * batch and threads; the bench reads this constant as the current default). A small CNN gains
 * little from a second thread, and onnxruntime's spinning pool threads take CPU from ffmpeg
 * decoding the next frames. The CUDA provider ignores it.
 */
export const EXTRACTOR_INTRA_OP_THREADS = 1;

export const BASE_OPTIONS: ort.InferenceSession.SessionOptions = {
  graphOptimizationLevel: 'all',
  intraOpNumThreads: EXTRACTOR_INTRA_OP_THREADS,
  interOpNumThreads: 1,
  // 3 = error: keeps ORT's "node not assigned to the CUDA EP" chatter out of the job log.
  logSeverityLevel: 3,
  // Memory-pattern planning re-plans on the second run before it pays off: on this CPU a session's first two
  // 32-frame batches took 68 and 59 ms and later ones 16; without it the second is already 16 (later ones the same).
  enableMemPattern: false,
};

export async function createExtractorSession(
  modelsDir: string,
  entry: ExtractorEntry,
  opts: ExtractorSessionOptions = {},
): Promise<ExtractorSession> {
  const bytes = readVerifiedModel(modelsDir, entry);
  const choice = opts.executionProvider ?? 'auto';
  const warn = opts.warn ?? ((line: string) => console.warn(line));

  let session: ort.InferenceSession;
  let provider: ExecutionProviderInUse;
  if (choice === 'cpu') {
    session = await createSession(entry, bytes, ['cpu']);
    provider = 'cpu';
  } else if (choice === 'auto' && !cudaProviderInstalled()) {
    // Skip the attempt: onnxruntime would print a native error line for the missing library.
    warn(
      JSON.stringify({
        level: 'WARN',
        msg: 'CUDA execution provider not installed; running the extractor on CPU',
        extractor: entry.name,
      }),
    );
    session = await createSession(entry, bytes, ['cpu']);
    provider = 'cpu';
  } else {
    try {
      session = await ort.InferenceSession.create(bytes, { ...BASE_OPTIONS, executionProviders: ['cuda', 'cpu'] });
      provider = 'cuda';
    } catch (err) {
      const reason = firstLine(err);
      if (choice === 'cuda') {
        throw new ModelError(`Extractor "${entry.name}": the CUDA execution provider is unavailable: ${reason}`);
      }
      warn(
        JSON.stringify({
          level: 'WARN',
          msg: 'CUDA execution provider unavailable; running the extractor on CPU',
          extractor: entry.name,
          reason,
        }),
      );
      session = await createSession(entry, bytes, ['cpu']);
      provider = 'cpu';
    }
  }

  return extractorSessionOn(inProcessRunner(session), entry, provider);
}

/** What the extractor session needs of an onnxruntime session: its I/O description and one run. */
export interface FrameRunner extends Pick<
  ort.InferenceSession,
  'inputNames' | 'outputNames' | 'inputMetadata' | 'outputMetadata'
> {
  /** One batch: `data` as a float32 tensor of `dims` under `inputName`; returns the named outputs. */
  run(
    inputName: string,
    data: Float32Array,
    dims: readonly number[],
    outputs: readonly string[],
  ): Promise<Record<string, RunnerOutput | undefined>>;
  release(): Promise<void>;
}

/** An output tensor as read back from a run (in this thread or posted from another). */
export interface RunnerOutput {
  readonly type: string;
  readonly dims: readonly number[];
  readonly data: unknown;
}

function inProcessRunner(session: ort.InferenceSession): FrameRunner {
  return {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    inputMetadata: session.inputMetadata,
    outputMetadata: session.outputMetadata,
    async run(inputName, data, dims, outputs) {
      const input = new ort.Tensor('float32', data, [...dims]);
      try {
        return (await session.run({ [inputName]: input }, [...outputs])) as Record<string, RunnerOutput | undefined>;
      } finally {
        input.dispose();
      }
    },
    release: () => session.release(),
  };
}

/**
 * The extractor session over a runner (this thread's onnxruntime session, or one in a worker
 * thread, infer-worker.ts): the model's I/O is checked against the manifest entry first, and
 * every batch's outputs after each run, whichever thread ran it.
 */
export async function extractorSessionOn(
  runner: FrameRunner,
  entry: ExtractorEntry,
  provider: ExecutionProviderInUse,
): Promise<ExtractorSession> {
  try {
    checkIo(runner, entry);
    // A session's first batch pays for onnxruntime's one-time allocations and kernel set-up (68 ms for
    // 32 frames here against 16 later): one batch of black frames at load, off the first clip's path.
    // It also proves the model runs before any clip depends on it.
    const { size, batchSize, name } = entry.input;
    await runner.run(
      name,
      new Float32Array(batchSize * size * size),
      [batchSize, 1, size, size],
      [entry.outputs.biomarkers.name, entry.outputs.embedding.name],
    );
  } catch (err) {
    await runner.release();
    if (err instanceof ModelError) throw err;
    throw new ModelError(`Extractor "${entry.name}" failed its first batch: ${firstLine(err)}`);
  }
  return new OrtExtractorSession(runner, entry, provider);
}

async function createSession(entry: ExtractorEntry, bytes: Uint8Array, eps: string[]): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(bytes, { ...BASE_OPTIONS, executionProviders: eps });
  } catch (err) {
    throw new ModelError(`Extractor "${entry.name}" could not be loaded by onnxruntime: ${firstLine(err)}`);
  }
}

/** The model must have the manifest's input and output names, and the frame shape it promises. */
function checkIo(session: FrameRunner, entry: ExtractorEntry): void {
  const want = entry.input.name;
  if (!session.inputNames.includes(want)) {
    throw new ModelError(
      `Extractor "${entry.name}" has inputs [${session.inputNames.join(', ')}], but the manifest says "${want}".`,
    );
  }
  for (const out of [entry.outputs.biomarkers.name, entry.outputs.embedding.name]) {
    if (!session.outputNames.includes(out)) {
      throw new ModelError(
        `Extractor "${entry.name}" has outputs [${session.outputNames.join(', ')}], but the manifest names "${out}".`,
      );
    }
  }
  // Static dims, where the model declares them, must agree with the manifest; symbolic ones are checked at run time.
  const input = session.inputMetadata.find((m) => m.name === want);
  if (input?.isTensor) {
    checkDims(entry, `input "${want}"`, input.shape, [null, 1, entry.input.size, entry.input.size]);
    if (input.type !== 'float32')
      throw new ModelError(`Extractor "${entry.name}" input "${want}" is ${input.type}, expected float32.`);
  }
  const expected: [string, number][] = [
    [entry.outputs.biomarkers.name, entry.outputs.biomarkers.labels.length],
    [entry.outputs.embedding.name, entry.outputs.embedding.dim],
  ];
  for (const [name, width] of expected) {
    const meta = session.outputMetadata.find((m) => m.name === name);
    if (meta?.isTensor) checkDims(entry, `output "${name}"`, meta.shape, [null, width]);
  }
}

function checkDims(
  entry: ExtractorEntry,
  what: string,
  shape: readonly (number | string)[],
  want: (number | null)[],
): void {
  if (shape.length === 0) return; // shape not declared in the model
  const bad =
    shape.length !== want.length || want.some((w, i) => w !== null && typeof shape[i] === 'number' && shape[i] !== w);
  if (bad) {
    const fmt = (dims: readonly (number | string | null)[]) => `[${dims.map((d) => d ?? 'batch').join(', ')}]`;
    throw new ModelError(
      `Extractor "${entry.name}" ${what} has shape ${fmt(shape)}, but the manifest implies ${fmt(want)}.`,
    );
  }
}

class OrtExtractorSession implements ExtractorSession {
  constructor(
    private readonly session: FrameRunner,
    readonly entry: ExtractorEntry,
    readonly executionProvider: ExecutionProviderInUse,
  ) {}

  async run(frames: Float32Array, count: number): Promise<FrameOutputs> {
    const { size, batchSize, name: inputName } = this.entry.input;
    const pixels = size * size;
    if (!Number.isInteger(count) || count < 1)
      throw new RangeError(`frame count must be a positive integer, got ${count}`);
    if (frames.length !== count * pixels) {
      throw new RangeError(`frames has ${frames.length} values, expected ${count}×1×${size}×${size}`);
    }
    const k = this.entry.outputs.biomarkers.labels.length;
    const d = this.entry.outputs.embedding.dim;
    const bioName = this.entry.outputs.biomarkers.name;
    const embName = this.entry.outputs.embedding.name;
    const biomarkers = new Float32Array(count * k);
    const embedding = new Float32Array(count * d);

    for (let start = 0; start < count; start += batchSize) {
      const n = Math.min(batchSize, count - start);
      const out = await this.session.run(
        inputName,
        frames.subarray(start * pixels, (start + n) * pixels),
        [n, 1, size, size],
        [bioName, embName],
      );
      biomarkers.set(this.read(out, bioName, n, k), start * k);
      embedding.set(this.read(out, embName, n, d), start * d);
    }
    return { biomarkers, embedding, frames: count, embeddingDim: d };
  }

  private read(out: Record<string, RunnerOutput | undefined>, name: string, n: number, width: number): Float32Array {
    const t = out[name];
    if (!t || t.type !== 'float32') {
      throw new ModelError(
        `Extractor "${this.entry.name}" output "${name}" is ${t?.type ?? 'missing'}, expected float32.`,
      );
    }
    if (t.dims.length !== 2 || t.dims[0] !== n || t.dims[1] !== width) {
      throw new ModelError(
        `Extractor "${this.entry.name}" output "${name}" has shape [${t.dims.join(', ')}], expected [${n}, ${width}].`,
      );
    }
    return t.data as Float32Array;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * Whether onnxruntime-node's CUDA provider library is present. npm never downloads it here
 * (package.json's allowScripts denies onnxruntime-node's install script); the GPU container
 * runs that script with ONNXRUNTIME_NODE_INSTALL=cuda12 (gpu-tasks/feature-extractor/Dockerfile).
 */
export function cudaProviderInstalled(): boolean {
  try {
    const root = path.dirname(require.resolve('onnxruntime-node/package.json'));
    const bin = path.join(root, 'bin');
    return readdirSync(bin).some((napi) =>
      existsSync(path.join(bin, napi, process.platform, process.arch, 'libonnxruntime_providers_cuda.so')),
    );
  } catch {
    return false;
  }
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return (msg.split('\n')[0] ?? msg).slice(0, 300);
}

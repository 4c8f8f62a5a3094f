/**
 * The extractor's onnxruntime session in a worker thread (CPU provider). onnxruntime-node
 * runs a session synchronously on the thread that calls it: in the main thread each
 * 32-frame batch (about 0.1 s here) stopped everything else, including reading the next
 * clip's frames from ffmpeg, whose pipe then filled and stalled the decoder. In a worker,
 * inference of one clip overlaps the decoding of the next and the workflow's own work.
 *
 * Only the onnxruntime calls run in the worker (plain JavaScript given as a string, so the
 * same code runs from dist/ and under ts-jest); the session's I/O and every batch's outputs
 * are checked in this thread by the same code as the in-process session (infer.ts).
 */
import { Worker } from 'node:worker_threads';
import type { ExtractorEntry } from '../../../core/schemas';
import { readVerifiedModel } from '../../../core/manifest';
import { ModelError } from '../../../core/errors';
import { BASE_OPTIONS, extractorSessionOn, type ExtractorSession, type FrameRunner, type RunnerOutput } from './infer';

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; message: string };

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
let session;
const ops = {
  async create({ bytes, options }) {
    session = await ort.InferenceSession.create(new Uint8Array(bytes), options);
    return {
      inputNames: session.inputNames,
      outputNames: session.outputNames,
      inputMetadata: session.inputMetadata,
      outputMetadata: session.outputMetadata,
    };
  },
  async run({ inputName, data, dims, outputs }) {
    const input = new ort.Tensor('float32', new Float32Array(data), dims);
    try {
      const out = await session.run({ [inputName]: input }, outputs);
      const result = {};
      for (const name of outputs) {
        const t = out[name];
        result[name] = t && { type: t.type, dims: Array.from(t.dims), data: t.data };
      }
      return result;
    } finally {
      input.dispose();
    }
  },
  async release() {
    if (session) await session.release();
    session = undefined;
  },
};
parentPort.on('message', async (m) => {
  try {
    const value = await ops[m.op](m.args);
    const transfer = m.op === 'run' ? Object.values(value).filter(Boolean).map((t) => t.data.buffer) : [];
    parentPort.postMessage({ id: m.id, ok: true, value }, transfer);
  } catch (err) {
    parentPort.postMessage({ id: m.id, ok: false, message: (err && err.message) || String(err) });
  }
});
`;

/**
 * An extractor session (CPU) whose inference runs in its own worker thread. release() ends
 * the worker; the worker never keeps the process alive by itself.
 */
export async function createWorkerExtractorSession(
  modelsDir: string,
  entry: ExtractorEntry,
): Promise<ExtractorSession> {
  const bytes = readVerifiedModel(modelsDir, entry);
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { ortPath: require.resolve('onnxruntime-node') },
  });
  worker.unref();
  let nextId = 0;
  let failure: Error | undefined;
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const failAll = (err: Error) => {
    failure ??= err;
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  };
  worker.on('message', (m: Reply) => {
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    if (waiting.size === 0) worker.unref();
    if (m.ok) w.resolve(m.value);
    else w.reject(new ModelError(`Extractor "${entry.name}": ${m.message}`));
  });
  worker.on('error', (err) =>
    failAll(new ModelError(`Extractor "${entry.name}": inference worker failed: ${err.message}`)),
  );
  worker.on('exit', () => failAll(new ModelError(`Extractor "${entry.name}": the inference worker has ended.`)));
  const call = <T>(op: string, args: unknown, transfer: ArrayBuffer[] = []): Promise<T> => {
    if (failure) return Promise.reject(failure);
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      // Held while a call is pending (the process must wait for its answer), let go when idle.
      if (waiting.size === 0) worker.ref();
      waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage({ op, id, args }, transfer);
    });
  };

  const model = bytes.slice().buffer;
  let io: Pick<FrameRunner, 'inputNames' | 'outputNames' | 'inputMetadata' | 'outputMetadata'>;
  try {
    io = await call('create', { bytes: model, options: { ...BASE_OPTIONS, executionProviders: ['cpu'] } }, [model]);
  } catch (err) {
    await worker.terminate();
    throw new ModelError(
      `Extractor "${entry.name}" could not be loaded by onnxruntime: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  const runner: FrameRunner = {
    ...io,
    run(inputName, data, dims, outputs) {
      // A copy of this batch's frames is handed over (transferred, not cloned again).
      const copy = data.slice().buffer;
      return call<Record<string, RunnerOutput | undefined>>(
        'run',
        { inputName, data: copy, dims: [...dims], outputs: [...outputs] },
        [copy],
      );
    },
    async release() {
      try {
        if (!failure) await call('release', {});
      } finally {
        await worker.terminate();
      }
    },
  };
  return extractorSessionOn(runner, entry, 'cpu');
}

const cached = new Map<string, Promise<ExtractorSession>>();

/** The process-wide worker session for this models directory and extractor, created on first use. */
export function cachedWorkerExtractorSession(modelsDir: string, entry: ExtractorEntry): Promise<ExtractorSession> {
  const key = `${modelsDir}\0${entry.sha256}`;
  let session = cached.get(key);
  if (!session) {
    session = createWorkerExtractorSession(modelsDir, entry);
    // A failed load is not cached: the next call retries (and reports) it.
    const pending = session;
    pending.catch(() => {
      if (cached.get(key) === pending) cached.delete(key);
    });
    cached.set(key, pending);
  }
  return session;
}

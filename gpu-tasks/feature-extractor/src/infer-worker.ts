/**
 * The extractor's onnxruntime session in its own process (CPU provider), for local mode.
 *
 * Not in this process: onnxruntime-node runs a session synchronously on the calling thread, so in
 * the main thread each 32-frame batch stopped everything else, including reading the next clip's
 * frames from ffmpeg, whose pipe then filled and stalled the decoder.
 *
 * Not in a worker thread either (as it was): every ffmpeg this process starts is a fork() (libuv
 * forks on Linux), which marks all of the process's writable memory copy-on-write, and the next
 * write to each page then faults. onnxruntime's arena is rewritten by every batch, so after each
 * spawn one batch paid for the faults: on this machine a clip's first 32-frame batch took 70 ms
 * instead of 10 whenever a decoder had been started since the last batch, which in a local run is
 * almost every clip. A process of its own starts no children, so its memory is never write-protected.
 *
 * Only the onnxruntime calls run there (plain JavaScript given to `node -e`, so the same code runs
 * from dist/ and under ts-jest); the session's I/O and every batch's outputs are checked in this
 * process by the same code as the in-process session (infer.ts).
 */
import { spawn } from 'node:child_process';
import type { ExtractorEntry } from '../../../core/schemas';
import { readVerifiedModel } from '../../../core/manifest';
import { ModelError } from '../../../core/errors';
import { BASE_OPTIONS, extractorSessionOn, type ExtractorSession, type FrameRunner, type RunnerOutput } from './infer';

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; message: string };

const PROCESS_SOURCE = `
const ort = require(process.argv[1]);
// Its lifetime is its parent's: Ctrl-C reaches the whole process group, and the parent records the
// clip in progress as interrupted before it lets go; this process ends when the channel closes.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => undefined);
process.on('disconnect', () => process.exit(0));
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
  async run({ inputName, data, bytes, dims, outputs }) {
    let pixels;
    if (bytes) {
      // toFloat01 (decode.ts): byte / 255 as float32.
      const b = new Uint8Array(bytes);
      pixels = new Float32Array(b.length);
      for (let i = 0; i < b.length; i++) pixels[i] = b[i] / 255;
    } else {
      pixels = new Float32Array(data);
    }
    const input = new ort.Tensor('float32', pixels, dims);
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
process.on('message', async (m) => {
  let reply;
  try {
    reply = { id: m.id, ok: true, value: await ops[m.op](m.args) };
  } catch (err) {
    reply = { id: m.id, ok: false, message: (err && err.message) || String(err) };
  }
  if (process.connected) process.send(reply);
});
`;

/**
 * An extractor session (CPU) whose inference runs in a child process. release() ends the
 * process; it never keeps this process alive by itself, and it ends when this process does.
 */
export async function createWorkerExtractorSession(
  modelsDir: string,
  entry: ExtractorEntry,
): Promise<ExtractorSession> {
  const bytes = readVerifiedModel(modelsDir, entry);
  // stdout ignored: `sonomark analyze --json` keeps stdout to its JSON lines. 'advanced' serialization
  // sends typed arrays as bytes (structured clone), not as JSON.
  const child = spawn(process.execPath, ['-e', PROCESS_SOURCE, require.resolve('onnxruntime-node')], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
  const channel = child.channel as { ref(): void; unref(): void } | null | undefined;
  const hold = (on: boolean) => (on ? channel?.ref() : channel?.unref());
  child.unref();
  hold(false);
  let nextId = 0;
  let failure: Error | undefined;
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const failAll = (err: Error) => {
    failure ??= err;
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  };
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.on('message', (m: Reply) => {
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    if (waiting.size === 0) hold(false);
    if (m.ok) w.resolve(m.value);
    else w.reject(new ModelError(`Extractor "${entry.name}": ${m.message}`));
  });
  child.on('error', (err) =>
    failAll(new ModelError(`Extractor "${entry.name}": the inference process failed: ${err.message}`)),
  );
  child.on('exit', (code, signal) =>
    failAll(
      new ModelError(`Extractor "${entry.name}": the inference process has ended (${signal ?? `exit ${code}`}).`),
    ),
  );
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      if (child.connected) child.disconnect();
      child.kill();
      await exited;
    }
  };
  const call = <T>(op: string, args: unknown): Promise<T> => {
    if (failure) return Promise.reject(failure);
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      // Held while a call is pending (the process must wait for its answer), let go when idle.
      if (waiting.size === 0) hold(true);
      waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.send({ op, id, args }, (err) => {
        if (err) failAll(new ModelError(`Extractor "${entry.name}": the inference process failed: ${err.message}`));
      });
    });
  };

  let io: Pick<FrameRunner, 'inputNames' | 'outputNames' | 'inputMetadata' | 'outputMetadata'>;
  try {
    io = await call('create', {
      bytes: bytes.slice().buffer,
      options: { ...BASE_OPTIONS, executionProviders: ['cpu'] },
    });
  } catch (err) {
    await stop();
    throw new ModelError(
      `Extractor "${entry.name}" could not be loaded by onnxruntime: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  const runner: FrameRunner = {
    ...io,
    run(inputName, data, dims, outputs) {
      // Decoded frames are bytes / 255: sent as those bytes, a quarter of the floats (the channel's
      // cost grows faster than the message: 40 ms for a 32-frame batch as floats, 4 ms as bytes).
      const bytes = asBytes(data);
      return call<Record<string, RunnerOutput | undefined>>('run', {
        inputName,
        ...(bytes ? { bytes: bytes.buffer } : { data: data.slice().buffer }),
        dims: [...dims],
        outputs: [...outputs],
      });
    },
    async release() {
      try {
        if (!failure) await call('release', {});
      } finally {
        await stop();
      }
    },
  };
  return extractorSessionOn(runner, entry, 'cpu');
}

/** `frames` as the bytes toFloat01 made them from, when every value is exactly byte / 255; else undefined. */
export function asBytes(frames: Float32Array): Uint8Array | undefined {
  const out = new Uint8Array(frames.length);
  for (let i = 0; i < frames.length; i++) {
    const v = frames[i] as number;
    const b = Math.round(v * 255);
    if (!(b >= 0 && b <= 255) || Math.fround(b / 255) !== v) return undefined;
    out[i] = b;
  }
  return out;
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

let users = 0;

/**
 * Registers a user of the process-wide sessions (a local workflow). The function returned ends that
 * use; when the last user ends, the sessions are released and their processes end with them, before
 * this process exits rather than just after it (an unclaimed one would outlive it by its exit time).
 */
export function useWorkerExtractorSessions(): () => Promise<void> {
  users++;
  let ended = false;
  return async () => {
    if (ended) return;
    ended = true;
    if (--users > 0) return;
    const sessions = [...cached.values()];
    cached.clear();
    await Promise.all(
      sessions.map((p) =>
        p.then(
          (s) => s.release(),
          () => undefined,
        ),
      ),
    );
  };
}

/**
 * s3rver and dynalite in a worker thread. In the main thread their module loading
 * (koa, winston, leveldb: about 0.3 s) and every request they serve took turns with
 * the CLI's own work; in a worker they run beside it. The worker's code is plain
 * JavaScript given as a string (the servers are plain-JS packages), so it runs the
 * same from compiled dist/ and from the TypeScript sources under ts-jest.
 */
import * as nodeModule from 'node:module';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

export interface ServiceHost {
  readonly s3Port: number;
  readonly dynamoPort: number;
  /** Closes both servers and ends the worker. */
  close(): Promise<void>;
}

type HostMessage =
  | { type: 'ready'; s3Port: number; dynamoPort: number }
  | { type: 'failed'; message: string }
  | { type: 'created'; bucket: string; key: string }
  | { type: 'closed' };

/**
 * What runs in the worker: both servers on 127.0.0.1, ephemeral ports, data under the directories
 * the 'start' message names. The modules load as soon as the worker runs, before that message:
 * a worker started early (prestartServiceHost) has them loaded by the time the data dir is known.
 */
const HOST_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const nodeModule = require('node:module');
if (workerData.compileCacheDir && typeof nodeModule.enableCompileCache === 'function') {
  nodeModule.enableCompileCache(workerData.compileCacheDir);
}
let S3rver;
let dynalite;
let loadError;
try {
  S3rver = require(workerData.s3rverPath);
  dynalite = require(workerData.dynalitePath);
} catch (err) {
  loadError = err;
}
let s3rver;
let dynamoServer;
async function start(m) {
  if (loadError) throw loadError;
  s3rver = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: m.s3Dir,
    // The SDK signs with the local credentials; s3rver checks the signature shape only.
    allowMismatchedSignatures: true,
    vhostBuckets: false,
  });
  const s3Address = await s3rver.run();
  s3rver.on('event', (e) => {
    for (const r of e.Records) {
      if (r.eventName.startsWith('ObjectCreated:')) {
        parentPort.postMessage({ type: 'created', bucket: r.s3.bucket.name, key: r.s3.object.key });
      }
    }
  });
  dynamoServer = dynalite({ path: m.dynamoDir, createTableMs: 0, updateTableMs: 0, deleteTableMs: 0 });
  await new Promise((resolve, reject) => {
    dynamoServer.once('error', reject);
    dynamoServer.listen(0, '127.0.0.1', () => resolve());
  });
  parentPort.postMessage({ type: 'ready', s3Port: s3Address.port, dynamoPort: dynamoServer.address().port });
}
parentPort.on('message', async (m) => {
  if (m.type === 'start') {
    start(m).catch((err) => parentPort.postMessage({ type: 'failed', message: (err && err.message) || String(err) }));
    return;
  }
  if (m.type !== 'close') return;
  try {
    if (s3rver) await s3rver.close();
  } finally {
    if (dynamoServer) await new Promise((resolve) => dynamoServer.close(() => resolve()));
    parentPort.postMessage({ type: 'closed' });
    parentPort.close();
  }
});
`;

interface SpawnedHost {
  readonly worker: Worker;
  /** Resolves when the worker ends, whenever that is (listened for from the start). */
  readonly exited: Promise<void>;
  /** The worker's last uncaught error; without a listener it would end this process. */
  lastError?: Error;
}

function spawnHost(): SpawnedHost {
  const getCacheDir = (nodeModule as { getCompileCacheDir?: () => string | undefined }).getCompileCacheDir;
  const worker = new Worker(HOST_SOURCE, {
    eval: true,
    workerData: {
      s3rverPath: require.resolve('s3rver'),
      dynalitePath: require.resolve('dynalite'),
      compileCacheDir: getCacheDir?.(),
    },
  });
  const host: SpawnedHost = { worker, exited: new Promise<void>((resolve) => worker.once('exit', () => resolve())) };
  // An error after start-up (a server crashing) ends the worker; requests then fail with
  // connection errors, which the handlers report.
  worker.on('error', (err) => {
    host.lastError = err;
  });
  return host;
}

/** A host started ahead of need (prestartServiceHost), not yet claimed by startServiceHost. */
let spare: SpawnedHost | undefined;

/**
 * Starts the host's worker now, so that its module loading (about 0.4 s) runs beside the caller's own
 * (the CLI loading the workflow) instead of after it; the next startServiceHost claims it. Unclaimed,
 * it does not keep the process alive (unref). Safe to call more than once.
 */
export function prestartServiceHost(): void {
  if (spare) return;
  spare = spawnHost();
  spare.worker.unref();
}

export async function startServiceHost(
  dataDir: string,
  /** Each object stored (PUT, POST, copy), as S3 event notifications report it. */
  onObjectCreated: (bucket: string, key: string) => void,
): Promise<ServiceHost> {
  const host = spare ?? spawnHost();
  spare = undefined;
  const { worker, exited } = host;
  worker.ref();
  let closed: (() => void) | undefined;
  worker.on('message', (m: HostMessage) => {
    if (m.type === 'created') onObjectCreated(m.bucket, m.key);
    else if (m.type === 'closed') closed?.();
  });
  // A worker that already ended (a pre-started one that failed to load) drops this; `exited` reports it.
  worker.postMessage({ type: 'start', s3Dir: path.join(dataDir, 's3'), dynamoDir: path.join(dataDir, 'dynamodb') });

  const ready = await new Promise<{ s3Port: number; dynamoPort: number }>((resolve, reject) => {
    const onMessage = (m: HostMessage) => {
      if (m.type === 'ready') resolve(m);
      else if (m.type === 'failed') reject(new Error(`The local S3/DynamoDB services did not start: ${m.message}`));
    };
    worker.on('message', onMessage);
    void exited.then(() =>
      reject(
        new Error(`The local S3/DynamoDB services did not start: ${host.lastError?.message ?? 'the worker exited'}`),
      ),
    );
  }).catch(async (err: unknown) => {
    await worker.terminate();
    throw err;
  });

  return {
    ...ready,
    async close() {
      const done = new Promise<void>((resolve) => {
        closed = resolve;
      });
      worker.postMessage({ type: 'close' });
      // The worker ends by itself once both servers have closed; a crashed one has already ended.
      await Promise.race([done, exited]);
      await worker.terminate();
    },
  };
}

/**
 * Re-scoring through `sonomark rescore`'s own code path (local/rescore.ts): stored scans in
 * a local data dir (s3rver + dynalite), each run moving every scan to another expert version,
 * so every run reads each features document once, scores every expert and writes the new
 * versions beside the old with the pointer moved. Called by bench/run.ts; also runs alone:
 *
 *   npx tsx bench/rescore.ts [--data DIR] [--scans N] [--runs N]
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { featuresKey, SCAN_SK, scanPk } from '../core/keys';
import { loadManifest, type LoadedManifest, extractorFor } from '../core/manifest';
import { PACKAGE_ROOT } from '../core/paths';
import type { ScanItem } from '../core/results-store';
import { FeaturesDocument } from '../core/schemas';
import { createExtractorSession, extractFeatures } from '../gpu-tasks/feature-extractor/src';
import { LOCAL_ARTIFACTS_BUCKET, LOCAL_TABLE } from '../local/names';
import { rescoreStoredScans } from '../local/rescore';
import { ensureBucket, ensureResultsTable, startLocalServices } from '../local/services';
import { rate, summarize, timeRuns } from './stats';

/** The site the bench's stored scans belong to (every scan lives in its site's partition). */
const BENCH_SITE = 'bench';

/** The manifest with every expert's version's patch raised by `bump` (same files): a "new" version to move to. */
function bumped(loaded: LoadedManifest, bump: number): LoadedManifest {
  return {
    dir: loaded.dir,
    manifest: {
      ...loaded.manifest,
      experts: loaded.manifest.experts.map((e) => {
        const [a, b, c] = e.version.split('.').map(Number) as [number, number, number];
        return { ...e, version: `${a}.${b}.${c + bump}` };
      }),
    },
  };
}

/** `scans` stored COMPLETED scans (features documents from `docs`, cycled), re-scored `runs` times. */
export async function rescoreStoredBench(loaded: LoadedManifest, docs: readonly string[], scans: number, runs: number) {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'sonomark-bench-rescore-'));
  const services = await startLocalServices(tmp);
  try {
    await ensureBucket(services.s3, LOCAL_ARTIFACTS_BUCKET);
    await ensureResultsTable(services.dynamo, LOCAL_TABLE);
    const x = extractorFor(loaded.manifest, 'ultrasound');
    for (let i = 0; i < scans; i++) {
      const scanId = i.toString(16).padStart(32, '0');
      const doc = { ...(JSON.parse(docs[i % docs.length] as string) as FeaturesDocument), scanId };
      const key = featuresKey(BENCH_SITE, x, scanId);
      await services.s3.send(
        new PutObjectCommand({ Bucket: LOCAL_ARTIFACTS_BUCKET, Key: key, Body: JSON.stringify(doc) }),
      );
      const item: ScanItem = {
        pk: scanPk(BENCH_SITE, scanId),
        siteId: BENCH_SITE,
        sk: SCAN_SK,
        scanId,
        status: 'COMPLETED',
        extractor: { name: x.name, version: x.version, sha256: x.sha256 },
        featuresBucket: LOCAL_ARTIFACTS_BUCKET,
        featuresKey: key,
        updatedAt: new Date().toISOString(),
      };
      await services.doc.send(new PutCommand({ TableName: LOCAL_TABLE, Item: item }));
    }
    const store = { s3: services.s3, doc: services.doc, table: LOCAL_TABLE, artifactsBucket: LOCAL_ARTIFACTS_BUCKET };
    let run = 0;
    let rescored = 0;
    const ms = await timeRuns(runs, async () => {
      const m = bumped(loaded, ++run);
      const summary = await rescoreStoredScans(store, m, m.manifest.experts, { concurrency: 8 });
      if (summary.rescored !== scans)
        throw new Error(`bench re-score: ${JSON.stringify({ ...summary, outcomes: [] })}`);
      rescored = summary.rescored;
    });
    return {
      command: 'rescoreStoredScans (sonomark rescore) over a local data dir, concurrency 8',
      scans: rescored,
      experts: loaded.manifest.experts.map((e) => e.name),
      ms: summarize(ms),
      clipsPerS: rate(ms, scans),
    };
  } finally {
    await services.close();
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (require.main === module) {
  void (async () => {
    const { values } = parseArgs({
      options: {
        data: { type: 'string', default: path.resolve(PACKAGE_ROOT, '..', 'shared', 'data', 'pocus') },
        scans: { type: 'string', default: '500' },
        runs: { type: 'string', default: '5' },
      },
    });
    const loaded = loadManifest();
    const session = await createExtractorSession(loaded.dir, extractorFor(loaded.manifest, 'ultrasound'), {
      executionProvider: 'cpu',
    });
    const docs: string[] = [];
    for (const rel of ['videos/convex/Reg-NormalLungs.mp4', 'videos/convex/Pneu-Atlas-pneumonia.gif']) {
      const clip = path.join(values.data as string, rel);
      docs.push(JSON.stringify(await extractFeatures({ clip, scanId: '0'.repeat(32), session })));
    }
    await session.release();
    const r = await rescoreStoredBench(loaded, docs, Number(values.scans), Number(values.runs));
    process.stdout.write(JSON.stringify(r, null, 2) + '\n');
  })();
}

/**
 * The multi-site API over HTTP, as two sites would use it: `sonomark serve`'s server on a real
 * socket, uploads through the presigned POST into s3rver, the local workflow run by s3rver's
 * Object Created notification (real ffmpeg, real ONNX), results and usage read back over HTTP,
 * and `sonomark usage` giving the same numbers. Each site sees only its own. A cohort run's page,
 * written by the cloud's CohortReport code into the local artifacts bucket, is reached through
 * GET /cohorts/{runId}/report by its own site only.
 */
import { readFileSync } from 'node:fs';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { CohortItemOutcome } from '../../core/cohort';
import { batchOutcomesKey, cohortRunPrefix } from '../../core/cohort-run';
import { listExpertResultVersions } from '../../core/results-store';
import { writeCohortReport } from '../../lambdas/cohort-report/report';
import { LOCAL_ARTIFACTS_BUCKET, LOCAL_TABLE } from '../../local/names';
import { startLocalApi, type LocalApiServer } from '../../local/serve';
import { runCli } from '../helpers/cli';
import { generateClip, tempDir, writeFile } from './helpers';

jest.setTimeout(300_000);

const SITES = ['site-a', 'site-b'];
const dataDir = tempDir();
const work = tempDir();
let server: LocalApiServer;

async function call(site: string | null, method: string, path: string, body?: unknown) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      ...(site ? { authorization: `Bearer ${server.tokens[site]}` } : {}),
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as any };
}

/** Asks for a link as `site`, then posts the file's bytes through it, as a browser form would. */
async function upload(site: string, studyId: string, file: string, fileName: string): Promise<string> {
  const link = await call(site, 'POST', '/uploads', { studyId, fileName });
  expect(link.status).toBe(201);
  const form = new FormData();
  for (const [k, v] of Object.entries(link.json.fields as Record<string, string>)) form.append(k, v);
  form.append('file', new Blob([readFileSync(file)], { type: link.json.contentType }), fileName);
  const res = await fetch(link.json.url, { method: 'POST', body: form });
  expect(res.status).toBeLessThan(300);
  return link.json.key as string;
}

const month = new Date().toISOString().slice(0, 7);

beforeAll(async () => {
  server = await startLocalApi({ dataDir, sites: SITES });
}, 120_000);

afterAll(async () => {
  await server?.close();
});

describe('sonomark serve, as two sites', () => {
  const clipA = generateClip(work, 'a.mp4', 12);
  const clipB = generateClip(work, 'b.mp4', 8);
  const broken = writeFile(work, 'broken.mp4', Buffer.from('this is not a video'));

  it('uploads, runs the workflow, and gives each site its own results and usage', async () => {
    // Act: site-a uploads a clip, the same bytes again under another name (reused), and a broken file;
    // site-b uploads its clip under the same study id.
    expect(await upload('site-a', 'study-1', clipA, 'day1/clip.mp4')).toBe('uploads/site-a/study-1/day1/clip.mp4');
    await upload('site-a', 'study-1', clipA, 'day1/clip-again.mp4');
    await upload('site-a', 'study-1', broken, 'broken.mp4');
    expect(await upload('site-b', 'study-1', clipB, 'clip.mp4')).toBe('uploads/site-b/study-1/clip.mp4');
    await server.idle();

    // Assess: results, each site its own
    const a = await call('site-a', 'GET', '/studies/study-1/scans');
    const b = await call('site-b', 'GET', '/studies/study-1/scans');
    expect(a.status).toBe(200);
    const aByName = Object.fromEntries(a.json.scans.map((s: any) => [s.fileName, s]));
    // The re-upload of the same bytes is the same scan: no second item.
    expect(Object.keys(aByName).sort()).toEqual(['broken.mp4', 'day1/clip.mp4']);
    expect(aByName['day1/clip.mp4'].status).toBe('COMPLETED');
    expect(aByName['broken.mp4']).toMatchObject({ status: 'FAILED', error: { code: expect.any(String) } });
    expect(b.json.scans.map((s: any) => [s.fileName, s.status])).toEqual([['clip.mp4', 'COMPLETED']]);

    const aScan = aByName['day1/clip.mp4'].scanId as string;
    const bScan = b.json.scans[0].scanId as string;
    const own = await call('site-a', 'GET', `/scans/${aScan}`);
    expect(own.status).toBe(200);
    expect(own.json.experts.diagnosis.kind).toBe('classification');
    // What Validate decided for the clip (a video with no hint: ultrasound), as the list shows it too.
    expect(own.json.modality).toBe('ultrasound');
    expect(aByName['day1/clip.mp4'].modality).toBe('ultrasound');
    expect(own.json.results.map((r: any) => r.expert.name).sort()).toEqual(Object.keys(own.json.experts).sort());
    // Guessing the other site's scan id, or listing by time, never shows the other site's scan.
    expect((await call('site-b', 'GET', `/scans/${aScan}`)).status).toBe(404);
    expect((await call('site-a', 'GET', `/scans/${bScan}`)).status).toBe(404);
    const bByTime = await call('site-b', 'GET', '/scans?from=2000-01-01');
    expect(bByTime.json.scans.map((s: any) => s.scanId)).toEqual([bScan]);
    // No token, a wrong token, a path trick
    expect((await call(null, 'GET', '/scans')).status).toBe(403);
    expect(
      (await fetch(`${server.url}/scans`, { headers: { authorization: `Bearer ${'0'.repeat(64)}` } })).status,
    ).toBe(403);
    expect((await call('site-b', 'GET', `/scans/..%2F${aScan}`)).status).toBe(400);

    // Usage: one billed scan each; site-a's failed upload and its re-upload are not billed.
    const aUsage = await call('site-a', 'GET', `/usage?month=${month}`);
    const bUsage = await call('site-b', 'GET', `/usage?month=${month}`);
    expect(aUsage.json).toMatchObject({ siteId: 'site-a', scansBilled: 1, scansNotBilled: { failed: 1, running: 0 } });
    expect(aUsage.json.scans.map((s: any) => s.scanId)).toEqual([aScan]);
    expect(aUsage.json.cost.totalUsd).toBeGreaterThan(0);
    expect(aUsage.json.extractorSeconds).toBeGreaterThan(0);
    expect(bUsage.json).toMatchObject({ siteId: 'site-b', scansBilled: 1, scansNotBilled: { failed: 0, running: 0 } });
    expect(bUsage.json.scans.map((s: any) => s.scanId)).toEqual([bScan]);

    // A cohort run of site-a over its scans, reported by the cloud's CohortReport code into the
    // local artifacts bucket (cohorts/site-a/run-a/): its page through the link, as HTML.
    const services = server.workflow.services;
    const runPrefix = cohortRunPrefix('site-a', 'run-a');
    const outcomes: CohortItemOutcome[] = await Promise.all(
      a.json.scans.map(async (sc: any) => ({
        item: `uploads/site-a/study-1/${sc.fileName}`,
        scanId: sc.scanId,
        action: sc.status === 'COMPLETED' ? 'scored' : 'failed',
        ...(sc.error ? { error: sc.error } : {}),
        ...(await listExpertResultVersions(services.doc, LOCAL_TABLE, 'site-a', sc.scanId)),
      })),
    );
    await services.s3.send(
      new PutObjectCommand({
        Bucket: LOCAL_ARTIFACTS_BUCKET,
        Key: batchOutcomesKey(runPrefix, '0123456789abcdef'),
        Body: JSON.stringify(outcomes),
      }),
    );
    const written = await writeCohortReport(
      { site: 'site-a', runPrefix, startedAt: new Date().toISOString(), source: 'uploads/site-a/study-1/' },
      {
        s3: services.s3,
        doc: services.doc,
        table: LOCAL_TABLE,
        artifactsBucket: LOCAL_ARTIFACTS_BUCKET,
        manifest: async () => server.workflow.loaded.manifest,
      },
    );
    expect(written.reportKey).toBe(`${runPrefix}report.html`);
    const link = await call('site-a', 'GET', '/cohorts/run-a/report');
    expect(link.status).toBe(200);
    expect(Date.parse(link.json.expiresAt) - Date.now()).toBeLessThanOrEqual(300_000);
    const page = await fetch(link.json.url);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain('<title>sonomark cohort report (2 scans)</title>');
    expect(html).toContain(`data-scan-id="${aScan}"`);
    expect(html).toContain('data-chart="timeline"');
    expect(html).toContain('No frame images on this page.');
    // site-b, a run that never was, and a malformed id: no link
    const theirs = await call('site-b', 'GET', '/cohorts/run-a/report');
    const never = await call('site-b', 'GET', '/cohorts/run-z/report');
    expect(theirs.status).toBe(404);
    expect(theirs.json).toEqual(never.json);
    const malformed = await call('site-a', 'GET', '/cohorts/run-a%2F..%2F..%2Fsite-b/report');
    expect(malformed.status).toBe(400);
    expect(malformed.json.error.message).toContain('letters, digits, "-" or "_"');
    expect((await call(null, 'GET', '/cohorts/run-a/report')).status).toBe(403);

    // `sonomark usage` reads the same data directory (after the server lets go of it): the same numbers.
    await server.close();
    const cli = await runCli(['usage', '--site', 'site-a', '--month', month, '--json', '--data-dir', dataDir]);
    expect(cli.stderr).toBe('');
    expect(cli.code).toBe(0);
    expect(JSON.parse(cli.stdout)).toEqual(aUsage.json);
    const text = await runCli(['usage', '--site', 'site-b', '--month', month, '--data-dir', dataDir]);
    expect(text.stdout).toMatch(/scans billed\s+1/);
  });
});

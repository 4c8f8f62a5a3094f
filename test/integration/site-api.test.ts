/**
 * The multi-site API over HTTP, as two sites would use it: `sonomark serve`'s server on a real
 * socket, uploads through the presigned POST into s3rver, the local workflow run by s3rver's
 * Object Created notification (real ffmpeg, real ONNX), results and usage read back over HTTP,
 * and `sonomark usage` giving the same numbers. Each site sees only its own.
 */
import { readFileSync } from 'node:fs';
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

/**
 * The multi-site API handlers (core/site-api.ts) against a real DynamoDB API (dynalite) with
 * the table's real keys and bySite index, and a real S3 API (s3rver): each site sees and
 * writes only its own uploads, results and usage, whatever ids, paths or bodies it sends.
 */
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { COHORT_CSV, COHORT_REPORT_HTML } from '../../../core/cohort';
import { cohortRunPrefix } from '../../../core/cohort-run';
import { scanPk } from '../../../core/keys';
import type { ScanRates } from '../../../core/pricing';
import {
  claimScan,
  completeScan,
  failScan,
  putExpertResult,
  scanKey,
  type ScanClaim,
} from '../../../core/results-store';
import { scanIdFromContent } from '../../../core/scan-id';
import type { ExpertResult } from '../../../core/schemas';
import {
  handleSiteApi,
  REPORT_LINK_SECONDS,
  scanView,
  siteFromIamIdentity,
  type ApiRequest,
  type ApiResponse,
  type SiteApiDeps,
} from '../../../core/site-api';
import { ACCEPTED_FORMAT_ROWS } from '../../../core/formats';
import { UPLOAD_CONTENT_TYPES } from '../../../core/upload-policy';
import { ensureBucket, ensureResultsTable, startLocalServices, type LocalServices } from '../../../local/services';
import { tempDir } from '../../helpers/temp';
import { EXTRACTOR_REF } from '../helpers/fakes';

const TABLE = 'results';
const BUCKET = 'uploads';
const ARTIFACTS = 'artifacts';
const RATES: ScanRates = {
  basis: 'test prices',
  extractor: { usdPerSecond: 0.001, minimumSeconds: 0 },
  lambda: { usdPerGbSecond: 0.00001, usdPerRequest: 0.0000002 },
  expertMemoryMb: { diagnosis: 1024 },
  usdPerStateTransition: 0.000025,
};
const SITES = {
  'site-a': { displayName: 'Hospital A', rates: RATES },
  'site-b': { displayName: 'Clinic B', rates: RATES },
};
let services: LocalServices;
let deps: SiteApiDeps;

const get = (path: string, query: Record<string, string> = {}): ApiRequest => ({ method: 'GET', path, query });
const post = (body: unknown): ApiRequest => ({
  method: 'POST',
  path: '/uploads',
  query: {},
  body: typeof body === 'string' ? body : JSON.stringify(body),
});
const as = async (siteId: string | undefined, req: ApiRequest): Promise<ApiResponse & { json: any }> => {
  const res = await handleSiteApi(req, siteId === undefined ? undefined : { siteId }, deps);
  return { ...res, json: JSON.parse(res.body) };
};

/** A scan through the real store operations, as the workflow writes it. */
async function storeScan(
  siteId: string,
  studyId: string,
  content: string,
  receivedAt: string,
  outcome: 'completed' | 'failed' | 'running',
): Promise<string> {
  const scanId = scanIdFromContent(siteId, studyId, content);
  const claim: ScanClaim = {
    scanId,
    siteId,
    studyId,
    bucket: BUCKET,
    key: `uploads/${siteId}/${studyId}/${content}.mp4`,
    versionId: '',
    sha256: 'b'.repeat(64),
    size: 1000,
    container: 'mp4',
    extractor: EXTRACTOR_REF,
    receivedAt,
  };
  await claimScan(services.doc, TABLE, claim, receivedAt);
  if (outcome === 'failed') {
    await failScan(
      services.doc,
      TABLE,
      scanId,
      { siteId, studyId, bucket: BUCKET, key: claim.key },
      {
        code: 'DECODE_ERROR',
        message: 'The clip could not be decoded.',
      },
    );
  }
  if (outcome !== 'completed') return scanId;
  const result: ExpertResult = {
    scanId,
    expert: { name: 'diagnosis', version: '1.0.0', sha256: 'c'.repeat(64) },
    extractor: EXTRACTOR_REF,
    output: { kind: 'classification', label: 'healthy', probabilities: { healthy: 0.9, covid: 0.1 } },
    inferMs: 2,
    createdAt: receivedAt,
  };
  await putExpertResult(services.doc, TABLE, result, siteId);
  await completeScan(services.doc, TABLE, {
    scan: { scanId, siteId, studyId, extractor: EXTRACTOR_REF },
    summary: {
      experts: { diagnosis: result.output },
      expertVersions: { diagnosis: { version: '1.0.0', sha256: 'c'.repeat(64) } },
      extractor: EXTRACTOR_REF,
      durations: { extractorSeconds: 10, expertMs: { diagnosis: 2 }, totalExpertMs: 2 },
    },
    usage: { extractorSeconds: 10, expertMs: 2, estimatedCost: null },
    now: receivedAt,
  });
  return scanId;
}

let aCompleted: string;
let aFailed: string;
let bCompleted: string;
let bFebruary: string;

beforeAll(async () => {
  services = await startLocalServices(tempDir());
  // The deployed schema (keys and the bySite index) from the synthesized template.
  await ensureResultsTable(services.dynamo, TABLE);
  await ensureBucket(services.s3, BUCKET);
  await ensureBucket(services.s3, ARTIFACTS);
  deps = {
    s3: services.s3,
    doc: services.doc,
    table: TABLE,
    uploadsBucket: BUCKET,
    artifactsBucket: ARTIFACTS,
    maxUploadBytes: 1_000_000,
    sites: SITES,
    now: () => new Date('2026-01-20T00:00:00.000Z'),
  };
  // Both sites use the same study id: only the site keeps them apart.
  aCompleted = await storeScan('site-a', 'study-1', 'a1', '2026-01-05T10:00:00.000Z', 'completed');
  aFailed = await storeScan('site-a', 'study-1', 'a2', '2026-01-06T10:00:00.000Z', 'failed');
  await storeScan('site-a', 'study-2', 'a3', '2026-01-07T10:00:00.000Z', 'running');
  bCompleted = await storeScan('site-b', 'study-1', 'b1', '2026-01-08T10:00:00.000Z', 'completed');
  bFebruary = await storeScan('site-b', 'study-1', 'b2', '2026-02-01T00:00:00.000Z', 'completed');
}, 60_000);

afterAll(async () => {
  await services?.close();
});

describe('GET /scans/{scanId}', () => {
  it("returns the caller's own scan with its expert results", async () => {
    // Act
    const res = await as('site-a', get(`/scans/${aCompleted}`));
    // Assess
    expect(res.statusCode).toBe(200);
    expect(res.json).toMatchObject({
      scanId: aCompleted,
      studyId: 'study-1',
      fileName: 'a1.mp4',
      status: 'COMPLETED',
      // Stored without a modality (as before modalities): ultrasound.
      modality: 'ultrasound',
      experts: { diagnosis: { label: 'healthy' } },
      usage: { billed: true, extractorSeconds: 10, expertMs: 2 },
    });
    expect(res.json.results).toEqual([expect.objectContaining({ expert: { name: 'diagnosis', version: '1.0.0' } })]);
    expect(res.body).not.toMatch(/site-b|uploads\/|bucket/);
  });

  it("answers another site's scan id exactly as an id that exists nowhere (404, same body)", async () => {
    // Act
    const guessed = await as('site-b', get(`/scans/${aCompleted}`));
    const nowhere = await as('site-b', get(`/scans/${'f'.repeat(32)}`));
    // Assess
    expect(guessed.statusCode).toBe(404);
    expect(guessed.body).toBe(nowhere.body);
    expect(guessed.body).not.toContain(aCompleted);
  });

  it.each([
    ['..', '/scans/..'],
    ['an encoded slash', `/scans/..%2Fsite-a%2F${'a'.repeat(10)}`],
    ['a partition key', `/scans/SITE%23site-a%23SCAN%23${'a'.repeat(32)}`],
    ['upper-case hex', `/scans/${'A'.repeat(32)}`],
  ])('refuses a scan id that is %s with a 400 naming the accepted form', async (_what, path) => {
    // Act
    const res = await as('site-b', get(path));
    // Assess
    expect(res.statusCode).toBe(400);
    expect(res.json.error.message).toMatch(/scan id: \(root\): must be 32 lowercase hex characters/);
  });

  it('does not reach another route through dot segments or extra slashes', async () => {
    // Act
    const responses = await Promise.all(
      ['/scans/../usage', '/scans//usage', `/scans/${aCompleted}/../../usage`, '/studies/study-1/scans/..'].map((p) =>
        as('site-b', get(p, { month: '2026-01' })),
      ),
    );
    // Assess
    for (const res of responses) {
      expect([400, 404]).toContain(res.statusCode);
      expect(res.body).not.toContain(aCompleted);
    }
  });
});

describe('GET /scans and GET /studies/{studyId}/scans (the bySite index)', () => {
  it("lists only the caller's scans in the date range, oldest first, `to` exclusive", async () => {
    // Act
    const a = await as('site-a', get('/scans', { from: '2026-01-01', to: '2026-02-01' }));
    const b = await as('site-b', get('/scans', { from: '2026-01-01', to: '2026-02-01' }));
    const bAll = await as('site-b', get('/scans'));
    // Assess
    expect(a.json.scans.map((s: { fileName: string }) => s.fileName)).toEqual(['a1.mp4', 'a2.mp4', 'a3.mp4']);
    expect(b.json.scans.map((s: { scanId: string }) => s.scanId)).toEqual([bCompleted]);
    expect(bAll.json.scans.map((s: { scanId: string }) => s.scanId)).toEqual([bCompleted, bFebruary]);
  });

  it('limits a list and says it was truncated', async () => {
    // Act
    const res = await as('site-a', get('/scans', { limit: '2' }));
    // Assess
    expect(res.json).toMatchObject({ count: 2, truncated: true });
  });

  it("lists a study's scans of the caller's site only, though both sites have a study-1", async () => {
    // Act
    const a = await as('site-a', get('/studies/study-1/scans'));
    const b = await as('site-b', get('/studies/study-1/scans'));
    // Assess
    expect(a.json.scans.map((s: { scanId: string }) => s.scanId).sort()).toEqual([aCompleted, aFailed].sort());
    expect(b.json.scans.map((s: { scanId: string }) => s.scanId)).toEqual([bCompleted, bFebruary]);
  });

  it.each([['/studies/..%2Fsite-a/scans'], ['/studies/site-a%2Fstudy-1/scans'], ['/studies/%2E%2E/scans']])(
    'refuses the study path trick %s',
    async (path) => {
      // Act
      const res = await as('site-b', get(path));
      // Assess
      expect(res.statusCode).toBe(400);
      expect(res.json.error.message).toMatch(/study id/);
    },
  );

  it.each([
    [{ from: 'yesterday' }, /from: must be a date/],
    [{ from: '2026-02-01', to: '2026-01-01' }, /"from" must be before "to"/],
    [{ limit: '0' }, /limit/],
    [{ site: 'site-a' }, /Unrecognized key/],
  ])('refuses the query %j with a 400', async (query, message) => {
    // Act
    const res = await as('site-b', get('/scans', query as Record<string, string>));
    // Assess
    expect(res.statusCode).toBe(400);
    expect(res.json.error.message).toMatch(message);
  });
});

describe('GET /usage', () => {
  it('bills completed scans of the month only: failed and running ones are listed, not billed', async () => {
    // Act
    const res = await as('site-a', get('/usage', { month: '2026-01' }));
    // Assess: 10 s × $0.001 + 2 ms × 1 GB × $0.00001 + 5 requests (StartExecution, Validate, LoadExperts, the expert, Finalize) + 11 transitions
    expect(res.statusCode).toBe(200);
    expect(res.json).toMatchObject({
      siteId: 'site-a',
      displayName: 'Hospital A',
      month: '2026-01',
      scansBilled: 1,
      scansNotBilled: { failed: 1, running: 1 },
      extractorSeconds: 10,
      expertMs: 2,
      cost: { extractorUsd: 0.01, expertsUsd: 2e-8, requestsUsd: 1e-6, stateTransitionsUsd: 0.000275 },
      unpricedScans: 0,
    });
    expect(res.json.cost.totalUsd).toBeCloseTo(0.01 + 2e-8 + 1e-6 + 0.000275, 12);
    expect(res.json.scans.map((s: { scanId: string }) => s.scanId)).toEqual([aCompleted]);
  });

  it("gives each site its own month: site-b's January has its one scan, February the other", async () => {
    // Act
    const jan = await as('site-b', get('/usage', { month: '2026-01' }));
    const feb = await as('site-b', get('/usage', { month: '2026-02' }));
    // Assess
    expect(jan.json.scans.map((s: { scanId: string }) => s.scanId)).toEqual([bCompleted]);
    expect(feb.json.scans.map((s: { scanId: string }) => s.scanId)).toEqual([bFebruary]);
    expect(jan.json.scansNotBilled).toEqual({ failed: 0, running: 0 });
  });

  it.each([[{}], [{ month: '2026-13' }], [{ month: '2026-01', siteId: 'site-a' }]])(
    'refuses %j with a 400',
    async (query) => {
      // Act
      const res = await as('site-b', get('/usage', query as Record<string, string>));
      // Assess
      expect(res.statusCode).toBe(400);
    },
  );
});

describe('POST /uploads', () => {
  it('gives a presigned POST for exactly uploads/{caller site}/{study}/{file}, its type, size and a short expiry', async () => {
    // Act
    const res = await as('site-b', post({ studyId: 'study-1', fileName: 'day1/clip.mp4', size: 1000 }));
    // Assess
    expect(res.statusCode).toBe(201);
    expect(res.json).toMatchObject({
      key: 'uploads/site-b/study-1/day1/clip.mp4',
      contentType: 'video/mp4',
      maxBytes: 1_000_000,
      expiresAt: '2026-01-20T00:05:00.000Z',
      method: 'POST',
    });
    const policy = JSON.parse(Buffer.from(res.json.fields.Policy, 'base64').toString('utf8'));
    expect(policy.conditions).toEqual(
      expect.arrayContaining([
        { key: 'uploads/site-b/study-1/day1/clip.mp4' },
        { bucket: BUCKET },
        ['content-length-range', 1, 1_000_000],
        ['eq', '$Content-Type', 'video/mp4'],
      ]),
    );
    // No condition lets the key vary (a starts-with on $key would).
    expect(JSON.stringify(policy.conditions)).not.toContain('$key');
    expect(new Date(policy.expiration).getTime() - Date.now()).toBeLessThanOrEqual(300_000 + 5_000);
  });

  it('uploads through the link into s3rver under the caller site', async () => {
    // Prepare
    const link = (await as('site-a', post({ studyId: 'study-9', fileName: 'clip.mp4' }))).json;
    const form = new FormData();
    for (const [k, v] of Object.entries(link.fields as Record<string, string>)) form.append(k, v);
    form.append('file', new Blob([Buffer.from('not really a clip')]), 'clip.mp4');
    // Act
    const res = await fetch(link.url, { method: 'POST', body: form });
    // Assess
    expect(res.status).toBeLessThan(300);
    const obj = await services.s3.send(
      new GetObjectCommand({ Bucket: BUCKET, Key: 'uploads/site-a/study-9/clip.mp4' }),
    );
    expect(await obj.Body!.transformToString()).toBe('not really a clip');
  });

  it('gives a sidecar link as JSON with the sidecar size limit', async () => {
    // Act
    const res = await as('site-a', post({ studyId: 'study-1', fileName: 'clip.mp4.meta.json' }));
    // Assess
    expect(res.json).toMatchObject({ contentType: 'application/json', maxBytes: 65536 });
  });

  it.each([
    [{ studyId: 'study-1', fileName: '../site-a/clip.mp4' }, /fileName/],
    [{ studyId: 'study-1', fileName: 'a/../../site-a/clip.mp4' }, /fileName/],
    [{ studyId: 'study-1', fileName: '%2e%2e/clip.mp4' }, /fileName/],
    [{ studyId: 'study-1', fileName: '..%2Fclip.mp4' }, /fileName/],
    [{ studyId: 'study-1', fileName: '/clip.mp4' }, /fileName/],
    [{ studyId: 'study-1', fileName: 'x\\..\\clip.mp4' }, /fileName/],
    [{ studyId: 'study-1', fileName: 'clip.exe' }, /must end in one of/],
    [{ studyId: '../site-a', fileName: 'clip.mp4' }, /studyId/],
    [{ studyId: 'study-1/../../site-a', fileName: 'clip.mp4' }, /studyId/],
    [{ studyId: 'study-1', fileName: 'clip.mp4', siteId: 'site-a' }, /Unrecognized key/],
    [{ studyId: 'study-1', fileName: 'clip.mp4', contentType: 'text/html' }, /uploaded as video\/mp4/],
    [{ studyId: 'study-1', fileName: 'clip.mp4', size: 2_000_000 }, /over the 1000000-byte limit/],
    ['{not json', /must be JSON/],
  ])('refuses %j with a 400 saying what is wrong', async (body, message) => {
    // Act
    const res = await as('site-b', post(body));
    // Assess
    expect(res.statusCode).toBe(400);
    expect(res.json.error.message).toMatch(message);
  });

  it('has a content type for every accepted file ending', () => {
    // Assess
    for (const row of ACCEPTED_FORMAT_ROWS)
      for (const e of row.extensions) expect(UPLOAD_CONTENT_TYPES[e]).toBeDefined();
  });
});

describe('GET /cohorts/{runId}/report', () => {
  const PAGE = '<!doctype html><title>site-a cohort</title><p>Research software, not a medical device.</p>';
  const putRun = (site: string, runId: string, name: string, body: string, type: string) =>
    services.s3.send(
      new PutObjectCommand({
        Bucket: ARTIFACTS,
        Key: `${cohortRunPrefix(site, runId)}${name}`,
        Body: body,
        ContentType: type,
      }),
    );
  beforeAll(async () => {
    // site-a: a run with its page; a run whose report step wrote only the CSV. site-b: a run with its page.
    await putRun('site-a', 'run-1', COHORT_REPORT_HTML, PAGE, 'text/html; charset=utf-8');
    await putRun('site-a', 'run-2', COHORT_CSV, 'item\n', 'text/csv');
    await putRun('site-b', 'run-b', COHORT_REPORT_HTML, '<!doctype html><title>site-b</title>', 'text/html');
  });

  it("gives a short-lived link to the caller's own page, which serves the HTML", async () => {
    // Act: as the deployed handler runs (the real clock), so s3rver accepts the signature's date
    const live = { ...deps, now: undefined };
    const before = Date.now();
    const res = await handleSiteApi(get('/cohorts/run-1/report'), { siteId: 'site-a' }, live);
    const body = JSON.parse(res.body) as { url: string; expiresAt: string; expiresInSeconds: number };

    // Assess: a presigned GET of exactly cohorts/site-a/run-1/report.html, a few minutes long
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const url = new URL(body.url);
    expect(decodeURIComponent(url.pathname)).toBe(`/${ARTIFACTS}/cohorts/site-a/run-1/report.html`);
    expect(url.searchParams.get('X-Amz-Expires')).toBe(String(REPORT_LINK_SECONDS));
    expect(REPORT_LINK_SECONDS).toBeLessThanOrEqual(600);
    expect(body.expiresInSeconds).toBe(REPORT_LINK_SECONDS);
    const expires = Date.parse(body.expiresAt);
    expect(expires - before).toBeGreaterThanOrEqual(REPORT_LINK_SECONDS * 1000 - 1000);
    expect(expires - Date.now()).toBeLessThanOrEqual(REPORT_LINK_SECONDS * 1000);
    const page = await fetch(body.url);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await page.text()).toBe(PAGE);
    // (Whether the signature covers only this key is S3's to enforce; s3rver does not check it.)
  });

  it('signs the link at the time of the request, expiring REPORT_LINK_SECONDS later', async () => {
    // Act (deps.now is 2026-01-20T00:00:00Z)
    const res = await as('site-a', get('/cohorts/run-1/report'));
    // Assess
    expect(res.statusCode).toBe(200);
    expect(res.json.expiresAt).toBe(
      new Date(Date.parse('2026-01-20T00:00:00.000Z') + REPORT_LINK_SECONDS * 1000).toISOString(),
    );
    expect(new URL(res.json.url).searchParams.get('X-Amz-Date')).toBe('20260120T000000Z');
  });

  it("answers another site's run, a run without a page and a run that never existed alike (404, same body)", async () => {
    // Act
    const theirs = await as('site-a', get('/cohorts/run-b/report'));
    const noPage = await as('site-a', get('/cohorts/run-2/report'));
    const never = await as('site-a', get('/cohorts/no-such-run/report'));
    const mineFromB = await as('site-b', get('/cohorts/run-1/report'));
    // Assess
    for (const res of [theirs, noPage, never, mineFromB]) {
      expect(res.statusCode).toBe(404);
      expect(res.body).toBe(never.body);
    }
    expect(never.body).not.toContain('no-such-run');
    expect(never.body).not.toContain('site-b');
  });

  it('refuses a malformed run id with what is accepted (400), never echoing it', async () => {
    // Act
    const bad = ['..', '.', 'a.b', '-run', '_run', 'run%2F..%2Fsite-b%2Frun-b', 'run%20x', 'r'.repeat(81), 'ü'];
    const responses = await Promise.all(bad.map((id) => as('site-a', get(`/cohorts/${id}/report`))));
    // Assess
    for (const res of responses) {
      expect(res.statusCode).toBe(400);
      expect(res.json.error.message).toContain('cohort run id');
      expect(res.json.error.message).toContain('letters, digits, "-" or "_"');
      expect(res.body).not.toContain('%2F');
    }
    // Extra segments are another route: not found, and never a read of another key
    for (const path of ['/cohorts/run-1/report/x', '/cohorts/../cohorts/run-b/report', '/cohorts//report']) {
      const res = await as('site-a', get(path));
      expect([400, 404]).toContain(res.statusCode);
      expect(res.body).not.toContain('http');
    }
  });

  it('takes GET only, and no query', async () => {
    const query = await as('site-a', get('/cohorts/run-1/report', { download: '1' }));
    const postIt = await as('site-a', { method: 'POST', path: '/cohorts/run-1/report', query: {}, body: '{}' });
    expect(query.statusCode).toBe(400);
    expect(postIt.statusCode).toBe(405);
  });

  it('answers 404 where no artifacts bucket is configured', async () => {
    const res = await handleSiteApi(
      get('/cohorts/run-1/report'),
      { siteId: 'site-a' },
      { ...deps, artifactsBucket: undefined },
    );
    expect(res.statusCode).toBe(404);
  });
});

describe('the caller', () => {
  it('refuses an unknown identity or an unregistered site on every route (403)', async () => {
    // Act
    const responses = await Promise.all([
      as(undefined, get('/usage', { month: '2026-01' })),
      as('site-c', get('/scans')),
      as('site-c', post({ studyId: 'study-1', fileName: 'clip.mp4' })),
      as('__proto__', get('/scans')),
      as('toString', get(`/scans/${aCompleted}`)),
    ]);
    // Assess
    for (const res of responses) expect(res.statusCode).toBe(403);
  });

  it("maps an assumed role's unique id to its site, and nothing else", () => {
    // Prepare
    const roleIds = { AROAAAAAAAAAAAAAAAAAA: 'site-a', AROABBBBBBBBBBBBBBBBB: 'site-b' };
    // Act / Assess
    expect(siteFromIamIdentity({ caller: 'AROAAAAAAAAAAAAAAAAAA:alice' }, roleIds)).toEqual({ siteId: 'site-a' });
    expect(siteFromIamIdentity({ user: 'AROABBBBBBBBBBBBBBBBB:bob' }, roleIds)).toEqual({ siteId: 'site-b' });
    expect(siteFromIamIdentity({ caller: 'AIDAUSERUSERUSER' }, roleIds)).toBeUndefined();
    expect(siteFromIamIdentity({ caller: 'constructor:x' }, roleIds)).toBeUndefined();
    expect(siteFromIamIdentity(undefined, roleIds)).toBeUndefined();
  });

  it('keeps each site in its own partition', () => {
    // Assess: the items the API reads are keyed under the site
    expect(scanPk('site-a', aCompleted)).toBe(`SITE#site-a#SCAN#${aCompleted}`);
  });
});

describe('scanView modality', () => {
  const base = { ...scanKey('site-a', 'c'.repeat(32)), scanId: 'c'.repeat(32), updatedAt: '2026-01-01T00:00:00.000Z' };

  it('says what Validate decided, ultrasound for a scan with features stored before modalities, null for one refused undecided', () => {
    // Act
    const xray = scanView({ ...base, status: 'COMPLETED', modality: 'xray', featuresKey: 'features/x.json' });
    const legacy = scanView({ ...base, status: 'COMPLETED', featuresKey: 'features/u.json' });
    const legacyFailed = scanView({ ...base, status: 'FAILED', featuresKey: 'features/f.json' });
    const refused = scanView({ ...base, status: 'FAILED' });

    // Assess
    expect(xray.modality).toBe('xray');
    expect(legacy.modality).toBe('ultrasound');
    expect(legacyFailed.modality).toBe('ultrasound');
    expect(refused.modality).toBeNull();
  });
});

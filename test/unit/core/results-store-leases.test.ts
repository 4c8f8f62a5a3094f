/**
 * Claims, leases and abandoned scans (core/results-store.ts) against a real DynamoDB API
 * (dynalite): the conditional writes are what make them safe, so they are run, not mocked.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ensureResultsTable } from '../../../local/services';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import {
  claimScan,
  completeScan,
  DEFAULT_LEASE_SECONDS,
  getExecutionPointer,
  getScan,
  leaseExpired,
  putExecutionPointer,
  recordAbandonedScan,
  runningScanItem,
  type ScanClaim,
} from '../../../core/results-store';
import { TABLE_KEYS } from '../../../core/keys';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const dynalite = require('dynalite') as (opts: Record<string, unknown>) => Server;

const TABLE = 'results';
const T0 = '2025-01-02T03:00:00.000Z';
const at = (minutes: number): string => new Date(Date.parse(T0) + minutes * 60_000).toISOString();
const PROBLEM = { code: 'EXECUTION_TIMED_OUT', message: 'The analysis did not finish.' };

let server: Server;
let doc: DynamoDBDocumentClient;
let n = 0;

beforeAll(async () => {
  server = dynalite({ createTableMs: 0 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  const client = new DynamoDBClient({
    endpoint: `http://127.0.0.1:${port}`,
    region: 'local-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
  });
  await ensureResultsTable(client, TABLE);

  doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
});
afterAll(async () => {
  doc?.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** A claim of a fresh scan id, leased to `executionId` until `expiresAt`. */
function claimOf(executionId: string, expiresAt: string, scanId = `${String(++n).padStart(32, '0')}`): ScanClaim {
  return {
    scanId,
    siteId: 'site-a',
    studyId: 'study-1',
    bucket: 'uploads',
    key: 'uploads/site-a/study-1/clip.mp4',
    versionId: 'v1',
    sha256: 'f'.repeat(64),
    size: 10,
    extractor: { name: 'x', version: '1.0.0', sha256: '0'.repeat(64) },
    receivedAt: T0,
    lease: { executionId, expiresAt },
  };
}

describe('claims carry a lease', () => {
  it('a new claim records the lease holder and expiry', async () => {
    // Act
    const c = claimOf('exec-1', at(60));
    const out = await claimScan(doc, TABLE, c, T0);
    // Assess
    expect(out).toMatchObject({ claimed: true, reclaimed: false });
    expect(await getScan(doc, TABLE, c.siteId, c.scanId)).toMatchObject({
      status: 'RUNNING',
      lease: { executionId: 'exec-1', expiresAt: at(60) },
    });
  });

  it('a RUNNING scan is skipped while its lease holds, and claimed again once it has expired', async () => {
    // Prepare
    const first = claimOf('exec-1', at(60));
    await claimScan(doc, TABLE, first, T0);
    // Act
    const during = await claimScan(
      doc,
      TABLE,
      { ...first, lease: { executionId: 'exec-2', expiresAt: at(90) } },
      at(30),
    );
    const after = await claimScan(
      doc,
      TABLE,
      { ...first, lease: { executionId: 'exec-3', expiresAt: at(200) } },
      at(61),
    );
    // Assess
    expect(during).toMatchObject({ claimed: false, existingStatus: 'RUNNING' });
    expect(after).toMatchObject({ claimed: true, reclaimed: true, leaseExpired: true });
    expect(await getScan(doc, TABLE, first.siteId, first.scanId)).toMatchObject({
      status: 'RUNNING',
      attempts: 2,
      lease: { executionId: 'exec-3' },
    });
  });

  it('two executions racing to re-claim an expired scan: exactly one wins', async () => {
    // Prepare
    const c = claimOf('exec-dead', at(10));
    await claimScan(doc, TABLE, c, T0);
    // Act
    const results = await Promise.all(
      ['exec-a', 'exec-b', 'exec-c'].map((e) =>
        claimScan(doc, TABLE, { ...c, lease: { executionId: e, expiresAt: at(100) } }, at(20)),
      ),
    );
    // Assess
    expect(results.filter((r) => r.claimed)).toHaveLength(1);
  });

  it('a RUNNING item from before leases existed is claimable once DEFAULT_LEASE_SECONDS have passed since its update', async () => {
    // Prepare
    const c = claimOf('unused', at(0));
    const { lease: _lease, ...withoutLease } = runningScanItem(c, T0);
    await doc.send(new PutCommand({ TableName: TABLE, Item: withoutLease }));
    const later = (s: number) => new Date(Date.parse(T0) + s * 1000).toISOString();
    // Act / Assess
    expect(leaseExpired({ ...withoutLease, sk: 'SCAN' } as never, later(DEFAULT_LEASE_SECONDS - 1))).toBe(false);
    expect(await claimScan(doc, TABLE, c, later(DEFAULT_LEASE_SECONDS - 1))).toMatchObject({ claimed: false });
    expect(await claimScan(doc, TABLE, c, later(DEFAULT_LEASE_SECONDS + 1))).toMatchObject({ claimed: true });
  });

  it('a COMPLETED scan is never claimed again, whatever its lease says', async () => {
    // Prepare
    const c = claimOf('exec-1', at(10));
    await claimScan(doc, TABLE, c, T0);
    await completeScan(doc, TABLE, {
      scan: c,
      summary: {
        experts: {},
        expertVersions: {},
        extractor: c.extractor,
        durations: { extractorSeconds: 1, expertMs: {}, totalExpertMs: 0 },
      },
      usage: { extractorSeconds: 1, expertMs: 0, estimatedCost: null },
      now: at(5),
    });
    // Act
    const out = await claimScan(doc, TABLE, c, at(100));
    // Assess
    expect(out).toMatchObject({ claimed: false, existingStatus: 'COMPLETED' });
  });
});

describe('recordAbandonedScan', () => {
  it('records FAILED when the scan is RUNNING under that execution; a second delivery changes nothing', async () => {
    // Prepare
    const c = claimOf('exec-1', at(60));
    await putExecutionPointer(doc, TABLE, 'exec-1', c.siteId, c.scanId, T0);
    await claimScan(doc, TABLE, c, T0);
    // Act
    const first = await recordAbandonedScan(doc, TABLE, 'exec-1', PROBLEM, at(1));
    const again = await recordAbandonedScan(doc, TABLE, 'exec-1', { ...PROBLEM, code: 'OTHER' }, at(2));
    // Assess
    expect(first).toEqual({ recorded: true, scanId: c.scanId });
    expect(again).toEqual({ recorded: false, reason: 'not-running-under-execution', scanId: c.scanId });
    expect(await getScan(doc, TABLE, c.siteId, c.scanId)).toMatchObject({
      status: 'FAILED',
      error: PROBLEM,
      updatedAt: at(1),
    });
  });

  it('leaves a scan that another execution has re-claimed, or that completed, alone', async () => {
    // Prepare: exec-old's lease expired and exec-new re-claimed the scan.
    const c = claimOf('exec-old', at(10));
    await putExecutionPointer(doc, TABLE, 'exec-old', c.siteId, c.scanId, T0);
    await claimScan(doc, TABLE, c, T0);
    await claimScan(doc, TABLE, { ...c, lease: { executionId: 'exec-new', expiresAt: at(100) } }, at(20));
    // Act: exec-old's (late) timed-out event.
    const out = await recordAbandonedScan(doc, TABLE, 'exec-old', PROBLEM, at(21));
    // Assess
    expect(out).toMatchObject({ recorded: false, reason: 'not-running-under-execution' });
    expect(await getScan(doc, TABLE, c.siteId, c.scanId)).toMatchObject({
      status: 'RUNNING',
      lease: { executionId: 'exec-new' },
    });
  });

  it('a pointer expires a week after it was written (DynamoDB TTL, epoch seconds); the scan item never expires', async () => {
    // Prepare
    const c = claimOf('exec-ttl', at(60));
    // Act
    const pointer = await putExecutionPointer(doc, TABLE, 'exec-ttl', c.siteId, c.scanId, T0);
    await claimScan(doc, TABLE, c, T0);
    // Assess
    expect(pointer.expiresAt).toBe(Date.parse(T0) / 1000 + 7 * 24 * 3600);
    expect(await getExecutionPointer(doc, TABLE, 'exec-ttl')).toMatchObject({ expiresAt: pointer.expiresAt });
    expect(await getScan(doc, TABLE, c.siteId, c.scanId)).not.toHaveProperty(TABLE_KEYS.timeToLive);
  });

  it('an execution without a pointer (it never reached a claim) records nothing', async () => {
    // Act / Assess
    expect(await recordAbandonedScan(doc, TABLE, 'exec-never', PROBLEM, T0)).toEqual({
      recorded: false,
      reason: 'no-claim',
    });
  });

  it('a scan recorded FAILED this way can be claimed again by the next upload of the same bytes', async () => {
    // Prepare
    const c = claimOf('exec-1', at(60));
    await putExecutionPointer(doc, TABLE, 'exec-1', c.siteId, c.scanId, T0);
    await claimScan(doc, TABLE, c, T0);
    await recordAbandonedScan(doc, TABLE, 'exec-1', PROBLEM, at(1));
    // Act
    const out = await claimScan(doc, TABLE, { ...c, lease: { executionId: 'exec-2', expiresAt: at(90) } }, at(2));
    // Assess
    expect(out).toMatchObject({ claimed: true, reclaimed: true });
  });
});

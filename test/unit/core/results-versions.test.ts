/**
 * Versioned expert results on a real DynamoDB API (dynalite): a new expert version is stored
 * beside the old one, the pointer names the current one, and every reader returns the current
 * version unless it asks for all of them.
 */
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { currentExpertSk, expertSk, expertVersionSk, scanPk } from '../../../core/keys';
import {
  claimScan,
  completeScan,
  getScan,
  listExpertResults,
  listExpertResultVersions,
  listScans,
  putExpertResult,
} from '../../../core/results-store';
import type { ExpertResult } from '../../../core/schemas';
import { ensureResultsTable, startLocalServices, type LocalServices } from '../../../local/services';
import { tempDir } from '../../helpers/temp';
import { EXTRACTOR_REF, scanRef } from '../helpers/fakes';

/** Every scan here belongs to the fakes' site: its items live in that site's partition. */
const SITE = scanRef().siteId;

const TABLE = 'results';
let services: LocalServices;

beforeAll(async () => {
  services = await startLocalServices(tempDir());
  await ensureResultsTable(services.dynamo, TABLE);
}, 30_000);
afterAll(async () => services?.close());

const diagnosis = (scanId: string, version: string, label: string, createdAt: string): ExpertResult => ({
  scanId,
  expert: { name: 'diagnosis', version, sha256: version.replace(/\./g, '').padEnd(64, 'c').slice(0, 64) },
  extractor: EXTRACTOR_REF,
  output: {
    kind: 'classification',
    label,
    probabilities: { covid: label === 'covid' ? 0.7 : 0.1, pneumonia: 0.1, healthy: label === 'covid' ? 0.2 : 0.8 },
  },
  inferMs: 0.2,
  createdAt,
});

describe('versioned expert results', () => {
  it('keeps every version, points at the current one, and readers return the current version', async () => {
    // Arrange: a completed scan scored by diagnosis 1.0.0
    const scan = scanRef({ scanId: 'a'.repeat(32) });
    await claimScan(services.doc, TABLE, scan, '2025-01-01T00:00:00.000Z');
    const v1 = diagnosis(scan.scanId, '1.0.0', 'covid', '2025-01-01T00:00:01.000Z');
    await putExpertResult(services.doc, TABLE, v1, SITE);
    await completeScan(services.doc, TABLE, {
      scan,
      summary: {
        experts: { diagnosis: v1.output },
        expertVersions: { diagnosis: { version: '1.0.0', sha256: v1.expert.sha256 } },
        extractor: EXTRACTOR_REF,
        durations: { extractorSeconds: 1, expertMs: { diagnosis: 0.2 }, totalExpertMs: 0.2 },
      },
      usage: { extractorSeconds: 1, expertMs: 0.2, estimatedCost: null },
    });

    // Act: re-score with 1.1.0
    const v2 = diagnosis(scan.scanId, '1.1.0', 'healthy', '2025-02-01T00:00:00.000Z');
    await putExpertResult(services.doc, TABLE, v2, SITE);

    // Assess: both stored, under their own keys
    const all = await listExpertResultVersions(services.doc, TABLE, SITE, scan.scanId);
    expect(all.results.map((r) => r.sk).sort()).toEqual([
      expertVersionSk('diagnosis', '1.0.0'),
      expertVersionSk('diagnosis', '1.1.0'),
    ]);
    expect(all.results.find((r) => r.expert.version === '1.0.0')?.output).toEqual(v1.output);
    expect(all.current).toEqual({ diagnosis: '1.1.0' });
    // The default reader returns the current version only
    const current = await listExpertResults(services.doc, TABLE, SITE, scan.scanId);
    expect(current.map((r) => [r.expert.name, r.expert.version, r.output])).toEqual([
      ['diagnosis', '1.1.0', v2.output],
    ]);
    // The scan's summary (what listScans returns) follows the pointer
    const listed = (await listScans(services.doc, TABLE)).find((s) => s.scanId === scan.scanId);
    expect(listed?.summary?.experts.diagnosis).toEqual(v2.output);
    expect(listed?.summary?.expertVersions.diagnosis?.version).toBe('1.1.0');

    // Act: moving the pointer back to 1.0.0 restores its output, nothing was lost
    await putExpertResult(services.doc, TABLE, { ...v1, createdAt: '2025-03-01T00:00:00.000Z' }, SITE);
    expect((await listExpertResults(services.doc, TABLE, SITE, scan.scanId))[0]?.expert.version).toBe('1.0.0');
    expect((await getScan(services.doc, TABLE, SITE, scan.scanId))?.summary?.experts.diagnosis).toEqual(v1.output);
  });

  it('never overwrites a stored version: a second write of the same version keeps the first', async () => {
    const scanId = 'b'.repeat(32);
    const first = diagnosis(scanId, '1.0.0', 'covid', '2025-01-01T00:00:00.000Z');
    await putExpertResult(services.doc, TABLE, first, SITE);
    const stored = await putExpertResult(
      services.doc,
      TABLE,
      {
        ...first,
        createdAt: '2025-06-01T00:00:00.000Z',
        inferMs: 9,
      },
      SITE,
    );
    expect(stored.createdAt).toBe(first.createdAt);
    const all = await listExpertResultVersions(services.doc, TABLE, SITE, scanId);
    expect(all.results).toHaveLength(1);
    expect(all.results[0]?.inferMs).toBe(0.2);
  });

  it('reads results stored before versions were kept (EXPERT#{name}, no pointer) as current', async () => {
    const scanId = 'c'.repeat(32);
    const legacy = diagnosis(scanId, '0.9.0', 'covid', '2024-01-01T00:00:00.000Z');
    await services.doc.send(
      new PutCommand({ TableName: TABLE, Item: { pk: scanPk(SITE, scanId), sk: expertSk('diagnosis'), ...legacy } }),
    );
    expect((await listExpertResults(services.doc, TABLE, SITE, scanId)).map((r) => r.expert.version)).toEqual([
      '0.9.0',
    ]);
    // A new version's pointer then wins over the legacy item, which stays stored
    await putExpertResult(services.doc, TABLE, diagnosis(scanId, '1.0.0', 'healthy', '2025-01-01T00:00:00.000Z'), SITE);
    expect((await listExpertResults(services.doc, TABLE, SITE, scanId)).map((r) => r.expert.version)).toEqual([
      '1.0.0',
    ]);
    const all = await listExpertResultVersions(services.doc, TABLE, SITE, scanId);
    expect(all.results).toHaveLength(2);
    expect(all.results.some((r) => r.sk === currentExpertSk('diagnosis'))).toBe(false);
  });
});

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { scanPk, SCAN_SK } from '../../../core/keys';
import type { ScanRates } from '../../../core/pricing';
import type { ExpertResult } from '../../../core/schemas';
import { finalizeScan, type FinalizeDeps } from '../../../lambdas/finalize/finalize';
import { EXTRACTOR_REF, scanRef } from '../helpers/fakes';

const ddbMock = mockClient(DynamoDBDocumentClient);
const NOW = '2025-01-02T03:10:00.000Z';
/** Round numbers, so the expected estimate can be worked out by hand. */
const RATES: ScanRates = {
  basis: 'test prices',
  extractor: { usdPerSecond: 0.001, minimumSeconds: 0 },
  lambda: { usdPerGbSecond: 0.00001, usdPerRequest: 0.0000002 },
  expertMemoryMb: { diagnosis: 1024, triage: 2048 },
  usdPerStateTransition: 0.000025,
};
const deps = (): FinalizeDeps => ({
  doc: DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' })),
  table: 'results',
  rates: RATES,
  now: () => new Date(NOW),
});
// 42.5 s × $0.001; (2.5 ms × 1 GB + 1.5 ms × 2 GB) × $0.00001/GB-s; 6 requests; 12 transitions.
const ESTIMATE = {
  totalUsd: 0.042801255,
  extractorUsd: 0.0425,
  expertsUsd: 0.000000055,
  requestsUsd: 0.0000012,
  stateTransitionsUsd: 0.0003,
  basis: 'test prices',
};
const scan = scanRef();
const result = (name: string, inferMs: number, output: ExpertResult['output']): ExpertResult => ({
  scanId: scan.scanId,
  expert: { name, version: '0.0.1', sha256: 'c'.repeat(64) },
  extractor: EXTRACTOR_REF,
  output,
  inferMs,
  createdAt: NOW,
});
const results = [
  result('diagnosis', 2.5, {
    kind: 'classification',
    label: 'covid',
    probabilities: { covid: 0.7, pneumonia: 0.2, healthy: 0.1 },
  }),
  result('triage', 1.5, { kind: 'binary', label: 'abnormal', positive: 'abnormal', probability: 0.8 }),
];

beforeEach(() => {
  ddbMock.reset();
  ddbMock.on(UpdateCommand).resolves({});
});

describe('finalizeScan', () => {
  it('completes the scan and records usage with measured extractor seconds in one conditional update', async () => {
    // Act
    const out = await finalizeScan(
      { scan, extract: { jobId: 'j1', startedAt: 1_000_000, stoppedAt: 1_042_500 }, results },
      deps(),
    );
    // Assess
    expect(out).toMatchObject({
      status: 'COMPLETED',
      scanId: scan.scanId,
      usage: { extractorSeconds: 42.5, expertMs: 4, units: 1, estimatedCost: ESTIMATE },
    });
    expect(out.summary.experts.diagnosis).toEqual(results[0]!.output);
    expect(out.summary.durations).toEqual({
      extractorSeconds: 42.5,
      expertMs: { diagnosis: 2.5, triage: 1.5 },
      totalExpertMs: 4,
    });
    expect(ddbMock.commandCalls(UpdateCommand)).toHaveLength(1);
    const call = ddbMock.commandCalls(UpdateCommand)[0]!.args[0].input;
    expect(call).toMatchObject({
      Key: { pk: scanPk(scan.siteId, scan.scanId), sk: SCAN_SK },
      ConditionExpression: expect.stringContaining(':running'),
      ExpressionAttributeValues: expect.objectContaining({ ':completed': 'COMPLETED', ':summary': out.summary }),
    });
    expect(call.ExpressionAttributeValues![':usage']).toEqual({
      scanId: scan.scanId,
      siteId: 'site-a',
      studyId: 'study-1',
      extractor: scan.extractor,
      extractorSeconds: 42.5,
      expertMs: 4,
      estimatedCost: ESTIMATE,
      units: 1,
      createdAt: NOW,
    });
  });

  it('records null extractor seconds when the job summary has no timestamps', async () => {
    const out = await finalizeScan({ scan, extract: {}, results }, deps());
    expect(out.usage.extractorSeconds).toBeNull();
    expect(out.usage.estimatedCost).toBeNull();
    expect(ddbMock.commandCalls(UpdateCommand)[0]!.args[0].input.ExpressionAttributeValues![':usage']).toMatchObject({
      estimatedCost: null,
    });
  });

  it('turns a failed condition into a ScanStateError naming the status', async () => {
    ddbMock
      .on(UpdateCommand)
      .rejects(Object.assign(new Error('condition'), { name: 'ConditionalCheckFailedException' }));
    ddbMock
      .on(GetCommand)
      .resolves({ Item: { pk: 'x', sk: SCAN_SK, scanId: scan.scanId, status: 'FAILED', updatedAt: NOW } });
    await expect(finalizeScan({ scan, extract: {}, results }, deps())).rejects.toMatchObject({
      name: 'ScanStateError',
      message: expect.stringMatching(/it is FAILED/),
    });
  });

  it('refuses results of another scan', async () => {
    const stray = { ...results[0]!, scanId: 'f'.repeat(32) };
    await expect(finalizeScan({ scan, extract: {}, results: [stray] }, deps())).rejects.toMatchObject({
      name: 'ModelError',
    });
  });
});

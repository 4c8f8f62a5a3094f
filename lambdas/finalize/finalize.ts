/**
 * Finalize: the scan is COMPLETED with a summary, and its usage record is written
 * in the same transaction (lib/results-store.ts completeScan).
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { ModelError } from '../../lib/errors';
import { completeScan, measuredSeconds, type ScanSummary, type UsageRecord } from '../../lib/results-store';
import { FinalizeInput } from '../../lib/schemas';
import { parsePayload } from '../../lib/zod-parse';

export interface FinalizeDeps {
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  readonly now?: () => Date;
}

export interface FinalizeOutput {
  readonly status: 'COMPLETED';
  readonly scanId: string;
  readonly summary: ScanSummary;
  readonly usage: Pick<UsageRecord, 'extractorSeconds' | 'expertMs' | 'units'>;
}

export async function finalizeScan(input: unknown, deps: FinalizeDeps): Promise<FinalizeOutput> {
  const { scan, extract, results } = parsePayload(FinalizeInput, input, 'Finalize input');
  for (const r of results) {
    if (r.scanId !== scan.scanId)
      throw new ModelError(`Expert "${r.expert.name}" returned a result for scan ${r.scanId}, not ${scan.scanId}.`);
  }
  const names = results.map((r) => r.expert.name);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate) throw new ModelError(`Expert "${duplicate}" returned two results for scan ${scan.scanId}.`);

  const expertMs = Object.fromEntries(results.map((r) => [r.expert.name, r.inferMs]));
  const totalExpertMs = results.reduce((s, r) => s + r.inferMs, 0);
  const extractorSeconds = measuredSeconds(extract.startedAt, extract.stoppedAt);
  const summary: ScanSummary = {
    experts: Object.fromEntries(results.map((r) => [r.expert.name, r.output])),
    expertVersions: Object.fromEntries(
      results.map((r) => [r.expert.name, { version: r.expert.version, sha256: r.expert.sha256 }]),
    ),
    extractor: scan.extractor,
    durations: { extractorSeconds, expertMs, totalExpertMs },
  };
  const usage = await completeScan(deps.doc, deps.table, {
    scan,
    summary,
    usage: { extractorSeconds, expertMs: totalExpertMs },
    now: (deps.now?.() ?? new Date()).toISOString(),
  });
  return {
    status: 'COMPLETED',
    scanId: scan.scanId,
    summary,
    usage: { extractorSeconds: usage.extractorSeconds, expertMs: usage.expertMs, units: usage.units },
  };
}

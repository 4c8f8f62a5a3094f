/**
 * Finalize: the scan is COMPLETED with a summary, and its usage record (measured
 * seconds and the cost estimated from them, core/pricing.ts) is written in the same
 * conditional update (core/results-store.ts completeScan).
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { ModelError } from '../../core/errors';
import { estimateScanCost, type ScanRates } from '../../core/pricing';
import { completeScan, measuredSeconds, type ScanSummary, type UsageRecord } from '../../core/results-store';
import { FinalizeInput } from '../../core/schemas';
import { parsePayload } from '../../core/zod-parse';

export interface FinalizeDeps {
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  /** This deployment's prices, for the usage record's cost estimate (env SCAN_RATES in the cloud). */
  readonly rates: ScanRates;
  readonly now?: () => Date;
}

export interface FinalizeOutput {
  readonly status: 'COMPLETED';
  readonly scanId: string;
  readonly summary: ScanSummary;
  readonly usage: Pick<UsageRecord, 'extractorSeconds' | 'expertMs' | 'units' | 'estimatedCost'>;
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
  const estimatedCost = estimateScanCost({ extractorSeconds, expertMs }, deps.rates);
  const usage = await completeScan(deps.doc, deps.table, {
    scan,
    summary,
    usage: { extractorSeconds, expertMs: totalExpertMs, estimatedCost },
    now: (deps.now?.() ?? new Date()).toISOString(),
  });
  return {
    status: 'COMPLETED',
    scanId: scan.scanId,
    summary,
    usage: {
      extractorSeconds: usage.extractorSeconds,
      expertMs: usage.expertMs,
      units: usage.units,
      estimatedCost: usage.estimatedCost ?? null,
    },
  };
}

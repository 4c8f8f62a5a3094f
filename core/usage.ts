/**
 * Pay-per-scan: a site's usage in one month, priced from the price table (core/pricing.ts).
 *
 * One function serves the API (`GET /usage?month=`), `sonomark usage` and the scheduled
 * invoice job, so all three give the same numbers. What is billed:
 * - one unit per COMPLETED scan received in the month (its `receivedAt`, the bySite index's
 *   sort key, decides the month);
 * - FAILED and still RUNNING scans are listed as not billed;
 * - a re-upload of bytes already analysed (a "reused" scan) creates no second item: the
 *   claim in Validate stops it (results-store.ts claimScan), so it cannot be billed twice.
 * Each billed scan is priced from its measured seconds with the site's rates (the
 * deployment's price table with the site's plan over it); when those cannot price it
 * (no measured extractor seconds, an expert the rates do not know), the estimate stored at
 * completion is used, and failing that the scan counts as unpriced.
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { estimateScanCost, type ScanCostEstimate, type ScanRates } from './pricing';
import { listSiteScans, type ScanItem } from './results-store';

/** `YYYY-MM`, a calendar month (UTC). */
export const Month = z
  .string()
  .regex(/^\d{4}-(0[1-9]|1[0-2])$/, 'must be a month as YYYY-MM, e.g. 2026-01')
  .refine((m) => Number(m.slice(0, 4)) >= 2000, 'must be a month as YYYY-MM from 2000 on');
export type Month = z.infer<typeof Month>;

/** The first instant of the month after `month` as a sort-key prefix: `2026-12` → `2027-01`. */
export function nextMonth(month: string): string {
  const year = Number(month.slice(0, 4));
  const m = Number(month.slice(5, 7));
  return m === 12 ? `${year + 1}-01` : `${year}-${String(m + 1).padStart(2, '0')}`;
}

/** The month before the one containing `now`, `YYYY-MM` (what the scheduled invoice job bills). */
export function previousMonth(now: Date): string {
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
  return d.toISOString().slice(0, 7);
}

export interface CostByPart {
  readonly extractorUsd: number;
  readonly expertsUsd: number;
  readonly requestsUsd: number;
  readonly stateTransitionsUsd: number;
  readonly totalUsd: number;
}

export interface BilledScan {
  readonly scanId: string;
  readonly studyId: string;
  readonly receivedAt: string;
  readonly extractorSeconds: number | null;
  readonly expertMs: number;
  /** Null when the scan could not be priced. */
  readonly cost: CostByPart | null;
}

export interface UsageSummary {
  readonly siteId: string;
  readonly displayName: string;
  readonly month: string;
  readonly currency: 'USD';
  /** Completed scans received in the month: one billable unit each. */
  readonly scansBilled: number;
  /** Scans received in the month that are not billed, by why. */
  readonly scansNotBilled: { readonly failed: number; readonly running: number };
  /** Measured extractor seconds of the billed scans (scans without a measurement add 0). */
  readonly extractorSeconds: number;
  /** Expert inference milliseconds of the billed scans. */
  readonly expertMs: number;
  /** Cost of the billed scans by part, from the site's rates. */
  readonly cost: CostByPart;
  /** Billed scans that could not be priced (counted in scansBilled, not in cost). */
  readonly unpricedScans: number;
  /** Where the prices come from (ScanRates.basis): an estimate from list prices, not a bill. */
  readonly basis: string;
  readonly scans: readonly BilledScan[];
}

const ZERO: CostByPart = { extractorUsd: 0, expertsUsd: 0, requestsUsd: 0, stateTransitionsUsd: 0, totalUsd: 0 };
/** Sums are rounded to 1e-10 USD, as each part is (pricing.ts): far below any price, above float noise. */
const round = (usd: number): number => Math.round(usd * 1e10) / 1e10;

function costOf(estimate: ScanCostEstimate): CostByPart {
  const { extractorUsd, expertsUsd, requestsUsd, stateTransitionsUsd, totalUsd } = estimate;
  return { extractorUsd, expertsUsd, requestsUsd, stateTransitionsUsd, totalUsd };
}

/** One billed scan's numbers; undefined when the item is not billable (not COMPLETED, no usage record). */
export function billedScan(item: ScanItem, rates: ScanRates): BilledScan | undefined {
  if (item.status !== 'COMPLETED' || !item.usage) return undefined;
  const extractorSeconds = item.usage.extractorSeconds;
  const expertMsByExpert = item.summary?.durations.expertMs;
  const repriced = expertMsByExpert ? estimateScanCost({ extractorSeconds, expertMs: expertMsByExpert }, rates) : null;
  const estimate = repriced ?? item.usage.estimatedCost ?? null;
  return {
    scanId: item.scanId,
    studyId: item.usage.studyId,
    receivedAt: item.receivedAt ?? item.usage.createdAt,
    extractorSeconds,
    expertMs: item.usage.expertMs,
    cost: estimate ? costOf(estimate) : null,
  };
}

/** The usage summary of a site's scan items of one month (pure: the caller lists the items). */
export function summarizeUsage(
  site: { readonly id: string; readonly displayName: string },
  month: string,
  items: readonly ScanItem[],
  rates: ScanRates,
): UsageSummary {
  const scans: BilledScan[] = [];
  let failed = 0;
  let running = 0;
  for (const item of items) {
    // The index is the site's; a stray item of another site (never expected) is not this site's bill.
    if (item.siteId !== site.id) continue;
    const billed = billedScan(item, rates);
    if (billed) scans.push(billed);
    else if (item.status === 'FAILED') failed++;
    else running++;
  }
  scans.sort((a, b) => a.receivedAt.localeCompare(b.receivedAt) || a.scanId.localeCompare(b.scanId));
  let cost = ZERO;
  for (const s of scans) {
    if (!s.cost) continue;
    cost = {
      extractorUsd: round(cost.extractorUsd + s.cost.extractorUsd),
      expertsUsd: round(cost.expertsUsd + s.cost.expertsUsd),
      requestsUsd: round(cost.requestsUsd + s.cost.requestsUsd),
      stateTransitionsUsd: round(cost.stateTransitionsUsd + s.cost.stateTransitionsUsd),
      totalUsd: round(cost.totalUsd + s.cost.totalUsd),
    };
  }
  return {
    siteId: site.id,
    displayName: site.displayName,
    month,
    currency: 'USD',
    scansBilled: scans.length,
    scansNotBilled: { failed, running },
    extractorSeconds: round(scans.reduce((sum, s) => sum + (s.extractorSeconds ?? 0), 0)),
    expertMs: round(scans.reduce((sum, s) => sum + s.expertMs, 0)),
    cost,
    unpricedScans: scans.filter((s) => s.cost === null).length,
    basis: rates.basis,
    scans,
  };
}

/** A site's usage in one month, read through the bySite index (one Query of one site's partition). */
export async function siteUsage(
  doc: DynamoDBDocumentClient,
  table: string,
  site: { readonly id: string; readonly displayName: string },
  month: string,
  rates: ScanRates,
): Promise<UsageSummary> {
  const items = await listSiteScans(doc, table, site.id, { from: month, to: nextMonth(month) });
  return summarizeUsage(site, month, items, rates);
}

const CSV_HEADER = [
  'site',
  'month',
  'scan_id',
  'study_id',
  'received_at',
  'extractor_seconds',
  'expert_ms',
  'extractor_usd',
  'experts_usd',
  'requests_usd',
  'state_transitions_usd',
  'total_usd',
];

/** A CSV field: quoted when it holds a comma, quote or line break (RFC 4180). */
function csvField(value: string | number | null): string {
  const s = value === null ? '' : String(value);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The invoice CSV: one row per billed scan, then a TOTAL row; ids only (no object keys or file names). */
export function invoiceCsv(summary: UsageSummary): string {
  const rows: (string | number | null)[][] = [CSV_HEADER];
  for (const s of summary.scans) {
    rows.push([
      summary.siteId,
      summary.month,
      s.scanId,
      s.studyId,
      s.receivedAt,
      s.extractorSeconds,
      s.expertMs,
      s.cost?.extractorUsd ?? null,
      s.cost?.expertsUsd ?? null,
      s.cost?.requestsUsd ?? null,
      s.cost?.stateTransitionsUsd ?? null,
      s.cost?.totalUsd ?? null,
    ]);
  }
  const c = summary.cost;
  rows.push([
    summary.siteId,
    summary.month,
    'TOTAL',
    `${summary.scansBilled} scans billed`,
    '',
    summary.extractorSeconds,
    summary.expertMs,
    c.extractorUsd,
    c.expertsUsd,
    c.requestsUsd,
    c.stateTransitionsUsd,
    c.totalUsd,
  ]);
  return rows.map((r) => r.map(csvField).join(',')).join('\n') + '\n';
}

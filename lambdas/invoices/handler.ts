/**
 * The monthly invoice job (EventBridge Scheduler, on the 1st of each month): for every
 * registered site, last month's usage (core/usage.ts, the numbers `GET /usage` and
 * `sonomark usage` give) as `invoices/{siteId}/{YYYY-MM}.csv`. Re-running it rewrites the
 * same keys with the same content, so a retried or repeated run is harmless.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { z } from 'zod';
import { ENV, FUNCTIONS } from '../../core/contract';
import { jsonEnv, requireEnv } from '../../core/env';
import { invoiceKey } from '../../core/keys';
import { SiteRegistryEnv } from '../../core/site-api';
import { invoiceCsv, Month, previousMonth, siteUsage } from '../../core/usage';
import { sonomarkHandler } from '../shared/middleware';
import { documentClient, powertools, s3Client } from '../shared/runtime';

const tools = powertools(FUNCTIONS.invoices);
const { logger, tracer } = tools;

const s3 = s3Client(tracer);
const doc = documentClient(tracer);
const table = requireEnv(ENV.resultsTable);
const bucket = requireEnv(ENV.invoicesBucket);
const sites = jsonEnv(ENV.siteRegistry, SiteRegistryEnv);

/** The schedule sends `{}`; an operator may send `{"month": "2026-01"}` to (re)write one month. */
const InvoiceJobInput = z.object({ month: Month.optional() }).passthrough();

export const handler = sonomarkHandler(
  async (input) => {
    const month = InvoiceJobInput.parse(input ?? {}).month ?? previousMonth(new Date());
    const written: { siteId: string; key: string; scansBilled: number; totalUsd: number }[] = [];
    for (const [siteId, site] of Object.entries(sites)) {
      const summary = await siteUsage(doc, table, { id: siteId, displayName: site.displayName }, month, site.rates);
      const key = invoiceKey(siteId, month);
      await s3.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: invoiceCsv(summary), ContentType: 'text/csv' }),
      );
      written.push({ siteId, key, scansBilled: summary.scansBilled, totalUsd: summary.cost.totalUsd });
      logger.info('invoice written', { siteId, month, scansBilled: summary.scansBilled });
    }
    return { month, invoices: written };
  },
  tools,
  { message: 'invoice job failed' },
);

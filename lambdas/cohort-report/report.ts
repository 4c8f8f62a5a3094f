/**
 * CohortReport of the cohort workflow, after the Distributed Map: every batch's outcomes
 * (written by ScoreBatch under the run's batches/) gathered into the cohort report that
 * `sonomark cohort run` writes locally (core/cohort.ts): cohort.csv, summary.json and the HTML
 * page `sonomark report COHORT_DIR` renders (core/report, the one renderer), next to the map's
 * ResultWriter output under cohorts/{site}/{runId}/.
 *
 * The page has no frame images: they would need the uploads decoded again (ffmpeg and the
 * extractor's decoder, which this function does not carry, and read access to every upload),
 * so it says so, and shows each biomarker's peak by its time and probability from the features.
 */
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import {
  COHORT_CSV,
  COHORT_REPORT_HTML,
  COHORT_SUMMARY,
  cohortCsv,
  summarizeCohort,
  type CohortItemOutcome,
} from '../../core/cohort';
import { BATCH_OUTCOMES_SUFFIX, CohortRunId, cohortRunPrefix, COHORTS_PREFIX } from '../../core/cohort-run';
import { cohortReportEntries, cohortReportTitle, renderStoredReport } from '../../core/report';
import type { Manifest } from '../../core/schemas';
import { SegmentId } from '../../core/schemas';
import { parsePayload } from '../../core/zod-parse';
import { extractorsLabel } from '../../core/manifest';

export interface ReportDeps {
  readonly s3: S3Client;
  /** The results table: the page reads each scan's item and expert results, as `sonomark report` does. */
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  readonly artifactsBucket: string;
  readonly manifest: () => Promise<Manifest>;
  readonly now?: () => Date;
}

export const ReportInput = z.object({
  site: SegmentId,
  runPrefix: z.string().regex(/^cohorts\/.+\/$/),
  /** The execution's start time: the report's `seconds`. */
  startedAt: z.string().datetime(),
  /** What the run read (the manifest's key or the prefix), for the summary's `source`. */
  source: z.string(),
});

/** What the cloud page says instead of frame images. */
export const CLOUD_THUMBNAILS_OMITTED =
  'The cloud cohort report reads the stored features, not the clips: decoding the uploads again for ' +
  "the frames at each peak would need the extractor's decoder and read access to every upload, which " +
  'the report function does not have. "sonomark report" on a local copy of the scans shows the frames.';

/** Scans the page loads at once: each is a GetItem, a Query and a GetObject. */
const PAGE_LOAD_CONCURRENCY = 8;

async function listOutcomeKeys(deps: ReportDeps, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const out = await deps.s3.send(
      new ListObjectsV2Command({ Bucket: deps.artifactsBucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of out.Contents ?? []) if (o.Key?.endsWith(BATCH_OUTCOMES_SUFFIX)) keys.push(o.Key);
    token = out.IsTruncated ? out.NextContinuationToken : undefined;
  } while (token);
  return keys.sort();
}

export async function writeCohortReport(
  input: unknown,
  deps: ReportDeps,
): Promise<{ csvKey: string; summaryKey: string; reportKey: string | null; counts: Record<string, number> }> {
  const { site, runPrefix, startedAt, source } = parsePayload(ReportInput, input, 'cohort report input');
  const runId = CohortRunId.safeParse(runPrefix.slice(`${COHORTS_PREFIX}${site}/`.length, -1));
  // The run id is the execution name; a name outside the grammar still gets its files, and a page the API cannot link.
  const runIdOk = runId.success && cohortRunPrefix(site, runId.data) === runPrefix;
  const outcomes: CohortItemOutcome[] = [];
  for (const key of await listOutcomeKeys(deps, `${runPrefix}batches/`)) {
    const out = await deps.s3.send(new GetObjectCommand({ Bucket: deps.artifactsBucket, Key: key }));
    outcomes.push(...(JSON.parse((await out.Body?.transformToString('utf8')) ?? '[]') as CohortItemOutcome[]));
  }
  outcomes.sort((a, b) => a.item.localeCompare(b.item));
  const manifest = await deps.manifest();
  const experts = manifest.experts.map((e) => e.name);
  const now = deps.now?.() ?? new Date();
  const summary = summarizeCohort(outcomes, {
    source,
    site,
    ...(runIdOk ? { runId: runId.data } : {}),
    models: {
      extractor: extractorsLabel(manifest),
      experts: manifest.experts.map((e) => `${e.name}@${e.version}`),
    },
    experts,
    seconds: Math.max(0, (now.getTime() - Date.parse(startedAt)) / 1000),
    now,
  });
  const csvKey = `${runPrefix}${COHORT_CSV}`;
  const summaryKey = `${runPrefix}${COHORT_SUMMARY}`;
  await deps.s3.send(
    new PutObjectCommand({
      Bucket: deps.artifactsBucket,
      Key: csvKey,
      Body: cohortCsv(outcomes, experts),
      ContentType: 'text/csv',
    }),
  );
  await deps.s3.send(
    new PutObjectCommand({
      Bucket: deps.artifactsBucket,
      Key: summaryKey,
      Body: JSON.stringify(summary, null, 2),
      ContentType: 'application/json',
    }),
  );
  // The same page `sonomark report COHORT_DIR` renders from the same summary and stores.
  const entries = await cohortReportEntries(deps, summary, site);
  // A run with no item at all has no page (the renderer needs a scan); summary.json says 0 items.
  const reportKey = entries.length > 0 ? `${runPrefix}${COHORT_REPORT_HTML}` : null;
  if (reportKey) {
    const { html } = await renderStoredReport(deps, entries, {
      title: cohortReportTitle(entries.length),
      source: `Cohort run ${runIdOk ? runId.data : runPrefix} of site ${site}, over ${source}: the scans as the cohort workflow left them.`,
      manifest,
      thumbnails: { omitted: CLOUD_THUMBNAILS_OMITTED },
      now,
      concurrency: PAGE_LOAD_CONCURRENCY,
    });
    await deps.s3.send(
      new PutObjectCommand({
        Bucket: deps.artifactsBucket,
        Key: reportKey,
        Body: html,
        ContentType: 'text/html; charset=utf-8',
      }),
    );
  }
  return { csvKey, summaryKey, reportKey, counts: summary.counts };
}

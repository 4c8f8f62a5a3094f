/**
 * The multi-site HTTP API, as one pure function of (request, caller's site, deps): the
 * Lambda behind API Gateway (lambdas/api/) and `sonomark serve` (local/serve.ts) both call
 * handleSiteApi, so the cloud and local mode answer alike.
 *
 * Routes (every one scoped to the caller's site):
 *   POST /uploads                  {studyId, fileName, size?, contentType?} → presigned POST
 *   GET  /scans/{scanId}           one scan with its expert results
 *   GET  /studies/{studyId}/scans  a study's scans
 *   GET  /scans?from=&to=&limit=   the site's scans by time (bySite index)
 *   GET  /usage?month=YYYY-MM      the month's usage summary (core/usage.ts)
 *   GET  /cohorts/{runId}/report   a short-lived link to a cohort run's HTML page (core/report)
 *
 * Isolation: the site comes only from the authenticated identity (`caller`), never from
 * the path, query or body. Every read is a key lookup in the caller's own partition
 * (`SITE#{site}#SCAN#{id}`) or a Query of the caller's index partition (`SITE#{site}`), so
 * another site's scan id is simply not found: 404, exactly as for an id that exists nowhere.
 * Path segments are validated against the id grammars (no `/`, `..`, `%`), so an encoded
 * slash or a dot-dot cannot reach another key.
 */
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { CohortRunId, cohortReportKey } from './cohort-run';
import { ScanRates } from './pricing';
import { DEFAULT_MODALITY } from './modality';
import { getScan, listExpertResults, listSiteScans, type ScanItem } from './results-store';
import { ScanId, SegmentId } from './schemas';
import { createUploadLink, UPLOAD_CONTENT_TYPES, uploadEnding, UploadFileName } from './upload-policy';
import { Month, siteUsage } from './usage';
import { formatZodIssues } from './zod-parse';

export interface ApiRequest {
  readonly method: string;
  /** The request path, e.g. `/scans/abc…`; a trailing slash is ignored. */
  readonly path: string;
  readonly query: Readonly<Record<string, string | undefined>>;
  readonly body?: string | null;
}

export interface ApiResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** One registered site as the API sees it: its name and the rates its usage is priced at. */
export interface ApiSite {
  readonly displayName: string;
  readonly rates: ScanRates;
}

/** The site registry as the API and the invoice job receive it (env SITE_REGISTRY): by site id. */
export const SiteRegistryEnv = z.record(
  SegmentId,
  z.object({ displayName: z.string().min(1), rates: ScanRates }).strict(),
);
export type SiteRegistryEnv = z.infer<typeof SiteRegistryEnv>;

/** The per-site role ids (env SITE_ROLE_IDS): role unique id → site id. */
export const SiteRoleIdsEnv = z.record(
  z.string().regex(/^AROA[A-Z0-9]+$/, 'must be a role unique id (AROA…)'),
  SegmentId,
);

export interface SiteApiDeps {
  readonly s3: S3Client;
  readonly doc: DynamoDBDocumentClient;
  readonly table: string;
  readonly uploadsBucket: string;
  /** Holds cohort runs' pages (`cohorts/{site}/{runId}/report.html`); without it the route answers 404. */
  readonly artifactsBucket?: string;
  /** The deployment's upload limit (MAX_UPLOAD_BYTES). */
  readonly maxUploadBytes: number;
  /** The site registry, by site id: a caller whose site is not here is refused. */
  readonly sites: Readonly<Record<string, ApiSite>>;
  readonly now?: () => Date;
}

/** Who is calling, as established by the authorizer (IAM role, local token); undefined when unknown. */
export interface ApiCaller {
  readonly siteId: string;
}

const MAX_BODY_CHARS = 16 * 1024;
/**
 * How long a cohort page link is valid: a few minutes, enough to open it. A link signed with a
 * Lambda's session credentials also ends when that session does, whichever comes first.
 */
export const REPORT_LINK_SECONDS = 300;
const DEFAULT_LIST_LIMIT = 100;
const MAX_LIST_LIMIT = 1000;

export const UploadRequest = z
  .object({
    studyId: SegmentId,
    fileName: UploadFileName,
    /** The file's size in bytes, when known: refused here if over the limit (S3 enforces it anyway). */
    size: z.number().int().positive().optional(),
    /** Optional; when given it must be the type the file's ending takes (UPLOAD_CONTENT_TYPES). */
    contentType: z.string().max(100).optional(),
  })
  .strict();
export type UploadRequest = z.infer<typeof UploadRequest>;

/** A date (`2026-01-31`) or an ISO timestamp (`2026-01-31T12:00:00Z`), compared with receivedAt. */
const TimeBound = z.union([z.iso.date(), z.iso.datetime()], {
  error: 'must be a date (YYYY-MM-DD) or an ISO timestamp (YYYY-MM-DDThh:mm:ssZ)',
});

export const ListScansQuery = z
  .object({
    from: TimeBound.optional(),
    to: TimeBound.optional(),
    limit: z.coerce.number().int().min(1).max(MAX_LIST_LIMIT).optional(),
  })
  .strict()
  .refine((q) => q.from === undefined || q.to === undefined || q.from < q.to, {
    message: '"from" must be before "to"',
    path: ['from'],
  });

export const StudyScansQuery = z
  .object({ limit: z.coerce.number().int().min(1).max(MAX_LIST_LIMIT).optional() })
  .strict();
export const UsageQuery = z.object({ month: Month }).strict();

class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const notFound = (what: string): ApiError => new ApiError(404, 'NOT_FOUND', `No ${what} with that id for your site.`);

function json(statusCode: number, body: unknown): ApiResponse {
  return {
    statusCode,
    headers: {
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    },
    body: JSON.stringify(body),
  };
}

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ApiError(400, 'BAD_REQUEST', `Invalid ${what}: ${formatZodIssues(parsed.error)}.`);
  return parsed.data;
}

/** A path segment that must be an id: one that is not is a 400 naming what is accepted (existence is never told). */
function pathId<T>(schema: z.ZodType<T>, raw: string, what: string): T {
  return parse(schema, raw, what);
}

/** Query parameters without the undefined ones (API Gateway and node:http differ there). */
function queryOf(req: ApiRequest): Record<string, string> {
  return Object.fromEntries(Object.entries(req.query).filter((e): e is [string, string] => e[1] !== undefined));
}

function fileNameOf(scan: ScanItem): string | undefined {
  if (!scan.key || !scan.siteId || !scan.studyId) return undefined;
  const prefix = `uploads/${scan.siteId}/${scan.studyId}/`;
  return scan.key.startsWith(prefix) ? scan.key.slice(prefix.length) : undefined;
}

/** A scan as the API shows it: the site's own data, ids and outcomes; no bucket names or internal keys. */
export function scanView(scan: ScanItem) {
  return {
    scanId: scan.scanId,
    studyId: scan.studyId ?? null,
    fileName: fileNameOf(scan) ?? null,
    status: scan.status,
    receivedAt: scan.receivedAt ?? null,
    updatedAt: scan.updatedAt,
    container: scan.container ?? null,
    // What Validate decided. A completed scan, or one given a features key, without a modality was
    // stored before modalities existed (ultrasound); any other was refused before one was decided (null).
    modality: scan.modality ?? (scan.status === 'COMPLETED' || scan.featuresKey ? DEFAULT_MODALITY : null),
    size: scan.size ?? null,
    extractor: scan.extractor ?? null,
    experts: scan.summary?.experts ?? {},
    error: scan.error ?? null,
    usage: scan.usage
      ? { billed: true, extractorSeconds: scan.usage.extractorSeconds, expertMs: scan.usage.expertMs }
      : { billed: false },
  };
}

async function routeRequest(req: ApiRequest, siteId: string, site: ApiSite, deps: SiteApiDeps): Promise<ApiResponse> {
  const method = req.method.toUpperCase();
  const path = req.path.length > 1 ? req.path.replace(/\/+$/, '') : req.path;
  const parts = path.split('/').slice(1);

  if (path === '/uploads') {
    if (method !== 'POST') throw new ApiError(405, 'METHOD_NOT_ALLOWED', 'Use POST /uploads.');
    return createUpload(req, siteId, deps);
  }
  if (method !== 'GET') throw new ApiError(405, 'METHOD_NOT_ALLOWED', `Use GET ${path}.`);
  if (path === '/scans') {
    const q = parse(ListScansQuery, queryOf(req), 'query');
    const limit = q.limit ?? DEFAULT_LIST_LIMIT;
    const items = await listSiteScans(deps.doc, deps.table, siteId, { from: q.from, to: q.to, limit: limit + 1 });
    return json(200, listBody(items, limit));
  }
  if (parts.length === 2 && parts[0] === 'scans') {
    if (Object.keys(queryOf(req)).length > 0)
      throw new ApiError(400, 'BAD_REQUEST', 'GET /scans/{scanId} takes no query.');
    const scanId = pathId(ScanId, parts[1]!, 'scan id');
    const scan = await getScan(deps.doc, deps.table, siteId, scanId);
    // The item is read from the caller's partition; the site check is belt and braces.
    if (!scan || scan.siteId !== siteId) throw notFound('scan');
    const results = await listExpertResults(deps.doc, deps.table, siteId, scanId);
    return json(200, {
      ...scanView(scan),
      results: results.map((r) => ({
        expert: { name: r.expert.name, version: r.expert.version },
        output: r.output,
        inferMs: r.inferMs,
        createdAt: r.createdAt,
      })),
    });
  }
  if (parts.length === 3 && parts[0] === 'studies' && parts[2] === 'scans') {
    const studyId = pathId(SegmentId, parts[1]!, 'study id');
    const q = parse(StudyScansQuery, queryOf(req), 'query');
    const limit = q.limit ?? DEFAULT_LIST_LIMIT;
    const items = await listSiteScans(deps.doc, deps.table, siteId, { studyId, limit: limit + 1 });
    return json(200, { studyId, ...listBody(items, limit) });
  }
  if (path === '/usage') {
    const q = parse(UsageQuery, queryOf(req), 'query');
    const summary = await siteUsage(
      deps.doc,
      deps.table,
      { id: siteId, displayName: site.displayName },
      q.month,
      site.rates,
    );
    return json(200, summary);
  }
  if (parts.length === 3 && parts[0] === 'cohorts' && parts[2] === 'report') {
    if (Object.keys(queryOf(req)).length > 0)
      throw new ApiError(400, 'BAD_REQUEST', 'GET /cohorts/{runId}/report takes no query.');
    const runId = pathId(CohortRunId, parts[1]!, 'cohort run id');
    return json(200, await cohortReportLink(siteId, runId, deps));
  }
  // The path is not echoed: it may hold a file or study name.
  throw new ApiError(
    404,
    'NOT_FOUND',
    'No such route: POST /uploads, GET /scans, /scans/{scanId}, /studies/{studyId}/scans, /usage and /cohorts/{runId}/report are served.',
  );
}

/**
 * A presigned GET of the caller's own cohort page: the key is built from the caller's site, so
 * another site's run id names a key under the caller's prefix, which does not exist. Existence is
 * checked first (a link to nothing is no answer), and a run without a page, another site's run and
 * an id that never ran all get the same 404. Without s3:ListBucket S3 answers a missing key 403.
 */
async function cohortReportLink(
  siteId: string,
  runId: string,
  deps: SiteApiDeps,
): Promise<{ url: string; expiresAt: string; expiresInSeconds: number }> {
  const notFoundRun = new ApiError(404, 'NOT_FOUND', 'No cohort report with that run id for your site.');
  if (!deps.artifactsBucket) throw notFoundRun;
  const target = { Bucket: deps.artifactsBucket, Key: cohortReportKey(siteId, runId) };
  try {
    await deps.s3.send(new HeadObjectCommand(target));
  } catch (err) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 404 || status === 403) throw notFoundRun;
    throw err;
  }
  const now = deps.now?.() ?? new Date();
  const url = await getSignedUrl(deps.s3, new GetObjectCommand(target), {
    expiresIn: REPORT_LINK_SECONDS,
    signingDate: now,
  });
  return {
    url,
    expiresAt: new Date(now.getTime() + REPORT_LINK_SECONDS * 1000).toISOString(),
    expiresInSeconds: REPORT_LINK_SECONDS,
  };
}

function listBody(items: readonly ScanItem[], limit: number) {
  const shown = items.slice(0, limit);
  return { scans: shown.map(scanView), count: shown.length, truncated: items.length > limit };
}

async function createUpload(req: ApiRequest, siteId: string, deps: SiteApiDeps): Promise<ApiResponse> {
  const raw = req.body ?? '';
  if (raw.length > MAX_BODY_CHARS) throw new ApiError(400, 'BAD_REQUEST', 'The request body is over 16 KiB.');
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    throw new ApiError(400, 'BAD_REQUEST', 'The request body must be JSON: {"studyId": "...", "fileName": "..."}.');
  }
  const upload = parse(UploadRequest, body, 'upload request');
  const ending = uploadEnding(upload.fileName) as string;
  const expected = UPLOAD_CONTENT_TYPES[ending] as string;
  if (upload.contentType !== undefined && upload.contentType !== expected) {
    throw new ApiError(400, 'BAD_REQUEST', `A ${ending} file is uploaded as ${expected}, not ${upload.contentType}.`);
  }
  const link = await createUploadLink(deps.s3, {
    siteId,
    studyId: upload.studyId,
    fileName: upload.fileName,
    bucket: deps.uploadsBucket,
    maxUploadBytes: deps.maxUploadBytes,
    now: deps.now?.(),
  });
  if (upload.size !== undefined && upload.size > link.maxBytes) {
    throw new ApiError(400, 'BAD_REQUEST', `The file is ${upload.size} bytes, over the ${link.maxBytes}-byte limit.`);
  }
  return json(201, { ...link, method: 'POST' });
}

/**
 * Answers one API request for `caller`'s site. Never throws: failures are JSON problems
 * (`{error: {code, message}}`); an unexpected error is a 500 whose message says nothing of
 * the request (the caller's logs have the details).
 */
export async function handleSiteApi(
  req: ApiRequest,
  caller: ApiCaller | undefined,
  deps: SiteApiDeps,
): Promise<ApiResponse> {
  try {
    if (!caller) throw new ApiError(403, 'FORBIDDEN', 'The caller is not a registered site.');
    const site = Object.hasOwn(deps.sites, caller.siteId) ? deps.sites[caller.siteId] : undefined;
    if (!site) throw new ApiError(403, 'FORBIDDEN', 'The caller is not a registered site.');
    return await routeRequest(req, caller.siteId, site, deps);
  } catch (err) {
    if (err instanceof ApiError) return json(err.statusCode, { error: { code: err.code, message: err.message } });
    throw err;
  }
}

// ---------------------------------------------------------------------------
// The caller's site from an IAM identity (API Gateway with AWS_IAM authorization)
// ---------------------------------------------------------------------------

/** requestContext.identity of an AWS_IAM-authorized REST API request: the fields used here. */
export interface IamIdentity {
  /** For an assumed role: `AROA…:sessionName` (the role's unique id, then the session). */
  readonly caller?: string | null;
  readonly user?: string | null;
}

/**
 * The site of the role that signed the request. `roleIds` maps each site role's unique id
 * (`AROA…`, CloudFormation's RoleId) to its site: a unique id names one role for its whole
 * life, so a role deleted and re-created under the same name maps to nothing until redeployed.
 */
export function siteFromIamIdentity(
  identity: IamIdentity | undefined,
  roleIds: Readonly<Record<string, string>>,
): ApiCaller | undefined {
  const principal = identity?.caller ?? identity?.user;
  if (!principal) return undefined;
  const roleId = principal.split(':')[0] ?? '';
  return Object.hasOwn(roleIds, roleId) ? { siteId: roleIds[roleId]! } : undefined;
}

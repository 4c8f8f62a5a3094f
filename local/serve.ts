/**
 * `sonomark serve`: the multi-site API (core/site-api.ts, the handler the cloud's Lambda
 * runs) over HTTP on 127.0.0.1, against local mode's s3rver and dynalite.
 *
 * - Identity: the cloud maps the signing IAM role to a site; here each site has a bearer
 *   token, kept in `{dataDir}/api-tokens.json` (mode 0600, created on first start, printed
 *   at start). `Authorization: Bearer <token>` is the caller's site; nothing else is.
 * - Uploads: POST /uploads returns a presigned POST for s3rver; s3rver's Object Created
 *   notification starts the local workflow on the object, as EventBridge does in the cloud.
 *   s3rver stores what is posted without checking the POST policy (key, type, size): S3
 *   enforces it in the cloud; the handler's tests check the policy the link carries.
 * - Cohort pages: GET /cohorts/{runId}/report presigns a GET against s3rver for the page
 *   `sonomark cohort run` put under cohorts/{site}/{runId}/ of the local artifacts bucket.
 * - Usage: priced at local mode's rates (localScanRates: what the default deployment would
 *   charge), the same `sonomark usage` uses, so the two give the same numbers.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { z } from 'zod';
import { handleSiteApi, type ApiCaller, type ApiSite, type ApiRequest } from '../core/site-api';
import { SegmentId } from '../core/schemas';
import { DEFAULT_MAX_UPLOAD_BYTES } from '../core/limits';
import { localScanRates } from './handlers';
import { LOCAL_ARTIFACTS_BUCKET, LOCAL_TABLE, LOCAL_UPLOADS_BUCKET } from './names';
import { LocalWorkflow, type AnalyzeResult } from './workflow';

export const TOKENS_FILE = 'api-tokens.json';
const MAX_BODY_BYTES = 16 * 1024 + 1;

const TokensFile = z.record(SegmentId, z.string().regex(/^[0-9a-f]{64}$/));

export interface ServeOptions {
  readonly dataDir: string;
  /** @default 0 (an ephemeral port) */
  readonly port?: number;
  /** The registered sites; each gets a token. @default ['local'] */
  readonly sites?: readonly string[];
  readonly modelsDir?: string;
  readonly cacheDir?: string;
  /** Told of each finished analysis (ids and status only). */
  readonly onAnalyzed?: (result: AnalyzeResult) => void;
}

export interface LocalApiServer {
  readonly url: string;
  readonly port: number;
  /** Bearer token per site id. */
  readonly tokens: Readonly<Record<string, string>>;
  readonly tokensFile: string;
  readonly workflow: LocalWorkflow;
  /** Resolves when every analysis started so far has finished. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

/** The data dir's tokens, with one made for each site that has none; written back 0600. */
export function siteTokens(dataDir: string, sites: readonly string[]): Record<string, string> {
  const file = path.join(dataDir, TOKENS_FILE);
  const tokens: Record<string, string> = existsSync(file)
    ? TokensFile.parse(JSON.parse(readFileSync(file, 'utf8')))
    : {};
  let changed = false;
  for (const site of sites) {
    if (tokens[site] === undefined) {
      tokens[site] = randomBytes(32).toString('hex');
      changed = true;
    }
  }
  if (changed || !existsSync(file)) writeFileSync(file, JSON.stringify(tokens, null, 2) + '\n', { mode: 0o600 });
  return tokens;
}

/** The site whose token the request bears; undefined for none or an unknown one (constant-time compare). */
export function callerFromToken(
  authorization: string | undefined,
  tokens: Readonly<Record<string, string>>,
): ApiCaller | undefined {
  const match = /^Bearer ([0-9a-f]{64})$/.exec(authorization ?? '');
  if (!match) return undefined;
  const given = Buffer.from(match[1]!, 'utf8');
  let found: string | undefined;
  for (const [siteId, token] of Object.entries(tokens)) {
    if (timingSafeEqual(given, Buffer.from(token, 'utf8'))) found = siteId;
  }
  return found === undefined ? undefined : { siteId: found };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    // Over the handler's limit: stop reading; the handler answers 400 for the truncated body.
    if (size > MAX_BODY_BYTES) break;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8').slice(0, MAX_BODY_BYTES);
}

/** Starts the local workflow and the API on 127.0.0.1. */
export async function startLocalApi(opts: ServeOptions): Promise<LocalApiServer> {
  const sites = opts.sites && opts.sites.length > 0 ? [...opts.sites] : ['local'];
  for (const site of sites) SegmentId.parse(site);
  const workflow = await LocalWorkflow.start({
    dataDir: opts.dataDir,
    modelsDir: opts.modelsDir,
    cacheDir: opts.cacheDir,
  });
  const tokens = siteTokens(opts.dataDir, sites);
  const rates = localScanRates(workflow.loaded);
  const registry: Record<string, ApiSite> = Object.fromEntries(sites.map((id) => [id, { displayName: id, rates }]));
  const deps = {
    s3: workflow.services.s3,
    doc: workflow.services.doc,
    table: LOCAL_TABLE,
    uploadsBucket: LOCAL_UPLOADS_BUCKET,
    // Cohort pages: `sonomark cohort run` puts them at the cloud's key (cohorts/{site}/{runId}/report.html).
    artifactsBucket: LOCAL_ARTIFACTS_BUCKET,
    maxUploadBytes: DEFAULT_MAX_UPLOAD_BYTES,
    sites: registry,
  };

  // One analysis at a time, in upload order: the extractor is CPU-bound here.
  let queue: Promise<void> = Promise.resolve();
  workflow.services.onObjectCreated((bucket, key) => {
    if (bucket !== LOCAL_UPLOADS_BUCKET) return;
    queue = queue.then(async () => {
      try {
        const result = await workflow.analyzeStored(key);
        opts.onAnalyzed?.(result);
      } catch {
        // The workflow records failures itself; a broken run must not stop the queue.
      }
    });
  });

  const server: Server = createServer((req, res) => {
    void (async () => {
      try {
        const raw = req.url ?? '/';
        const q = raw.indexOf('?');
        const query: Record<string, string> = {};
        if (q >= 0) for (const [k, v] of new URLSearchParams(raw.slice(q + 1))) query[k] = v;
        const request: ApiRequest = {
          method: req.method ?? 'GET',
          // As sent (no dot-segment normalisation, no decoding): the handler validates each segment.
          path: q >= 0 ? raw.slice(0, q) : raw,
          query,
          body: req.method === 'POST' ? await readBody(req) : undefined,
        };
        const out = await handleSiteApi(request, callerFromToken(req.headers.authorization, tokens), deps);
        res.writeHead(out.statusCode, out.headers).end(out.body);
      } catch {
        res
          .writeHead(500, { 'content-type': 'application/json' })
          .end(
            JSON.stringify({ error: { code: 'INTERNAL_ERROR', message: 'The request failed; see the server log.' } }),
          );
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    tokens,
    tokensFile: path.join(opts.dataDir, TOKENS_FILE),
    workflow,
    idle: () => queue,
    close() {
      // Idempotent: a second close waits for the first.
      closing ??= (async () => {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await queue;
        await workflow.close();
      })();
      return closing;
    },
  };
}

/**
 * The multi-site API Lambda (API Gateway REST API, AWS_IAM authorization, proxy integration):
 * a thin wrapper over handleSiteApi (core/site-api.ts). The caller's site is the site of the
 * IAM role that signed the request (requestContext.identity, which API Gateway fills in after
 * verifying the SigV4 signature), never anything in the request itself.
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { ENV, FUNCTIONS } from '../../core/contract';
import { jsonEnv, optionalEnv, requireEnv } from '../../core/env';
import { DEFAULT_MAX_UPLOAD_BYTES } from '../../core/limits';
import {
  handleSiteApi,
  siteFromIamIdentity,
  SiteRegistryEnv,
  SiteRoleIdsEnv,
  type SiteApiDeps,
} from '../../core/site-api';
import { sonomarkHandler } from '../shared/middleware';
import { documentClient, powertools, s3Client } from '../shared/runtime';

const tools = powertools(FUNCTIONS.api);
const { logger, metrics, tracer } = tools;

const deps: SiteApiDeps = {
  s3: s3Client(tracer),
  doc: documentClient(tracer),
  table: requireEnv(ENV.resultsTable),
  uploadsBucket: requireEnv(ENV.uploadsBucket),
  artifactsBucket: requireEnv(ENV.artifactsBucket),
  maxUploadBytes: Number(optionalEnv(ENV.maxUploadBytes, String(DEFAULT_MAX_UPLOAD_BYTES))),
  sites: jsonEnv(ENV.siteRegistry, SiteRegistryEnv),
};
const roleIds = jsonEnv(ENV.siteRoleIds, SiteRoleIdsEnv);

export const handler = sonomarkHandler(
  async (input): Promise<APIGatewayProxyResult> => {
    const event = input as APIGatewayProxyEvent;
    const caller = siteFromIamIdentity(event.requestContext?.identity, roleIds);
    const res = await handleSiteApi(
      {
        method: event.httpMethod,
        path: event.path,
        query: event.queryStringParameters ?? {},
        body: event.isBase64Encoded && event.body ? Buffer.from(event.body, 'base64').toString('utf8') : event.body,
      },
      caller,
      deps,
    );
    // Ids and outcomes only: the path can hold a study or file name.
    logger.info('api request', {
      siteId: caller?.siteId ?? null,
      resource: event.resource,
      method: event.httpMethod,
      status: res.statusCode,
    });
    metrics.addMetric(res.statusCode < 400 ? 'ApiRequests' : 'ApiRefusals', MetricUnit.Count, 1);
    return res;
  },
  tools,
  { message: 'api request failed', fields: (e) => ({ resource: (e as APIGatewayProxyEvent | null)?.resource }) },
);

/**
 * The API Lambda: the caller's site is the site of the signing IAM role (requestContext
 * identity), never a site named in the request.
 */
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { ENV } from '../../../core/contract';
import { scanPk } from '../../../core/keys';

const ddbMock = mockClient(DynamoDBDocumentClient);
const s3Mock = mockClient(S3Client);
const RATES = {
  basis: 'test prices',
  extractor: { usdPerSecond: 0.001, minimumSeconds: 0 },
  lambda: { usdPerGbSecond: 0.00001, usdPerRequest: 0.0000002 },
  expertMemoryMb: {},
  usdPerStateTransition: 0.000025,
};
const ROLE_A = 'AROAAAAAAAAAAAAAAAAAA';
const SCAN_ID = 'f'.repeat(32);

type Handler = (event: unknown) => Promise<{ statusCode: number; body: string }>;
let handler: Handler;

beforeAll(async () => {
  process.env[ENV.resultsTable] = 'results';
  process.env[ENV.uploadsBucket] = 'uploads';
  process.env[ENV.artifactsBucket] = 'artifacts';
  // The presigner signs with the function's credentials (the role's session in Lambda).
  process.env.AWS_ACCESS_KEY_ID = 'AKIDEXAMPLE';
  process.env.AWS_SECRET_ACCESS_KEY = 'secret';
  process.env[ENV.siteRegistry] = JSON.stringify({
    'site-a': { displayName: 'A', rates: RATES },
    'site-b': { displayName: 'B', rates: RATES },
  });
  process.env[ENV.siteRoleIds] = JSON.stringify({ [ROLE_A]: 'site-a' });
  process.env.AWS_REGION = 'us-east-1';
  handler = (await import('../../../lambdas/api/handler')).handler as unknown as Handler;
});

beforeEach(() => {
  ddbMock.reset();
  s3Mock.reset();
  ddbMock.on(GetCommand).resolves({});
  ddbMock.on(QueryCommand).resolves({ Items: [] });
});

const event = (caller: string | null, path: string, query: Record<string, string> | null = null) => ({
  httpMethod: 'GET',
  path,
  resource: path,
  queryStringParameters: query,
  body: null,
  isBase64Encoded: false,
  requestContext: { identity: { caller, user: caller } },
});

describe('api handler', () => {
  it("reads the signing role's site partition, whatever site the path or query names", async () => {
    // Act
    const res = await handler(event(`${ROLE_A}:session`, `/scans/${SCAN_ID}`));
    // Assess
    expect(res.statusCode).toBe(404);
    expect(ddbMock).toHaveReceivedCommandWith(GetCommand, { Key: { pk: scanPk('site-a', SCAN_ID), sk: 'SCAN' } });
  });

  it("links to the signing role's own cohort page in the artifacts bucket, whatever run the path names", async () => {
    // Prepare
    s3Mock.on(HeadObjectCommand).resolves({ ContentType: 'text/html' });
    // Act
    const res = await handler(event(`${ROLE_A}:session`, '/cohorts/run-1/report'));
    // Assess
    expect(res.statusCode).toBe(200);
    expect(s3Mock).toHaveReceivedCommandWith(HeadObjectCommand, {
      Bucket: 'artifacts',
      Key: 'cohorts/site-a/run-1/report.html',
    });
    const { url } = JSON.parse(res.body) as { url: string };
    expect(url).toContain('cohorts/site-a/run-1/report.html');
    expect(url).toContain('X-Amz-Expires=300');
  });

  it('answers a missing page (S3 403 without ListBucket) with the 404 of a run that does not exist', async () => {
    // Prepare
    s3Mock.on(HeadObjectCommand).rejects(Object.assign(new Error('Forbidden'), { $metadata: { httpStatusCode: 403 } }));
    // Act
    const res = await handler(event(`${ROLE_A}:session`, '/cohorts/run-9/report'));
    // Assess
    expect(res.statusCode).toBe(404);
  });

  it('refuses a role that is no site role, before reading anything', async () => {
    // Act
    const res = await handler(event('AROAOTHEROTHEROTHER:x', '/usage', { month: '2026-01' }));
    const anonymous = await handler(event(null, '/scans'));
    // Assess
    expect(res.statusCode).toBe(403);
    expect(anonymous.statusCode).toBe(403);
    expect(ddbMock.calls()).toHaveLength(0);
    expect(s3Mock.calls()).toHaveLength(0);
  });
});

/**
 * The SDK middleware that makes local mode enforce the role policies
 * (local/iam-guard.ts): command → IAM action and resource, and AWS's error on a deny.
 */
import { GetObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { DynamoDBClient, DynamoDBServiceException } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, QueryCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { accessRequests, authorize, enforceRolePolicy, redactedResource } from '../../../local/iam-guard';
import type { RolePolicy } from '../../../local/iam-policy';

const TABLE = 'arn:aws:dynamodb:local-1:000000000000:table/t';
const role: RolePolicy = {
  roleArn: 'arn:aws:iam::000000000000:role/ValidateRole',
  notes: [],
  statements: [
    { Effect: 'Allow', Action: ['s3:GetObject'], Resource: ['arn:aws:s3:::up/uploads/*'] },
    { Effect: 'Allow', Action: ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:UpdateItem'], Resource: [TABLE] },
  ],
};

describe('IAM requests behind SDK commands', () => {
  it('name the action and resource AWS authorizes', () => {
    expect(accessRequests('s3', 'GetObjectCommand', { Bucket: 'b', Key: 'k/1' })).toEqual([
      { action: 's3:GetObject', resource: 'arn:aws:s3:::b/k/1' },
    ]);
    expect(accessRequests('s3', 'GetObjectCommand', { Bucket: 'b', Key: 'k', VersionId: 'v' })).toEqual([
      { action: 's3:GetObjectVersion', resource: 'arn:aws:s3:::b/k' },
    ]);
    expect(accessRequests('s3', 'HeadObjectCommand', { Bucket: 'b', Key: 'k' })?.[0]?.action).toBe('s3:GetObject');
    expect(accessRequests('s3', 'ListObjectsV2Command', { Bucket: 'b', Prefix: 'x/' })).toEqual([
      { action: 's3:ListBucket', resource: 'arn:aws:s3:::b' },
    ]);
    expect(accessRequests('s3', 'CopyObjectCommand', { Bucket: 'd', Key: 'k2', CopySource: 's/a%20b' })).toEqual([
      { action: 's3:PutObject', resource: 'arn:aws:s3:::d/k2' },
      { action: 's3:GetObject', resource: 'arn:aws:s3:::s/a b' },
    ]);
    expect(accessRequests('dynamodb', 'QueryCommand', { TableName: 't', IndexName: 'bySite' })).toEqual([
      { action: 'dynamodb:Query', resource: `${TABLE}/index/bySite` },
    ]);
    expect(accessRequests('dynamodb', 'PutCommand', { TableName: 't' })).toEqual([
      { action: 'dynamodb:PutItem', resource: TABLE },
    ]);
    expect(
      accessRequests('dynamodb', 'TransactWriteItemsCommand', {
        TransactItems: [{ Put: { TableName: 't' } }, { ConditionCheck: { TableName: 't' } }],
      }),
    ).toEqual([
      { action: 'dynamodb:PutItem', resource: TABLE },
      { action: 'dynamodb:ConditionCheckItem', resource: TABLE },
    ]);
    expect(accessRequests('s3', 'PutBucketPolicyCommand', { Bucket: 'b' })).toBeUndefined();
    // An object write states its conditional headers (absent ones too): IAM's s3:if-none-match / s3:if-match.
    expect(accessRequests('s3', 'PutObjectCommand', { Bucket: 'b', Key: 'k', IfNoneMatch: '*' })).toEqual([
      {
        action: 's3:PutObject',
        resource: 'arn:aws:s3:::b/k',
        context: { 's3:if-none-match': '*', 's3:if-match': undefined },
      },
    ]);
    expect(accessRequests('s3', 'UploadPartCommand', { Bucket: 'b', Key: 'k' })?.[0]?.context).toEqual({
      's3:if-none-match': undefined,
      's3:if-match': undefined,
    });
  });
});

describe('authorize', () => {
  it("throws S3's AccessDenied (403) with IAM's message, the object key redacted past its prefix", () => {
    let err: unknown;
    try {
      authorize('s3', role, 'GetObjectCommand', { Bucket: 'art', Key: 'features/x/Jane-Doe.json' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(S3ServiceException);
    const e = err as S3ServiceException;
    expect(e.name).toBe('AccessDenied');
    expect(e.$metadata.httpStatusCode).toBe(403);
    expect(e.message).toBe(
      'User: arn:aws:sts::000000000000:assumed-role/ValidateRole/local is not authorized to perform: ' +
        's3:GetObject on resource: "arn:aws:s3:::art/features/…" because no identity-based or resource-based ' +
        'policy allows the s3:GetObject action',
    );
    expect(e.message).not.toContain('Jane');
    expect(redactedResource('arn:aws:s3:::b')).toBe('arn:aws:s3:::b');
  });

  it('denies a command whose action it cannot map, saying so', () => {
    expect(() => authorize('s3', role, 'PutBucketPolicyCommand', { Bucket: 'up' })).toThrow(
      /local mode does not know which IAM action PutBucketPolicyCommand needs/,
    );
  });
});

describe('the middleware on real clients', () => {
  // The clients point at a closed port: an allowed call reaches the short-circuit below, a denied one never leaves.
  const endpoint = 'http://127.0.0.1:9';
  const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
  const sent: string[] = [];
  function shortCircuit(stack: { add: (...a: never[]) => void }, label: string) {
    (stack.add as (m: unknown, o: unknown) => void)(
      () => async () => {
        sent.push(label);
        return { output: { $metadata: {} } };
      },
      { step: 'build', name: 'testShortCircuit' },
    );
  }

  it('lets allowed calls through and stops denied ones before they are sent, for S3 and the DocumentClient', async () => {
    const s3 = new S3Client({ endpoint, region: 'local-1', credentials, forcePathStyle: true });
    const dynamo = new DynamoDBClient({ endpoint, region: 'local-1', credentials });
    const doc = DynamoDBDocumentClient.from(dynamo);
    enforceRolePolicy(s3, 's3', role);
    enforceRolePolicy(dynamo, 'dynamodb', role);
    shortCircuit(s3.middlewareStack as never, 's3');
    shortCircuit(dynamo.middlewareStack as never, 'dynamodb');
    try {
      await s3.send(new GetObjectCommand({ Bucket: 'up', Key: 'uploads/a.mp4' }));
      await doc.send(
        new UpdateCommand({
          TableName: 't',
          Key: { pk: 'a' },
          UpdateExpression: 'SET x = :x',
          ExpressionAttributeValues: { ':x': 1 },
        }),
      );
      await doc.send(
        new QueryCommand({
          TableName: 't',
          KeyConditionExpression: 'pk = :p',
          ExpressionAttributeValues: { ':p': 'a' },
        }),
      );
      expect(sent).toEqual(['s3', 'dynamodb', 'dynamodb']);

      await expect(
        s3.send(new PutObjectCommand({ Bucket: 'up', Key: 'uploads/a.mp4', Body: 'x' })),
      ).rejects.toMatchObject({
        name: 'AccessDenied',
      });
      await expect(
        doc.send(
          new QueryCommand({
            TableName: 't',
            IndexName: 'bySite',
            KeyConditionExpression: 's = :s',
            ExpressionAttributeValues: { ':s': 'a' },
          }),
        ),
      ).rejects.toBeInstanceOf(DynamoDBServiceException);
      await expect(
        doc.send(new TransactWriteCommand({ TransactItems: [{ Put: { TableName: 't', Item: { pk: 'a' } } }] })),
      ).rejects.toMatchObject({
        name: 'AccessDeniedException',
        message: expect.stringContaining('dynamodb:PutItem'),
      });
      expect(sent).toHaveLength(3);
    } finally {
      s3.destroy();
      dynamo.destroy();
    }
  });
});

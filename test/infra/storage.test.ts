import { Match, type Template } from 'aws-cdk-lib/assertions';
import { TABLE_KEYS } from '../../core/keys';
import { synth } from './helpers';

describe('StorageStack', () => {
  let template: Template;

  beforeAll(() => {
    // Prepare / Act (cdk-nag on this same default configuration: nag.test.ts)
    template = synth({ nag: false }).storageTemplate;
  });

  test('one customer-managed KMS key with rotation, retained', () => {
    // Assess
    template.resourceCountIs('AWS::KMS::Key', 1);
    template.hasResource('AWS::KMS::Key', {
      Properties: { EnableKeyRotation: true },
      DeletionPolicy: 'Retain',
    });
  });

  test('data buckets: KMS, versioned, public access blocked, access-logged, retained', () => {
    // Prepare
    const buckets = template.findResources('AWS::S3::Bucket', {
      Properties: {
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } }],
        },
      },
    });
    // Assess
    expect(Object.keys(buckets)).toHaveLength(2);
    for (const b of Object.values(buckets) as any[]) {
      expect(b.DeletionPolicy).toBe('Retain');
      expect(b.Properties.VersioningConfiguration).toEqual({ Status: 'Enabled' });
      expect(b.Properties.PublicAccessBlockConfiguration).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      expect(b.Properties.LoggingConfiguration).toBeDefined();
    }
  });

  test('uploads bucket sends events to EventBridge natively', () => {
    // Assess
    template.hasResourceProperties('AWS::S3::Bucket', {
      NotificationConfiguration: { EventBridgeConfiguration: { EventBridgeEnabled: true } },
    });
    template.resourceCountIs('Custom::S3BucketNotifications', 0);
  });

  test('access-log bucket uses SSE-S3 (required for log delivery) and blocks public access', () => {
    // Assess
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      PublicAccessBlockConfiguration: Match.objectLike({ BlockPublicAcls: true, RestrictPublicBuckets: true }),
    });
  });

  test('every bucket policy denies non-TLS access', () => {
    // Prepare
    const policies = Object.values(template.findResources('AWS::S3::BucketPolicy')) as any[];
    // Assess
    expect(policies).toHaveLength(3);
    for (const p of policies) {
      expect(p.Properties.PolicyDocument.Statement).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      );
    }
  });

  test('results table: keys from TABLE_KEYS, on-demand, PITR, KMS, site index, TTL for pointers, retained', () => {
    // Assess
    template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      Properties: {
        KeySchema: [
          { AttributeName: TABLE_KEYS.partitionKey, KeyType: 'HASH' },
          { AttributeName: TABLE_KEYS.sortKey, KeyType: 'RANGE' },
        ],
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        TimeToLiveSpecification: { AttributeName: TABLE_KEYS.timeToLive, Enabled: true },
        SSESpecification: Match.objectLike({ SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: Match.anyValue() }),
        GlobalSecondaryIndexes: [
          Match.objectLike({
            IndexName: TABLE_KEYS.siteIndex,
            KeySchema: [
              { AttributeName: TABLE_KEYS.siteIndexPartitionKey, KeyType: 'HASH' },
              { AttributeName: TABLE_KEYS.siteIndexSortKey, KeyType: 'RANGE' },
            ],
          }),
        ],
      },
    });
  });
});

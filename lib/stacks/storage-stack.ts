/**
 * Stateful resources, in their own stack so the pipeline can be torn down and
 * redeployed without touching data: one customer-managed KMS key, the uploads and
 * artifacts buckets, their access-log bucket, and the results table. Everything
 * here is retained on stack deletion.
 */
import { Duration, RemovalPolicy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { TABLE_KEYS } from '../../core/keys';

export type StorageStackProps = StackProps;

export class StorageStack extends Stack {
  /** Encrypts every bucket (but the access logs), the table, log groups, queues and topics. */
  readonly key: kms.Key;
  readonly uploadsBucket: s3.Bucket;
  readonly artifactsBucket: s3.Bucket;
  readonly accessLogsBucket: s3.Bucket;
  readonly resultsTable: dynamodb.Table;

  constructor(scope: Construct, id: string, props?: StorageStackProps) {
    super(scope, id, props);

    this.key = new kms.Key(this, 'Key', {
      description: 'sonomark: clips, features, results, logs and messages',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // CloudWatch Logs encrypts the pipeline's log groups with this key; the service
    // principal is scoped to this account and region's log groups.
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal(`logs.${this.region}.amazonaws.com`)],
        actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
        resources: ['*'],
        conditions: {
          ArnLike: {
            'kms:EncryptionContext:aws:logs:arn': `arn:${this.partition}:logs:${this.region}:${this.account}:log-group:*`,
          },
        },
      }),
    );

    // CloudWatch alarms publish to the KMS-encrypted alarm topic, and EventBridge sends
    // undeliverable events to the KMS-encrypted dead-letter queue: both services need
    // the data key, for this account only.
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [
          new iam.ServicePrincipal('cloudwatch.amazonaws.com'),
          new iam.ServicePrincipal('events.amazonaws.com'),
        ],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
      }),
    );

    this.accessLogsBucket = new s3.Bucket(this, 'AccessLogs', {
      // S3 server access log delivery supports only SSE-S3 on the target bucket.
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
      lifecycleRules: [{ expiration: Duration.days(3653), noncurrentVersionExpiration: Duration.days(30) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(this.accessLogsBucket).acknowledge(
      {
        id: 'AwsSolutions-S1',
        reason: 'This is the server access log target; logging it to itself would loop.',
      },
      {
        id: 'HIPAA.Security-S3BucketLoggingEnabled',
        reason: 'This is the server access log target; logging it to itself would loop.',
      },
      {
        id: 'HIPAA.Security-S3DefaultEncryptionKMS',
        reason:
          'S3 server access log delivery only supports SSE-S3 (AES256) on the target bucket; it holds no clip data.',
      },
      {
        id: 'HIPAA.Security-S3BucketReplicationEnabled',
        reason:
          'Access logs are an audit aid, versioned and retained; cross-region replication is a per-deployment choice.',
      },
    );

    const dataBucket = (id: string, prefix: string) => {
      const bucket = new s3.Bucket(this, id, {
        encryption: s3.BucketEncryption.KMS,
        encryptionKey: this.key,
        bucketKeyEnabled: true,
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        enforceSSL: true,
        versioned: true,
        serverAccessLogsBucket: this.accessLogsBucket,
        serverAccessLogsPrefix: prefix,
        objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removalPolicy: RemovalPolicy.RETAIN,
        lifecycleRules: [{ abortIncompleteMultipartUploadAfter: Duration.days(7) }],
      });
      Validations.of(bucket).acknowledge({
        id: 'HIPAA.Security-S3BucketReplicationEnabled',
        reason:
          'Versioning + PITR-like object versions protect data in-region; cross-region replication of clinical data is a per-study data-residency decision, not a default.',
      });
      return bucket;
    };

    this.uploadsBucket = dataBucket('Uploads', 'uploads/');
    // EventBridge delivery, set natively on AWS::S3::Bucket. The L2 `eventBridgeEnabled: true`
    // would deploy CDK's BucketNotifications custom-resource Lambda (Python, outside the VPC,
    // managed policies) only to flip this same switch.
    (this.uploadsBucket.node.defaultChild as s3.CfnBucket).notificationConfiguration = {
      eventBridgeConfiguration: { eventBridgeEnabled: true },
    };
    this.artifactsBucket = dataBucket('Artifacts', 'artifacts/');

    this.resultsTable = new dynamodb.Table(this, 'Results', {
      partitionKey: { name: TABLE_KEYS.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: TABLE_KEYS.sortKey, type: dynamodb.AttributeType.STRING },
      // Execution pointers expire (core/keys.ts EXECUTION_POINTER_TTL_SECONDS); scans never carry the attribute.
      timeToLiveAttribute: TABLE_KEYS.timeToLive,
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.key,
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(this.resultsTable).acknowledge({
      id: 'HIPAA.Security-DynamoDBInBackupPlan',
      reason:
        "Point-in-time recovery (35 days) and deletion protection are on; long-term AWS Backup plans are set by the organization's backup policy, not per app.",
    });
    this.resultsTable.addGlobalSecondaryIndex({
      indexName: TABLE_KEYS.siteIndex,
      partitionKey: { name: TABLE_KEYS.siteIndexPartitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: TABLE_KEYS.siteIndexSortKey, type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });
  }
}

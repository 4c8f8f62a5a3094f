/**
 * Least-privilege grants with explicit actions. The L2 `grant*` helpers give
 * `s3:GetObject*`, `s3:List*`, `kms:ReEncrypt*`… and whole-bucket or
 * every-index resources; sonomark's roles need far less, and cdk-nag
 * (AwsSolutions-IAM5) rightly flags every wildcard action.
 */
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { TABLE_KEYS } from '../../core/keys';

/** Read (and read by version) objects under `prefix`; decrypt them. */
export function grantReadObjects(grantee: iam.IGrantable, bucket: s3.IBucket, prefix: string, key: kms.IKey): void {
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ['s3:GetObject', 's3:GetObjectVersion'],
      resources: [bucket.arnForObjects(`${prefix}*`)],
    }),
  );
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({ actions: ['kms:Decrypt'], resources: [key.keyArn] }),
  );
}

/** Write objects under `prefix` (single and multipart uploads); encrypt them. */
export function grantWriteObjects(grantee: iam.IGrantable, bucket: s3.IBucket, prefix: string, key: kms.IKey): void {
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ['s3:PutObject', 's3:AbortMultipartUpload'],
      resources: [bucket.arnForObjects(`${prefix}*`)],
    }),
  );
  // Multipart uploads to SSE-KMS objects need Decrypt as well as GenerateDataKey.
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({ actions: ['kms:GenerateDataKey', 'kms:Decrypt'], resources: [key.keyArn] }),
  );
}

/**
 * Read and create one object, `key` exactly (no prefix wildcard): the DICOM pseudonym salt,
 * which its reader creates on first use with a conditional write (core/dicom/salt-object.ts).
 * No s3:ListBucket: a missing key then reads as 403, which the reader treats as "maybe missing".
 */
export function grantReadCreateObject(
  grantee: iam.IGrantable,
  bucket: s3.IBucket,
  key: string,
  kmsKey: kms.IKey,
): void {
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [bucket.arnForObjects(key)] }),
  );
  // Create only: a PutObject without If-None-Match (an overwrite) is not granted. AWS's
  // s3:if-none-match condition key with Null false, as the S3 guide on enforcing conditional
  // writes does it; multipart parts and CopyObject carry no such header, so they are denied too.
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ['s3:PutObject'],
      resources: [bucket.arnForObjects(key)],
      conditions: { Null: { 's3:if-none-match': 'false' } },
    }),
  );
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({ actions: ['kms:GenerateDataKey', 'kms:Decrypt'], resources: [kmsKey.keyArn] }),
  );
}

/** Item-level reads and writes on the results table and its site index; no scans, no table admin. */
export function grantTableItems(grantee: iam.IGrantable, table: dynamodb.ITable, key: kms.IKey): void {
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: [
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:UpdateItem',
        'dynamodb:Query',
        'dynamodb:BatchGetItem',
        'dynamodb:BatchWriteItem',
        'dynamodb:ConditionCheckItem',
        'dynamodb:DescribeTable',
      ],
      resources: [table.tableArn, `${table.tableArn}/index/${TABLE_KEYS.siteIndex}`],
    }),
  );
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'],
      resources: [key.keyArn],
    }),
  );
}

/**
 * The real S3 and DynamoDB APIs on loopback: s3rver and dynalite, on ephemeral
 * ports, with their data under one directory. The handlers talk to them through
 * the same AWS SDK clients they use in the cloud, pointed at these endpoints.
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  type CreateTableCommandInput,
} from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { LOCAL_REGION } from './asl';
import { startServiceHost } from './service-host';

const LOCAL_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export interface LocalServices {
  readonly dataDir: string;
  readonly s3Endpoint: string;
  readonly dynamoEndpoint: string;
  readonly s3: S3Client;
  readonly dynamo: DynamoDBClient;
  readonly doc: DynamoDBDocumentClient;
  /** Calls `listener` for every object stored (PUT, POST, copy), as S3 event notifications do. */
  onObjectCreated(listener: (bucket: string, key: string) => void): void;
  /**
   * Another set of clients on the same endpoints, destroyed by close(): one per
   * principal, so each can carry its own middleware (its role's IAM policy, iam-guard.ts).
   */
  newClients(): LocalClients;
  close(): Promise<void>;
}

export interface LocalClients {
  readonly s3: S3Client;
  readonly dynamo: DynamoDBClient;
  readonly doc: DynamoDBDocumentClient;
}

function localClients(s3Endpoint: string, dynamoEndpoint: string): LocalClients {
  const s3 = new S3Client({
    endpoint: s3Endpoint,
    region: LOCAL_REGION,
    forcePathStyle: true,
    credentials: LOCAL_CREDENTIALS,
    // s3rver does not understand the aws-chunked encoding the SDK uses to attach a checksum
    // to a streamed body (it would store the chunk framing as the object's bytes).
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
  const dynamo = new DynamoDBClient({ endpoint: dynamoEndpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
  const doc = DynamoDBDocumentClient.from(dynamo, { marshallOptions: { removeUndefinedValues: true } });
  return { s3, dynamo, doc };
}

export async function startLocalServices(dataDir: string): Promise<LocalServices> {
  mkdirSync(path.join(dataDir, 's3'), { recursive: true });
  mkdirSync(path.join(dataDir, 'dynamodb'), { recursive: true });
  // s3rver and dynalite run in a worker thread (service-host.ts): their start-up and every
  // request they serve then run beside this thread's work (module loading, the workflow,
  // inference) instead of taking turns with it.
  const createdListeners: ((bucket: string, key: string) => void)[] = [];
  const host = await startServiceHost(dataDir, (bucket, key) => {
    for (const listener of createdListeners) listener(bucket, key);
  });
  const s3Endpoint = `http://127.0.0.1:${host.s3Port}`;
  const dynamoEndpoint = `http://127.0.0.1:${host.dynamoPort}`;
  const { s3, dynamo, doc } = localClients(s3Endpoint, dynamoEndpoint);
  const extra: LocalClients[] = [];

  return {
    dataDir,
    s3Endpoint,
    dynamoEndpoint,
    s3,
    dynamo,
    doc,
    onObjectCreated(listener) {
      createdListeners.push(listener);
    },
    newClients() {
      const clients = localClients(s3Endpoint, dynamoEndpoint);
      extra.push(clients);
      return clients;
    },
    async close() {
      s3.destroy();
      dynamo.destroy();
      for (const c of extra.splice(0)) {
        c.s3.destroy();
        c.dynamo.destroy();
      }
      await host.close();
    },
  };
}

export async function ensureBucket(s3: S3Client, name: string): Promise<void> {
  try {
    await s3.send(new CreateBucketCommand({ Bucket: name }));
  } catch (err) {
    const code = (err as { name?: string }).name;
    if (code !== 'BucketAlreadyOwnedByYou' && code !== 'BucketAlreadyExists') throw err;
  }
}

/** Creates the table with exactly the keys and indexes the CloudFormation definition declares. */
export async function ensureTable(
  dynamo: DynamoDBClient,
  name: string,
  cfnProperties: Record<string, unknown>,
): Promise<void> {
  try {
    await dynamo.send(new DescribeTableCommand({ TableName: name }));
    return;
  } catch (err) {
    if ((err as { name?: string }).name !== 'ResourceNotFoundException') throw err;
  }
  const input: CreateTableCommandInput = {
    TableName: name,
    KeySchema: cfnProperties.KeySchema as CreateTableCommandInput['KeySchema'],
    AttributeDefinitions: cfnProperties.AttributeDefinitions as CreateTableCommandInput['AttributeDefinitions'],
    BillingMode: 'PAY_PER_REQUEST',
    GlobalSecondaryIndexes: (
      cfnProperties.GlobalSecondaryIndexes as
        { IndexName: string; KeySchema: unknown; Projection: unknown }[] | undefined
    )?.map((g) => ({
      IndexName: g.IndexName,
      KeySchema: g.KeySchema as never,
      Projection: g.Projection as never,
    })),
  };
  await dynamo.send(new CreateTableCommand(input));
  // dynalite answers CreateTable with the table CREATING and flips it to ACTIVE on a timer
  // (createTableMs: 0 still means a later tick): until then every item operation fails with
  // ResourceNotFoundException, which a busy machine hits when the first Scan follows at once.
  for (let attempt = 0; ; attempt++) {
    const { Table } = await dynamo.send(new DescribeTableCommand({ TableName: name }));
    if (Table?.TableStatus === 'ACTIVE') return;
    if (attempt >= 200)
      throw new Error(`The local table ${name} did not become ACTIVE (status ${Table?.TableStatus}).`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * The results table exactly as the synthesized template defines it (its keys and the
 * bySite index, from the cached workflow definition, definition.ts), created in a local
 * DynamoDB: tests and benchmarks that use the results store directly get the deployed
 * schema instead of writing their own copy of it.
 */
export async function ensureResultsTable(dynamo: DynamoDBClient, name: string): Promise<void> {
  const { loadWorkflowDefinition } = await import('./definition');
  const { workflow } = await loadWorkflowDefinition();
  await ensureTable(dynamo, name, workflow.tableProperties);
}

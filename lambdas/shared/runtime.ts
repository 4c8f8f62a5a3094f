/**
 * What every sonomark Lambda handler shares: Powertools instances and AWS
 * clients, built once per container. Handlers stay thin: they read env, build
 * these, and call a pure function that receives the clients.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { METRICS_NAMESPACE, type FunctionNames } from '../../core/contract';

export interface Powertools {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly tracer: Tracer;
}

/**
 * Powertools named from the contract (core/contract.ts FUNCTIONS). The CDK writes the
 * same names into POWERTOOLS_SERVICE_NAME and POWERTOOLS_METRICS_NAMESPACE; passing them
 * here as well makes a handler run outside Lambda (tests, tools) log and measure alike.
 */
export function powertools(fn: Pick<FunctionNames, 'serviceName'>): Powertools {
  const { serviceName } = fn;
  return {
    logger: new Logger({ serviceName }),
    metrics: new Metrics({ namespace: METRICS_NAMESPACE, serviceName }),
    tracer: new Tracer({ serviceName }),
  };
}

export function s3Client(tracer: Tracer): S3Client {
  return tracer.captureAWSv3Client(new S3Client({}));
}

export function sfnClient(tracer: Tracer): SFNClient {
  return tracer.captureAWSv3Client(new SFNClient({}));
}

export function documentClient(tracer: Tracer): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(tracer.captureAWSv3Client(new DynamoDBClient({})), {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
  });
}

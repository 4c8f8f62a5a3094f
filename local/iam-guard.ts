/**
 * AWS SDK middleware that makes local mode enforce the deployed permissions: every
 * S3 and DynamoDB command a handler sends is mapped to the IAM action(s) and
 * resource ARN(s) AWS would authorize (GetObjectCommand → s3:GetObject on
 * arn:aws:s3:::bucket/key, QueryCommand with IndexName → dynamodb:Query on
 * …:table/T/index/I, …) and evaluated against the role policy the synthesized
 * template gives that handler (iam-policy.ts). A denied call throws the error AWS
 * would (S3 AccessDenied, DynamoDB AccessDeniedException, HTTP 403) before any
 * request is sent. A command this module cannot map is denied too, with a message
 * saying so: an unknown call must not pass unchecked.
 */
import { S3ServiceException, type S3Client } from '@aws-sdk/client-s3';
import { DynamoDBServiceException } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { InitializeMiddleware, MiddlewareStack } from '@smithy/types';
import { ConfigError } from '../core/errors';
import { roleOfConstructPath, type LambdaRole } from './bindings';
import type { LambdaFunctionRef } from './definition';
import {
  evaluate,
  localBucketArn,
  localTableArn,
  type LocalPermissions,
  type RequestContext,
  type RolePolicy,
} from './iam-policy';
import type { LocalServices } from './services';

export interface AccessRequest {
  readonly action: string;
  readonly resource: string;
  /** Condition keys this request states (an object write's If-None-Match / If-Match). */
  readonly context?: RequestContext;
}

export type IamService = 's3' | 'dynamodb';

/** Thrown when a command's IAM action is unknown to local mode. */
const UNMAPPED = 'unmapped';

const objectArn = (bucket: unknown, key: unknown) => `${localBucketArn(String(bucket))}/${String(key)}`;
const optionalString = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** S3 command name (without "Command") → the request(s) AWS authorizes. */
function s3Requests(command: string, input: Record<string, unknown>): AccessRequest[] {
  const { Bucket, Key, VersionId } = input;
  const obj = (action: string) => [{ action, resource: objectArn(Bucket, Key) }];
  const bucket = (action: string) => [{ action, resource: localBucketArn(String(Bucket)) }];
  switch (command) {
    case 'GetObject':
    case 'HeadObject':
      return obj(VersionId ? 's3:GetObjectVersion' : 's3:GetObject');
    case 'GetObjectAttributes':
      return [...obj(VersionId ? 's3:GetObjectVersion' : 's3:GetObject'), ...obj('s3:GetObjectAttributes')];
    case 'PutObject':
    case 'CompleteMultipartUpload':
      // The conditional-write keys (s3:if-none-match, s3:if-match), absent when the header is.
      return [
        {
          action: 's3:PutObject',
          resource: objectArn(Bucket, Key),
          context: {
            's3:if-none-match': optionalString(input.IfNoneMatch),
            's3:if-match': optionalString(input.IfMatch),
          },
        },
      ];
    case 'CreateMultipartUpload':
    case 'UploadPart':
      // These carry no conditional header: the keys are absent (a Null-false condition denies them, as in AWS).
      return [
        {
          action: 's3:PutObject',
          resource: objectArn(Bucket, Key),
          context: { 's3:if-none-match': undefined, 's3:if-match': undefined },
        },
      ];
    case 'AbortMultipartUpload':
      return obj('s3:AbortMultipartUpload');
    case 'ListParts':
      return obj('s3:ListMultipartUploadParts');
    case 'DeleteObject':
      return obj(VersionId ? 's3:DeleteObjectVersion' : 's3:DeleteObject');
    case 'DeleteObjects': {
      const objects = ((input.Delete as { Objects?: { Key?: string; VersionId?: string }[] } | undefined)?.Objects ??
        []) as { Key?: string; VersionId?: string }[];
      return objects.map((o) => ({
        action: o.VersionId ? 's3:DeleteObjectVersion' : 's3:DeleteObject',
        resource: objectArn(Bucket, o.Key),
      }));
    }
    case 'CopyObject': {
      const source = decodeURIComponent(String(input.CopySource ?? '').replace(/^\//, ''));
      const [path, query] = source.split('?');
      const slash = (path ?? '').indexOf('/');
      return [
        ...obj('s3:PutObject'),
        {
          action: query?.includes('versionId=') ? 's3:GetObjectVersion' : 's3:GetObject',
          resource: objectArn(path?.slice(0, slash), path?.slice(slash + 1)),
        },
      ];
    }
    case 'GetObjectTagging':
      return obj(VersionId ? 's3:GetObjectVersionTagging' : 's3:GetObjectTagging');
    case 'PutObjectTagging':
      return obj(VersionId ? 's3:PutObjectVersionTagging' : 's3:PutObjectTagging');
    case 'ListObjects':
    case 'ListObjectsV2':
    case 'HeadBucket':
      return bucket('s3:ListBucket');
    case 'ListObjectVersions':
      return bucket('s3:ListBucketVersions');
    case 'ListMultipartUploads':
      return bucket('s3:ListBucketMultipartUploads');
    case 'CreateBucket':
      return bucket('s3:CreateBucket');
    default:
      throw new Error(UNMAPPED);
  }
}

const DOC_COMMANDS: Record<string, string> = {
  Get: 'GetItem',
  Put: 'PutItem',
  Update: 'UpdateItem',
  Delete: 'DeleteItem',
  BatchGet: 'BatchGetItem',
  BatchWrite: 'BatchWriteItem',
  TransactGet: 'TransactGetItems',
  TransactWrite: 'TransactWriteItems',
};

/** DynamoDB (or DocumentClient) command name (without "Command") → the request(s) AWS authorizes. */
function dynamoRequests(command: string, input: Record<string, unknown>): AccessRequest[] {
  const name = DOC_COMMANDS[command] ?? command;
  const table = (t: unknown, index?: unknown) =>
    index ? `${localTableArn(String(t))}/index/${String(index)}` : localTableArn(String(t));
  switch (name) {
    case 'GetItem':
    case 'PutItem':
    case 'UpdateItem':
    case 'DeleteItem':
    case 'DescribeTable':
      return [{ action: `dynamodb:${name}`, resource: table(input.TableName) }];
    case 'Query':
    case 'Scan':
      return [{ action: `dynamodb:${name}`, resource: table(input.TableName, input.IndexName) }];
    case 'BatchGetItem':
    case 'BatchWriteItem':
      return Object.keys((input.RequestItems as Record<string, unknown> | undefined) ?? {}).map((t) => ({
        action: `dynamodb:${name}`,
        resource: table(t),
      }));
    case 'TransactGetItems':
      return ((input.TransactItems as { Get?: { TableName?: string } }[] | undefined) ?? []).map((i) => ({
        action: 'dynamodb:GetItem',
        resource: table(i.Get?.TableName),
      }));
    case 'TransactWriteItems': {
      const kinds: Record<string, string> = {
        Put: 'PutItem',
        Update: 'UpdateItem',
        Delete: 'DeleteItem',
        ConditionCheck: 'ConditionCheckItem',
      };
      return ((input.TransactItems as Record<string, { TableName?: string }>[] | undefined) ?? []).flatMap((item) =>
        Object.entries(item)
          .filter(([k]) => k in kinds)
          .map(([k, v]) => ({ action: `dynamodb:${kinds[k]}`, resource: table(v.TableName) })),
      );
    }
    default:
      throw new Error(UNMAPPED);
  }
}

/** The IAM requests behind one SDK command, or undefined when local mode does not know its action. */
export function accessRequests(
  service: IamService,
  commandName: string,
  input: Record<string, unknown>,
): AccessRequest[] | undefined {
  const command = commandName.replace(/Command$/, '');
  try {
    return service === 's3' ? s3Requests(command, input) : dynamoRequests(command, input);
  } catch (err) {
    if ((err as Error).message === UNMAPPED) return undefined;
    throw err;
  }
}

/**
 * The resource as an error message may show it: object keys can name patients, so
 * only the bucket and the key's first segment (its fixed prefix, e.g. features/) are kept.
 */
export function redactedResource(arn: string): string {
  const m = /^(arn:aws:s3:::[^/]+\/)([^/]*\/)?(.+)?$/.exec(arn);
  if (!m) return arn;
  return `${m[1]}${m[2] ?? ''}${m[3] !== undefined ? '…' : ''}`;
}

export function accessDenied(service: IamService, role: RolePolicy, request: AccessRequest, reason: string): Error {
  const message =
    `User: ${role.roleArn.replace(':iam::', ':sts::').replace(':role/', ':assumed-role/')}/local ` +
    `is not authorized to perform: ${request.action} on resource: "${redactedResource(request.resource)}" because ${reason}`;
  const base = { $fault: 'client' as const, $metadata: { httpStatusCode: 403 }, message };
  return service === 's3'
    ? new S3ServiceException({ ...base, name: 'AccessDenied' })
    : new DynamoDBServiceException({ ...base, name: 'AccessDeniedException' });
}

/** Throws AWS's access-denied error unless the role may make every request of this command. */
export function authorize(
  service: IamService,
  role: RolePolicy,
  commandName: string,
  input: Record<string, unknown>,
  bucketPolicies: LocalPermissions['bucketPolicies'] = {},
): void {
  const requests = accessRequests(service, commandName, input);
  if (!requests) {
    throw accessDenied(
      service,
      role,
      { action: `${service}:${commandName.replace(/Command$/, '')}`, resource: '*' },
      `local mode does not know which IAM action ${commandName} needs (add it to local/iam-guard.ts)`,
    );
  }
  for (const request of requests) {
    const bucket = service === 's3' ? request.resource.split('/')[0]! : '';
    const decision = evaluate(role, request.action, request.resource, bucketPolicies[bucket] ?? [], request.context);
    if (!decision.allowed) throw accessDenied(service, role, request, decision.reason);
  }
}

export const IAM_MIDDLEWARE_NAME = 'sonomarkLocalIam';

/**
 * Adds the check to a client's middleware stack (initialize step, before
 * serialization: a denied call never reaches s3rver or dynalite). The client
 * must serve one principal only, as a Lambda's client does.
 */
export function enforceRolePolicy<I extends object, O extends object>(
  client: { middlewareStack: MiddlewareStack<I, O> },
  service: IamService,
  role: RolePolicy,
  bucketPolicies: LocalPermissions['bucketPolicies'] = {},
): void {
  // Only this service's statements can match its actions: precomputed once per client.
  const prefix = `${service}:`;
  const relevant: RolePolicy = {
    ...role,
    statements: role.statements.filter(
      (s) =>
        s.NotAction !== undefined ||
        (s.Action ?? []).some((a) => a === '*' || a.toLowerCase().startsWith(prefix) || a.startsWith('*')),
    ),
  };
  const middleware: InitializeMiddleware<I, O> = (next, context) => async (args) => {
    const input = (args.input ?? {}) as Record<string, unknown>;
    authorize(service, relevant, String(context.commandName ?? 'Unknown'), input, bucketPolicies);
    return next(args);
  };
  client.middlewareStack.add(middleware, { step: 'initialize', name: IAM_MIDDLEWARE_NAME, priority: 'high' });
}

/** Whose code makes a call: a workflow Lambda (by role, and by function when there are several) or the extractor job. */
export type LocalPrincipal =
  { readonly role: LambdaRole; readonly functionId?: string } | { readonly role: 'extractJob' };

export interface PrincipalClients {
  readonly s3: S3Client;
  readonly doc: DynamoDBDocumentClient;
}

/**
 * Clients per principal, each enforcing its role's policy; built once per role on first
 * use. A Lambda role without functionId takes the first function of that role (the
 * expert functions' policies differ only in their log groups).
 */
export function principalClients(
  services: Pick<LocalServices, 'newClients'>,
  permissions: LocalPermissions,
  functions: readonly LambdaFunctionRef[],
  /** Called once for each principal's new clients before the IAM check is added (local/faults.ts attaches here). */
  configure?: (clients: ReturnType<LocalServices['newClients']>) => void,
): (principal: LocalPrincipal) => PrincipalClients {
  const byRoleArn = new Map<string, PrincipalClients>();
  const policyOf = (p: LocalPrincipal): RolePolicy => {
    if (p.role === 'extractJob') {
      if (!permissions.extractJob) throw new ConfigError('The templates give the extractor job no role.');
      return permissions.extractJob;
    }
    const fn = p.functionId
      ? functions.find((f) => f.logicalId === p.functionId)
      : functions.find((f) => roleOfConstructPath(f.path) === p.role);
    const policy = fn ? permissions.functions[fn.logicalId] : undefined;
    if (!policy) throw new ConfigError(`No IAM role in the templates for the local ${p.role} handler.`);
    return policy;
  };
  return (p) => {
    const role = policyOf(p);
    let clients = byRoleArn.get(role.roleArn);
    if (!clients) {
      const c = services.newClients();
      configure?.(c);
      enforceRolePolicy(c.s3, 's3', role, permissions.bucketPolicies);
      // The DocumentClient shares its DynamoDBClient's middleware stack: one check covers both.
      enforceRolePolicy(c.dynamo, 'dynamodb', role);
      clients = { s3: c.s3, doc: c.doc };
      byRoleArn.set(role.roleArn, clients);
    }
    return clients;
  };
}

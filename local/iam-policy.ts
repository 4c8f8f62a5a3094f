/**
 * The IAM policies the synthesized templates give each workflow role, resolved to
 * local ARNs, and an evaluator for them. Local mode checks every S3 and DynamoDB
 * call a handler makes against its role's statements (iam-guard.ts), so a missing
 * or too-wide permission fails locally as it would in AWS.
 *
 * What is modelled: identity policies attached to the role (AWS::IAM::Policy,
 * AWS::IAM::ManagedPolicy and inline Role policies), bucket policies, Allow and
 * Deny, Action/NotAction, Resource/NotResource with `*` and `?` wildcards, and
 * the intrinsics (Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::ImportValue) that name
 * the project's own buckets, table and key. What is not: AWS-managed policy ARNs
 * (their text is not in the template: ignored, so they can only make local mode
 * stricter), KMS key policies and KMS itself (s3rver and dynalite do not encrypt),
 * permission boundaries, SCPs and session policies (the project uses none).
 *
 * Conditions: local mode knows aws:SecureTransport (the SDK in Lambda and Batch
 * uses TLS, so it is true) and the keys a request states itself (RequestContext:
 * s3:if-none-match and s3:if-match from a PutObject's IfNoneMatch/IfMatch, absent
 * for the other object writes, which carry no such header). Operators: Bool,
 * String*, Arn* and Null, with IfExists; a key absent from the request matches
 * no positive operator and every negated one, as in IAM. A condition on any other
 * key cannot be evaluated here and is treated conservatively: an Allow with it does
 * not grant, a Deny with it does deny, and the decision says so.
 */
import { ModelError } from '../core/errors';

export const IAM_LOCAL_ACCOUNT = '000000000000';
export const IAM_LOCAL_REGION = 'local-1';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

interface Resource {
  Type: string;
  Properties?: Record<string, Json>;
}
export interface IamTemplate {
  Resources: Record<string, Resource>;
  Outputs?: Record<string, { Value: Json; Export?: { Name: Json } }>;
}

/** One statement, its intrinsics resolved; names as in IAM JSON, values always lists. */
export interface PolicyStatement {
  readonly Effect: 'Allow' | 'Deny';
  readonly Action?: readonly string[];
  readonly NotAction?: readonly string[];
  readonly Resource?: readonly string[];
  readonly NotResource?: readonly string[];
  /** Resource-policy statements only: '*' or role ARNs. */
  readonly Principal?: readonly string[];
  readonly Condition?: Record<string, Record<string, readonly string[]>>;
}

export interface RolePolicy {
  /** The role's local ARN (arn:aws:iam::000000000000:role/<logical id>). */
  readonly roleArn: string;
  readonly statements: readonly PolicyStatement[];
  /** What about this role local mode could not model (e.g. an AWS-managed policy ARN). */
  readonly notes: readonly string[];
}

export interface LocalPermissions {
  /** Each Lambda function's role policy, by the function's logical id. */
  readonly functions: Record<string, RolePolicy>;
  /** The extractor Batch job's role (its job definition's JobRoleArn). */
  readonly extractJob: RolePolicy | null;
  /** Bucket policies, by bucket ARN. */
  readonly bucketPolicies: Record<string, readonly PolicyStatement[]>;
}

/** Local names of the project's own storage resources, by logical id in the storage stack. */
export interface LocalResourceNames {
  readonly buckets: Record<string, string>;
  readonly tables: Record<string, string>;
}

export const localBucketArn = (bucket: string) => `arn:aws:s3:::${bucket}`;
export const localTableArn = (table: string) =>
  `arn:aws:dynamodb:${IAM_LOCAL_REGION}:${IAM_LOCAL_ACCOUNT}:table/${table}`;
export const localRoleArn = (logicalId: string) => `arn:aws:iam::${IAM_LOCAL_ACCOUNT}:role/${logicalId}`;

const PSEUDO: Record<string, string> = {
  'AWS::Partition': 'aws',
  'AWS::Region': IAM_LOCAL_REGION,
  'AWS::AccountId': IAM_LOCAL_ACCOUNT,
  'AWS::URLSuffix': 'amazonaws.com',
  'AWS::StackName': 'local',
};

export interface ResolveContext {
  readonly template: IamTemplate;
  /** Templates whose exports Fn::ImportValue may name (the storage stack). */
  readonly exporters: readonly IamTemplate[];
  readonly names: LocalResourceNames;
}

/** The local value of a Ref or Fn::GetAtt on one resource. */
function attributeOf(ctx: ResolveContext, logicalId: string, attr: 'Ref' | string): string {
  const type = ctx.template.Resources[logicalId]?.Type ?? 'unknown';
  const lower = logicalId.toLowerCase();
  if (type === 'AWS::S3::Bucket') {
    const name = ctx.names.buckets[logicalId] ?? `local-${lower}`;
    return attr === 'Ref' ? name : attr === 'Arn' ? localBucketArn(name) : `local:${type}:${logicalId}:${attr}`;
  }
  if (type === 'AWS::DynamoDB::Table') {
    const name = ctx.names.tables[logicalId] ?? `local-${lower}`;
    return attr === 'Ref' ? name : attr === 'Arn' ? localTableArn(name) : `local:${type}:${logicalId}:${attr}`;
  }
  if (type === 'AWS::KMS::Key') {
    const id = `local-${lower}`;
    return attr === 'Arn' ? `arn:aws:kms:${IAM_LOCAL_REGION}:${IAM_LOCAL_ACCOUNT}:key/${id}` : id;
  }
  if (type === 'AWS::IAM::Role' && attr === 'Arn') return localRoleArn(logicalId);
  if (type === 'AWS::IAM::Role' && attr === 'Ref') return logicalId;
  // Log groups, functions, queues…: never an S3 or DynamoDB ARN, so they never match a checked call.
  return `local:${type}:${logicalId}:${attr}`;
}

/** Resolves a policy value (string or intrinsic) to a local string. Unknown intrinsics are an error. */
export function resolvePolicyValue(value: Json, ctx: ResolveContext): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new ModelError(`Unsupported value in an IAM policy: ${JSON.stringify(value)}`);
  if ('Ref' in value) {
    const ref = String(value.Ref);
    return PSEUDO[ref] ?? attributeOf(ctx, ref, 'Ref');
  }
  if ('Fn::GetAtt' in value) {
    const raw = value['Fn::GetAtt'];
    const [id, attr] = Array.isArray(raw) ? (raw as string[]) : String(raw).split(/\.(.*)/);
    return attributeOf(ctx, String(id), String(attr));
  }
  if ('Fn::Join' in value) {
    const [sep, parts] = value['Fn::Join'] as [string, Json[]];
    return parts.map((p) => resolvePolicyValue(p, ctx)).join(sep);
  }
  if ('Fn::Sub' in value) {
    const raw = value['Fn::Sub'];
    const [text, vars] = Array.isArray(raw) ? (raw as [string, Record<string, Json>]) : [String(raw), {}];
    return text.replace(/\$\{([^}!][^}]*)\}/g, (_m, name: string) => {
      if (name in vars) return resolvePolicyValue(vars[name] as Json, ctx);
      if (name in PSEUDO) return PSEUDO[name] as string;
      const [id, attr] = name.split(/\.(.*)/);
      return attributeOf(ctx, String(id), attr ? attr : 'Ref');
    });
  }
  if ('Fn::ImportValue' in value) {
    const exportName = resolvePolicyValue(value['Fn::ImportValue'] as Json, ctx);
    for (const exporter of ctx.exporters) {
      for (const output of Object.values(exporter.Outputs ?? {})) {
        const name = output.Export?.Name;
        if (name !== undefined && resolvePolicyValue(name, { ...ctx, template: exporter }) === exportName)
          return resolvePolicyValue(output.Value, { ...ctx, template: exporter });
      }
    }
    throw new ModelError(`Fn::ImportValue names ${exportName}, which no synthesized stack exports.`);
  }
  throw new ModelError(`Unsupported CloudFormation intrinsic in an IAM policy: ${Object.keys(value).join(', ')}`);
}

const list = (v: Json | undefined): Json[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function resolveStatement(raw: Record<string, Json>, ctx: ResolveContext): PolicyStatement {
  const strings = (v: Json | undefined) => list(v).map((x) => resolvePolicyValue(x, ctx));
  const out: {
    -readonly [K in keyof PolicyStatement]: PolicyStatement[K];
  } = { Effect: raw.Effect === 'Deny' ? 'Deny' : 'Allow' };
  if (raw.Action !== undefined) out.Action = strings(raw.Action);
  if (raw.NotAction !== undefined) out.NotAction = strings(raw.NotAction);
  if (raw.Resource !== undefined) out.Resource = strings(raw.Resource);
  if (raw.NotResource !== undefined) out.NotResource = strings(raw.NotResource);
  if (raw.Principal !== undefined) {
    const p = raw.Principal;
    out.Principal =
      p === '*'
        ? ['*']
        : typeof p === 'object' && p !== null && !Array.isArray(p)
          ? Object.entries(p).flatMap(([kind, v]) => strings(v).map((s) => (kind === 'AWS' ? s : `${kind}:${s}`)))
          : strings(p);
  }
  if (raw.Condition !== undefined && raw.Condition !== null && typeof raw.Condition === 'object') {
    out.Condition = Object.fromEntries(
      Object.entries(raw.Condition as Record<string, Record<string, Json>>).map(([op, keys]) => [
        op,
        Object.fromEntries(Object.entries(keys).map(([k, v]) => [k, strings(v)])),
      ]),
    );
  }
  return out;
}

/** The resolved statements of one policy document. */
export function policyStatements(doc: Json | undefined, ctx: ResolveContext): PolicyStatement[] {
  return list((doc as Record<string, Json> | null | undefined)?.Statement).map((s) =>
    resolveStatement(s as Record<string, Json>, ctx),
  );
}

const refOf = (v: Json | undefined): string | undefined =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && typeof v.Ref === 'string' ? v.Ref : undefined;
const getAttOf = (v: Json | undefined): string | undefined => {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || !('Fn::GetAtt' in v)) return undefined;
  const raw = v['Fn::GetAtt'];
  return Array.isArray(raw) ? String(raw[0]) : String(raw).split('.')[0];
};

/** Every statement the template attaches to one role. */
export function rolePolicy(template: IamTemplate, roleId: string, ctx: ResolveContext): RolePolicy {
  const role = template.Resources[roleId];
  if (role?.Type !== 'AWS::IAM::Role') throw new ModelError(`${roleId} is not an IAM role in the template.`);
  const docs: Json[] = [];
  const notes: string[] = [];
  for (const p of list(role.Properties?.Policies)) docs.push((p as Record<string, Json>).PolicyDocument ?? null);
  for (const arn of list(role.Properties?.ManagedPolicyArns)) {
    const id = refOf(arn);
    if (id && template.Resources[id]?.Type === 'AWS::IAM::ManagedPolicy') continue; // read below via its Roles
    notes.push(`managed policy ${resolvePolicyValue(arn, ctx)} is not modelled (its statements are not granted)`);
  }
  for (const r of Object.values(template.Resources)) {
    if (r.Type !== 'AWS::IAM::Policy' && r.Type !== 'AWS::IAM::ManagedPolicy') continue;
    if (list(r.Properties?.Roles).some((x) => refOf(x) === roleId)) docs.push(r.Properties?.PolicyDocument ?? null);
  }
  const statements = docs.flatMap((d) => policyStatements(d, ctx));
  return { roleArn: localRoleArn(roleId), statements, notes };
}

/**
 * The permissions of every workflow principal: each Lambda function's role and the
 * extractor job's role, with the storage stack's bucket policies.
 */
export function localPermissions(
  pipeline: IamTemplate,
  storage: IamTemplate,
  names: LocalResourceNames,
): LocalPermissions {
  const pipelineCtx: ResolveContext = { template: pipeline, exporters: [storage], names };
  const storageCtx: ResolveContext = { template: storage, exporters: [], names };
  const functions: Record<string, RolePolicy> = {};
  for (const [id, r] of Object.entries(pipeline.Resources)) {
    if (r.Type !== 'AWS::Lambda::Function') continue;
    const roleId = getAttOf(r.Properties?.Role);
    if (!roleId) throw new ModelError(`Lambda function ${id} has no role from this template.`);
    functions[id] = rolePolicy(pipeline, roleId, pipelineCtx);
  }
  const jobRoles = new Set(
    Object.values(pipeline.Resources)
      .filter((r) => r.Type === 'AWS::Batch::JobDefinition')
      .map((r) => getAttOf((r.Properties?.ContainerProperties as Record<string, Json> | undefined)?.JobRoleArn))
      .filter((x): x is string => x !== undefined),
  );
  if (jobRoles.size > 1)
    throw new ModelError(`The Batch job definitions use ${jobRoles.size} job roles; local mode runs one extractor.`);
  const [jobRole] = [...jobRoles];
  const bucketPolicies: Record<string, PolicyStatement[]> = {};
  for (const r of Object.values(storage.Resources)) {
    if (r.Type !== 'AWS::S3::BucketPolicy') continue;
    const bucket = resolvePolicyValue(r.Properties?.Bucket ?? null, storageCtx);
    (bucketPolicies[localBucketArn(bucket)] ??= []).push(...policyStatements(r.Properties?.PolicyDocument, storageCtx));
  }
  return {
    functions,
    extractJob: jobRole ? rolePolicy(pipeline, jobRole, pipelineCtx) : null,
    bucketPolicies,
  };
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/** What local mode knows about every request's context (see the module comment). */
const KNOWN_CONTEXT: Record<string, string> = { 'aws:securetransport': 'true' };

/**
 * Condition keys one request states (lower-case names): a value, or undefined when the key
 * is known to be absent from the request (a PutObject without If-None-Match).
 */
export type RequestContext = Readonly<Record<string, string | undefined>>;

const globCache = new Map<string, RegExp>();
function glob(pattern: string, caseInsensitive: boolean): RegExp {
  const key = `${caseInsensitive ? 'i' : 's'}${pattern}`;
  let re = globCache.get(key);
  if (!re) {
    const body = pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.');
    re = new RegExp(`^${body}$`, caseInsensitive ? 'is' : 's');
    globCache.set(key, re);
  }
  return re;
}

const matchesAction = (patterns: readonly string[], action: string) => patterns.some((p) => glob(p, true).test(action));
const matchesResource = (patterns: readonly string[], arn: string) => patterns.some((p) => glob(p, false).test(arn));

type Tri = true | false | 'unknown';

/** Evaluates a statement's Condition block against KNOWN_CONTEXT and the request's own keys. */
function conditionHolds(
  condition: PolicyStatement['Condition'],
  request: RequestContext = {},
): { holds: Tri; unknownKeys: string[] } {
  if (!condition) return { holds: true, unknownKeys: [] };
  const unknownKeys: string[] = [];
  let result: Tri = true;
  for (const [rawOp, keys] of Object.entries(condition)) {
    const ifExists = rawOp.endsWith('IfExists');
    const op = ifExists ? rawOp.slice(0, -'IfExists'.length) : rawOp;
    const negated = /^(StringNot|ArnNot)/.test(op);
    for (const [key, values] of Object.entries(keys)) {
      const name = key.toLowerCase();
      const known = Object.hasOwn(request, name) || KNOWN_CONTEXT[name] !== undefined;
      const actual = Object.hasOwn(request, name) ? request[name] : KNOWN_CONTEXT[name];
      let one: Tri;
      if (!known || op.startsWith('ForAnyValue:') || op.startsWith('ForAllValues:')) one = 'unknown';
      // Null: "true" holds when the key is absent, "false" when it is present.
      else if (op === 'Null') one = values.some((v) => (v.toLowerCase() === 'true') === (actual === undefined));
      // An absent key: IfExists holds; otherwise only a negated operator does (IAM's rule).
      else if (actual === undefined) one = ifExists || negated;
      else if (op === 'Bool' || op === 'StringEquals' || op === 'ArnEquals')
        one = values.some((v) => v.toLowerCase() === actual.toLowerCase());
      else if (op === 'StringNotEquals' || op === 'ArnNotEquals')
        one = !values.some((v) => v.toLowerCase() === actual.toLowerCase());
      else if (op === 'StringLike' || op === 'ArnLike') one = values.some((v) => glob(v, false).test(actual));
      else if (op === 'StringNotLike' || op === 'ArnNotLike') one = !values.some((v) => glob(v, false).test(actual));
      else one = 'unknown';
      if (one === 'unknown') unknownKeys.push(`${rawOp} ${key}`);
      if (one === false) result = false;
      else if (one === 'unknown' && result === true) result = 'unknown';
    }
  }
  return { holds: result, unknownKeys };
}

/** Whether a statement applies to the request: true, false, or 'unknown' (only its Condition is undecidable). */
function applies(
  s: PolicyStatement,
  action: string,
  arn: string,
  principal?: string,
  request?: RequestContext,
): { hit: Tri; unknown: string[] } {
  if (s.Principal && !s.Principal.some((p) => p === '*' || p === principal)) return { hit: false, unknown: [] };
  if (s.Action && !matchesAction(s.Action, action)) return { hit: false, unknown: [] };
  if (s.NotAction && matchesAction(s.NotAction, action)) return { hit: false, unknown: [] };
  if (!s.Action && !s.NotAction) return { hit: false, unknown: [] };
  if (s.Resource && !matchesResource(s.Resource, arn)) return { hit: false, unknown: [] };
  if (s.NotResource && matchesResource(s.NotResource, arn)) return { hit: false, unknown: [] };
  const c = conditionHolds(s.Condition, request);
  return { hit: c.holds, unknown: c.unknownKeys };
}

export interface Decision {
  readonly allowed: boolean;
  /** Why, in IAM's words: "explicit deny…", "no identity-based policy allows…". */
  readonly reason: string;
  /** Conditions local mode could not evaluate and so treated conservatively. */
  readonly unevaluated: readonly string[];
}

/**
 * IAM's decision for one principal, action and resource: an explicit Deny (in
 * the role's policy or the resource's) wins; otherwise an Allow in either grants
 * (same account); otherwise the implicit deny.
 */
export function evaluate(
  role: RolePolicy,
  action: string,
  arn: string,
  resourcePolicy: readonly PolicyStatement[] = [],
  /** Condition keys the request itself states (RequestContext). */
  request: RequestContext = {},
): Decision {
  const unevaluated: string[] = [];
  let allowed = false;
  for (const [where, statements, isResource] of [
    ["the role's identity-based", role.statements, false],
    ["the resource's resource-based", resourcePolicy, true],
  ] as const) {
    for (const s of statements) {
      if (!isResource && s.Principal) continue; // a Principal in an identity policy is invalid; ignore the statement
      const { hit, unknown } = applies(s, action, arn, isResource ? role.roleArn : undefined, request);
      unevaluated.push(...unknown);
      if (s.Effect === 'Deny' && hit !== false)
        return {
          allowed: false,
          reason:
            hit === 'unknown'
              ? `an explicit deny in ${where} policy applies (its condition ${unknown.join(', ')} cannot be evaluated locally, so it is assumed to hold)`
              : `an explicit deny in ${where} policy applies`,
          unevaluated,
        };
      if (s.Effect === 'Allow' && hit === true) allowed = true;
    }
  }
  if (allowed) return { allowed: true, reason: 'allowed', unevaluated };
  const skipped = unevaluated.length
    ? ` (an allow with the condition ${unevaluated.join(', ')} was not counted: local mode cannot evaluate it)`
    : '';
  return {
    allowed: false,
    reason: `no identity-based or resource-based policy allows the ${action} action${skipped}`,
    unevaluated,
  };
}

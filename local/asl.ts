/**
 * The state machine that local mode runs is the one PipelineStack synthesizes:
 * this module takes it out of the CloudFormation template and substitutes its
 * deploy-time tokens (Ref, Fn::GetAtt, Fn::ImportValue, pseudo parameters) with
 * stable local placeholders. Nothing else about the definition changes.
 */
import { ModelError } from '../core/errors';

export const LOCAL_ACCOUNT = '000000000000';
export const LOCAL_REGION = 'local-1';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface CfnTemplate {
  Resources: Record<string, { Type: string; Properties?: Record<string, Json>; Metadata?: Record<string, Json> }>;
}

/** Placeholder ARN local mode uses for a Lambda function resource. */
export function localFunctionArn(logicalId: string): string {
  return `arn:aws:lambda:${LOCAL_REGION}:${LOCAL_ACCOUNT}:function:${logicalId}`;
}

const PSEUDO: Record<string, string> = {
  'AWS::Partition': 'aws',
  'AWS::Region': LOCAL_REGION,
  'AWS::AccountId': LOCAL_ACCOUNT,
  'AWS::URLSuffix': 'amazonaws.com',
  'AWS::StackName': 'local',
};

/** Resolves one CloudFormation value to a string, replacing tokens with local placeholders. */
export function resolveToken(value: Json, template: CfnTemplate): string {
  if (typeof value === 'string') return value;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ModelError(`Unsupported CloudFormation value in state machine definition: ${JSON.stringify(value)}`);
  }
  if ('Fn::Join' in value) {
    const [sep, parts] = value['Fn::Join'] as [string, Json[]];
    return parts.map((p) => resolveToken(p, template)).join(sep);
  }
  if ('Ref' in value) {
    const ref = value.Ref as string;
    if (ref in PSEUDO) return PSEUDO[ref] as string;
    return placeholderFor(ref, 'Ref', template);
  }
  if ('Fn::GetAtt' in value) {
    const [id, attr] = value['Fn::GetAtt'] as [string, string];
    return placeholderFor(id, attr, template);
  }
  if ('Fn::ImportValue' in value) {
    return `local:import:${resolveToken(value['Fn::ImportValue'] as Json, template)}`;
  }
  throw new ModelError(
    `Unsupported CloudFormation intrinsic in state machine definition: ${Object.keys(value).join(', ')}`,
  );
}

function placeholderFor(logicalId: string, attr: string, template: CfnTemplate): string {
  const type = template.Resources[logicalId]?.Type;
  if (type === 'AWS::Lambda::Function' && (attr === 'Arn' || attr === 'Ref')) return localFunctionArn(logicalId);
  return `local:${type ?? 'unknown'}:${logicalId}:${attr}`;
}

/** The state machine's resolved ASL definition, as JSON. */
export function extractDefinition(template: CfnTemplate): Record<string, unknown> {
  const machines = Object.entries(template.Resources).filter(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine');
  if (machines.length !== 1) {
    throw new ModelError(`Expected exactly one state machine in the pipeline template, found ${machines.length}.`);
  }
  const props = machines[0]![1].Properties ?? {};
  const raw = props.DefinitionString ?? (props.Definition as Json);
  if (raw === undefined) throw new ModelError('State machine has no DefinitionString.');
  const text =
    typeof raw === 'object' && raw !== null && !('Fn::Join' in raw) ? JSON.stringify(raw) : resolveToken(raw, template);
  return JSON.parse(text) as Record<string, unknown>;
}

/** Logical id of every Lambda function, keyed by the construct path that names its role. */
export function lambdaFunctions(template: CfnTemplate): { logicalId: string; path: string }[] {
  return Object.entries(template.Resources)
    .filter(([, r]) => r.Type === 'AWS::Lambda::Function')
    .map(([logicalId, r]) => ({ logicalId, path: String(r.Metadata?.['aws:cdk:path'] ?? '') }));
}

export interface TaskState {
  readonly name: string;
  readonly resource: string;
}

/** Every Task state, including those inside Map and Parallel states, with its Resource. */
export function taskStates(definition: Record<string, unknown>): TaskState[] {
  const out: TaskState[] = [];
  const visit = (states: Record<string, Record<string, unknown>>) => {
    for (const [name, state] of Object.entries(states)) {
      if (state.Type === 'Task') out.push({ name, resource: String(state.Resource) });
      const processor = (state.ItemProcessor ?? state.Iterator) as
        { States?: Record<string, Record<string, unknown>> } | undefined;
      if (processor?.States) visit(processor.States);
      for (const branch of (state.Branches as { States: Record<string, Record<string, unknown>> }[] | undefined) ??
        []) {
        visit(branch.States);
      }
    }
  };
  visit(definition.States as Record<string, Record<string, unknown>>);
  return out;
}

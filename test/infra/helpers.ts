/** Shared setup for the infra suite: one synth per test file, bundling off. */
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp, type BuiltApp, type BuildAppOptions } from '../../lib/app';
import { tempDir } from '../helpers/temp';

export interface Synthesized extends BuiltApp {
  readonly storageTemplate: Template;
  readonly pipelineTemplate: Template;
  readonly triggerTemplate: Template;
  readonly outdir: string;
}

// One synthesis per configuration and test file: tests only read the app and its templates.
const synthesized = new Map<string, Synthesized>();

/**
 * Synthesizes the app into a cloud assembly dir that is removed after the test file; the
 * same options again in the same file return the same synthesis (the cache lives in this
 * module, which jest loads once per test file). A synthesis that throws is not cached.
 */
export function synth(opts: BuildAppOptions = {}): Synthesized {
  if (opts.outdir) return synthesize(opts);
  const key = JSON.stringify({ bundling: false, nag: true, context: {}, ...opts });
  let built = synthesized.get(key);
  if (!built) {
    built = synthesize(opts);
    synthesized.set(key, built);
  }
  return built;
}

function synthesize(opts: BuildAppOptions): Synthesized {
  const outdir = opts.outdir ?? tempDir('sonomark-infra-');
  const built = buildApp({ bundling: false, ...opts, outdir });
  built.app.synth();
  return {
    ...built,
    outdir,
    storageTemplate: Template.fromStack(built.storage),
    pipelineTemplate: Template.fromStack(built.pipeline),
    triggerTemplate: Template.fromStack(built.trigger),
  };
}

type Json = unknown;

/** Turns an Fn::Join'ed DefinitionString into JSON text, tokens replaced by `<...>` placeholders. */
export function definitionOf(template: Template): Record<string, any> {
  const machines = Object.values(template.findResources('AWS::StepFunctions::StateMachine'));
  if (machines.length !== 1) throw new Error(`expected one state machine, found ${machines.length}`);
  const raw = (machines[0] as { Properties: { DefinitionString: Json } }).Properties.DefinitionString;
  const text =
    typeof raw === 'string'
      ? raw
      : ((raw as { 'Fn::Join': [string, Json[]] })['Fn::Join'][1] as Json[])
          .map((p) => (typeof p === 'string' ? p : `<${JSON.stringify(p).replace(/"/g, "'")}>`))
          .join('');
  return JSON.parse(text) as Record<string, any>;
}

/** All statements of every IAM policy-like resource in a template, with where they came from. */
export function allStatements(template: Template): { where: string; statement: Record<string, any> }[] {
  const out: { where: string; statement: Record<string, any> }[] = [];
  const push = (where: string, doc: any) => {
    for (const s of doc?.Statement ?? []) out.push({ where, statement: s });
  };
  for (const [id, r] of Object.entries(template.findResources('AWS::IAM::Policy')))
    push(id, (r as any).Properties.PolicyDocument);
  for (const [id, r] of Object.entries(template.findResources('AWS::IAM::ManagedPolicy')))
    push(id, (r as any).Properties.PolicyDocument);
  for (const [id, r] of Object.entries(template.findResources('AWS::IAM::Role'))) {
    for (const p of (r as any).Properties.Policies ?? []) push(`${id}/${p.PolicyName}`, p.PolicyDocument);
  }
  return out;
}

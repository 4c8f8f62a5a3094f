/**
 * One Lambda function per expert in the model manifest, all running the generic
 * `lambdas/expert/handler.ts`. Each bundle carries onnxruntime-node's linux/arm64
 * binding (the npm package ships it; nothing is downloaded at synth time) and no
 * model: the manifest and the ONNX file are read from the artifacts bucket's
 * models/ at run time (core/bucket-models.ts), sha256-checked on load.
 */
import { Duration } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { ENV, FUNCTIONS, MODELS } from '../../core/contract';
import { FEATURES_PREFIX } from '../../core/keys';
import type { ExpertEntry } from '../../core/schemas';
import { shellQuote as q, SonomarkFunction } from './sonomark-function';

/** The fields of `o` that are set (an explicit `undefined` must not erase a manifest value). */
function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Shell commands that ship onnxruntime-node (package.json, dist/, and only the
 * linux/arm64 N-API binding) plus onnxruntime-common next to the bundle.
 */
export function onnxRuntimeCopyCommands(inputDir: string, outputDir: string): string[] {
  const src = `${inputDir}/node_modules`;
  const dst = `${outputDir}/node_modules`;
  const bin = 'onnxruntime-node/bin/napi-v6/linux/arm64';
  return [
    `mkdir -p ${q(`${dst}/${bin}`)} ${q(`${dst}/onnxruntime-common`)}`,
    `cp ${q(`${src}/onnxruntime-node/package.json`)} ${q(`${dst}/onnxruntime-node/`)}`,
    `cp -R ${q(`${src}/onnxruntime-node/dist`)} ${q(`${dst}/onnxruntime-node/`)}`,
    `cp -R ${q(`${src}/${bin}`)}/. ${q(`${dst}/${bin}`)}`,
    `cp -R ${q(`${src}/onnxruntime-common`)}/. ${q(`${dst}/onnxruntime-common`)}`,
  ];
}

export interface ExpertFunctionProps {
  readonly expert: ExpertEntry;
  /** Absolute path of the models directory (manifest.json and the ONNX files). */
  readonly modelsDir: string;
  readonly artifactsBucket: s3.IBucket;
  readonly resultsTable: dynamodb.ITable;
  readonly encryptionKey: kms.IKey;
  readonly logRetention: logs.RetentionDays;
  readonly vpc: ec2.IVpc;
  readonly securityGroup: ec2.ISecurityGroup;
  /**
   * This deployment's sizing over the manifest's `lambda` block, field by field
   * (config `expertOverrides`).
   * @default - the manifest's values
   */
  readonly sizing?: Partial<ExpertLambdaSizing>;
}

/** Memory, timeout and reserved concurrency of one expert function (the manifest's `lambda` block). */
export type ExpertLambdaSizing = ExpertEntry['lambda'];

export class ExpertFunction extends Construct {
  readonly expert: ExpertEntry;
  readonly fn: SonomarkFunction;
  /** What the function was given: the manifest's sizing with the deployment's overrides. */
  readonly sizing: ExpertLambdaSizing;

  constructor(scope: Construct, id: string, props: ExpertFunctionProps) {
    super(scope, id);
    const { expert } = props;
    this.expert = expert;
    // Each expert is sized on its own: a bigger model gets more memory and time, and its
    // reserved concurrency keeps one busy expert from starving the others (or the account).
    this.sizing = { ...expert.lambda, ...definedOnly(props.sizing ?? {}) };

    this.fn = new SonomarkFunction(this, 'Handler', {
      handler: FUNCTIONS.expert,
      label: `expert-${expert.name}`,
      encryptionKey: props.encryptionKey,
      logRetention: props.logRetention,
      vpc: props.vpc,
      securityGroup: props.securityGroup,
      memorySize: this.sizing.memoryMb,
      timeout: Duration.seconds(this.sizing.timeoutSeconds),
      reservedConcurrentExecutions: this.sizing.reservedConcurrency,
      // No models in the bundle: the function reads the manifest and its model from the
      // artifacts bucket (models/), so publishing a version changes no function code.
      externalModules: ['onnxruntime-node'],
      afterBundling: onnxRuntimeCopyCommands,
    });

    // Least privilege: read features documents (the scan names their bucket) and models/, write result items only.
    this.fn.bindObjects(props.artifactsBucket, props.encryptionKey, { read: FEATURES_PREFIX });
    this.fn.bindObjects(props.artifactsBucket, props.encryptionKey, {
      read: MODELS.bucketPrefix,
      envVar: ENV.artifactsBucket,
    });
    this.fn.bindResultsTable(props.resultsTable, props.encryptionKey);
  }
}

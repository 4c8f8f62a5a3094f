/**
 * `computeMode: 'lambda'`: the extractor as a container-image Lambda function in the one
 * workflow definition, with no Batch, compute environment or interface endpoint.
 */
import { Match } from 'aws-cdk-lib/assertions';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { STATE } from '../../core/contract';
import { estimateScanCost } from '../../core/pricing';
import { DEFAULT_PRICE_TABLE, idleNetworkUsdPerMonth, parseConfig } from '../../lib/config';
import { EXTRACTOR_LAMBDA_TARGET } from '../../lib/constructs/extractor-function';
import { EXTRACTOR_DOCKERFILE } from '../../lib/constructs/gpu-job';
import { scanRates } from '../../lib/rates';
import { PACKAGE_ROOT } from '../../core/paths';
import { definitionOf, synth, type Synthesized } from './helpers';

describe("computeMode 'lambda'", () => {
  let built: Synthesized;
  beforeAll(() => {
    built = synth({ nag: false, context: { sonomark: { computeMode: 'lambda' } } });
  });

  test('Extract invokes the extractor function with the Batch job’s fields and keeps its result shape', () => {
    // Prepare
    const states = definitionOf(built.pipelineTemplate).States as Record<string, any>;
    const fnId = built.pipeline.getLogicalId(built.pipeline.extractorFunction!.function.node.defaultChild as never);
    // Assess
    expect(states[STATE.claimed].Next).toBe(STATE.extract);
    expect(states[STATE.extract]).toMatchObject({
      Type: 'Task',
      Resource: expect.stringMatching(/:states:::lambda:invoke$/),
      Parameters: {
        FunctionName: expect.stringContaining(fnId),
        Payload: {
          'scanId.$': '$.scan.scanId',
          'inputBucket.$': '$.scan.bucket',
          'inputKey.$': '$.scan.key',
          'inputVersionId.$': '$.scan.versionId',
          'featuresBucket.$': '$.scan.featuresBucket',
          'featuresKey.$': '$.scan.featuresKey',
          'modality.$': '$.scan.modality',
        },
      },
      ResultSelector: {
        'jobId.$': '$.Payload.jobId',
        'startedAt.$': '$.Payload.startedAt',
        'stoppedAt.$': '$.Payload.stoppedAt',
      },
      ResultPath: '$.extract',
      Next: STATE.loadExperts,
    });
    expect(states[STATE.extractFailed]).toBeUndefined();
    expect(states[STATE.extractOnDemand]).toBeUndefined();
  });

  test('creates no Batch resource, compute environment, queue-blocked rule or interface endpoint in any stack', () => {
    // Prepare
    const templates = built.app.synth().stacks.map((s) => JSON.stringify(s.template));
    // Assess
    for (const t of templates) {
      expect(t).not.toMatch(/"AWS::Batch::/);
      expect(t).not.toMatch(/"VpcEndpointType":"Interface"/);
      expect(t).not.toMatch(/Batch Job Queue Blocked/);
    }
    expect(built.pipeline.extractor).toBeUndefined();
    expect(idleNetworkUsdPerMonth({ computeMode: 'lambda', network: { endpointAzs: 2 } })).toBe(0);
  });

  test('the function is the arm64 image of the extractor Dockerfile’s Lambda target, sized from config, in the VPC', () => {
    // Assess
    built.pipelineTemplate.hasResourceProperties('AWS::Lambda::Function', {
      PackageType: 'Image',
      Architectures: ['arm64'],
      MemorySize: 2048,
      Timeout: 300,
      EphemeralStorage: { Size: 2560 },
      TracingConfig: { Mode: 'Active' },
      VpcConfig: Match.objectLike({ SubnetIds: Match.anyValue() }),
      KmsKeyArn: Match.anyValue(),
    });
    const assets = JSON.parse(
      readFileSync(path.join(built.outdir, `${built.pipeline.artifactId}.assets.json`), 'utf8'),
    );
    const images = Object.values(assets.dockerImages ?? {}) as { source: Record<string, unknown> }[];
    expect(images.map((i) => i.source)).toContainEqual(
      expect.objectContaining({
        dockerFile: EXTRACTOR_DOCKERFILE,
        dockerBuildTarget: EXTRACTOR_LAMBDA_TARGET,
        platform: 'linux/arm64',
      }),
    );
    // The Dockerfile has that target, with the Lambda entry built from the extractor's sources.
    const dockerfile = readFileSync(path.join(PACKAGE_ROOT, EXTRACTOR_DOCKERFILE), 'utf8');
    expect(dockerfile).toMatch(new RegExp(`^FROM \\S+ AS ${EXTRACTOR_LAMBDA_TARGET}$`, 'm'));
    expect(dockerfile).toMatch(/esbuild gpu-tasks\/feature-extractor\/src\/lambda\.ts/);
  });

  test('the cohort workflow extracts a batch with the same function, not a Batch job', () => {
    // Prepare
    const cohort = built.app.synth().getStackByName(built.cohort.stackName).template as Record<string, any>;
    // Assess
    const text = JSON.stringify(cohort);
    expect(text).toContain('states:::lambda:invoke');
    expect(text).toContain('itemsKey.$');
    expect(text).not.toContain('batch:submitJob');
  });
});

describe("lambda mode's config and price", () => {
  test('refuses a timeout over 900 s and a /tmp too small for the largest upload, saying what is accepted', () => {
    expect(() => parseConfig({ computeMode: 'lambda', lambdaExtractor: { timeoutSeconds: 901 } })).toThrow(
      /lambdaExtractor\.timeoutSeconds/,
    );
    expect(() => parseConfig({ computeMode: 'lambda', lambdaExtractor: { ephemeralStorageMiB: 1024 } })).toThrow(
      /give at least 2560 \(at most 10240\) or lower maxUploadBytes/,
    );
    // The same size is fine with a smaller upload limit, and in another mode the block is ignored.
    expect(() =>
      parseConfig({
        computeMode: 'lambda',
        maxUploadBytes: 256 * 1024 ** 2,
        lambdaExtractor: { ephemeralStorageMiB: 1024 },
      }),
    ).not.toThrow();
    expect(() => parseConfig({ computeMode: 'lambda', network: { egress: 'public-ip' } })).toThrow(
      /computeMode lambda has none/,
    );
    expect(parseConfig({}).computeMode).toBe('gpu');
  });

  test("prices the extractor at the function's GB-seconds plus one request, from the price table", () => {
    // Prepare
    const config = parseConfig({ computeMode: 'lambda', lambdaExtractor: { memoryMb: 4096 } });
    const rates = scanRates(config, []);
    const { usdPerGbSecond, usdPerRequest } = DEFAULT_PRICE_TABLE.lambdaArm64;
    // Act
    const cost = estimateScanCost({ extractorSeconds: 10, expertMs: {} }, rates)!;
    // Assess
    expect(rates.extractor.minimumSeconds).toBe(0);
    expect(rates.extractor.usdPerSecond).toBeCloseTo(4 * usdPerGbSecond, 12);
    expect(cost.extractorUsd).toBeCloseTo(10 * 4 * usdPerGbSecond + usdPerRequest, 6);
    expect(rates.basis).toMatch(/Lambda arm64 4096 MB/);
    expect(rates.basis).not.toMatch(/spot/);
  });
});

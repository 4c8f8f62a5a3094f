/**
 * The one deployment configuration of the sonomark CDK app, read from CDK context.
 *
 * Context key `sonomark` holds an object (cdk.json, or `-c sonomark='{"computeMode":"cpu"}'`
 * on the command line, where it arrives as a JSON string). Every field has a default,
 * so an empty context synthesizes a working, environment-agnostic app: nothing here
 * names an account, a region or looks anything up.
 */
import { z } from 'zod';
import { SegmentId } from './schemas';

export const CONTEXT_KEY = 'sonomark';

/** CloudWatch Logs accepts only these retention periods (days). */
const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

export const SonomarkConfig = z
  .object({
    /**
     * Sites allowed to upload. When set, the EventBridge rule only matches
     * `uploads/{siteId}/...` for these sites; when absent, any site prefix matches
     * (Validate still checks the key shape).
     * @default - every site
     */
    siteIds: z.array(SegmentId).min(1).optional(),
    /**
     * EC2 instance types of the GPU compute environments. g5 (A10G) and g6 (L4)
     * are the cheapest single-GPU NVIDIA families that run the CUDA build of onnxruntime.
     * @default ['g5.xlarge', 'g6.xlarge']
     */
    gpuInstanceTypes: z
      .array(z.string().regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, 'must be an EC2 instance type such as g5.xlarge'))
      .min(1)
      .default(['g5.xlarge', 'g6.xlarge']),
    /**
     * Where the extractor runs: `gpu` = Batch on EC2 GPU (spot first, on-demand
     * fallback); `cpu` = Batch on Fargate (no GPU quota needed; slower, fine for
     * small studies and accounts without G-instance quota).
     * @default 'gpu'
     */
    computeMode: z.enum(['gpu', 'cpu']).default('gpu'),
    /**
     * Maximum vCPUs each Batch compute environment may scale to.
     * @default 16
     */
    maxvCpus: z.number().int().min(1).max(10000).default(16),
    /**
     * Retention of every log group the app creates (Lambda, state machine, Batch).
     * @default 365
     */
    logRetentionDays: z
      .number()
      .int()
      .refine((d) => (LOG_RETENTION_DAYS as readonly number[]).includes(d), {
        message: `must be one of ${LOG_RETENTION_DAYS.join(', ')}`,
      })
      .default(365),
    /**
     * Email subscribed to the alarm topic (a subscription confirmation is sent).
     * @default - no subscription; subscribe to the topic yourself
     */
    alarmEmail: z.email().optional(),
    /**
     * Largest clip Validate accepts, in bytes (passed to the Lambda as MAX_UPLOAD_BYTES).
     * @default 2 GiB
     */
    maxUploadBytes: z
      .number()
      .int()
      .positive()
      .default(2 * 1024 ** 3),
    /**
     * Extractor job timeout in seconds (Batch attempt timeout and the Step Functions task timeout).
     * @default 3600
     */
    extractTimeoutSeconds: z.number().int().min(60).max(86400).default(3600),
  })
  .strict();

export type SonomarkConfig = z.infer<typeof SonomarkConfig>;

/** Parses the `sonomark` context value (an object, a JSON string, or absent). */
export function parseConfig(raw: unknown): SonomarkConfig {
  let value: unknown = raw ?? {};
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch (err) {
      throw new Error(`CDK context "${CONTEXT_KEY}" is not valid JSON: ${(err as Error).message}`);
    }
  }
  const parsed = SonomarkConfig.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new Error(`Invalid CDK context "${CONTEXT_KEY}": ${issues}`);
  }
  return parsed.data;
}

/** Reads the config from a construct's context (`node.tryGetContext('sonomark')`). */
export function configFromContext(node: { tryGetContext(key: string): unknown }): SonomarkConfig {
  return parseConfig(node.tryGetContext(CONTEXT_KEY));
}

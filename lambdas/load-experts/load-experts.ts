/**
 * LoadExperts: the Score step's expert list, read from the model manifest at run time (in the
 * cloud, the artifacts bucket's copy; locally, the data dir's or the package's manifest), so
 * publishing a new expert version needs no redeploy of the state machine and no image rebuild.
 * Only the experts of the scan's modality score it (each reads its modality's extractor's features).
 * Each expert is paired with the function that runs it; an expert the deployment has no
 * function for (a new expert name) is refused with what to do.
 */
import { ModelError } from '../../core/errors';
import { expertsFor } from '../../core/manifest';
import { ScanRef, type Manifest } from '../../core/schemas';
import { parsePayload } from '../../core/zod-parse';
import { z } from 'zod';

export { readBucketManifest } from '../../core/bucket-models';

/** One Score iteration's expert: the manifest entry's identity and the function that runs it. */
export interface WorkflowExpertRef {
  readonly name: string;
  readonly version: string;
  readonly file: string;
  readonly sha256: string;
  readonly functionArn: string;
}

export interface LoadExpertsDeps {
  /** The manifest to read now (S3 in the cloud, a file locally). */
  readonly manifest: () => Promise<Manifest>;
  /** Deployed expert functions by expert name. */
  readonly functions: Readonly<Record<string, string>>;
}

export const LoadExpertsInput = z.object({ scan: ScanRef });

/** `{list}`: an object, because a Lambda task's ResultSelector can only build one (workflow.ts). */
export async function loadExperts(input: unknown, deps: LoadExpertsDeps): Promise<{ list: WorkflowExpertRef[] }> {
  const { scan } = parsePayload(LoadExpertsInput, input, 'LoadExperts input');
  const manifest = await deps.manifest();
  // A scan is scored by the experts of its modality only: each reads its own extractor's features.
  const experts = expertsFor(manifest, scan.modality);
  if (experts.length === 0) {
    throw new ModelError(
      `The model manifest lists no ${scan.modality} experts` +
        (manifest.experts.length > 0
          ? ` (only ${[...new Set(manifest.experts.map((e) => e.extractor.modality))].join(', ')} ones)`
          : '') +
        ': publish one (sonomark experts publish) before scoring.',
    );
  }
  const list = experts.map((e) => {
    const functionArn = deps.functions[e.name];
    if (!functionArn) {
      throw new ModelError(
        `Expert "${e.name}" is in the manifest but this deployment has no function for it ` +
          `(it has: ${Object.keys(deps.functions).join(', ') || 'none'}): deploy the pipeline again to add a new expert.`,
      );
    }
    if (e.extractor.name !== scan.extractor.name || e.extractor.version !== scan.extractor.version) {
      throw new ModelError(
        `Expert "${e.name}"@${e.version} reads ${e.extractor.name}@${e.extractor.version} features, but this scan was ` +
          `extracted by ${scan.extractor.name}@${scan.extractor.version}.`,
      );
    }
    return { name: e.name, version: e.version, file: e.file, sha256: e.sha256, functionArn };
  });
  return { list };
}

/**
 * The biomarker vocabulary of sonomark, in the order the extractor emits it.
 *
 * The order is part of the extractor's output contract: the ONNX output
 * `biomarkers` is [N, BIOMARKERS.length] in exactly this order, and the
 * manifest's extractor entry repeats it so a model trained with another order
 * is rejected at load time rather than silently mislabelled.
 */
export const BIOMARKERS = [
  'a_lines',
  'b_lines',
  'pleural_irregularity',
  'consolidation',
  'effusion',
  'healthy_pattern',
] as const;

export type Biomarker = (typeof BIOMARKERS)[number];

/** Clip-level statistics computed per biomarker, in feature-vector order. */
export const CLIP_STATISTICS = ['mean', 'max', 'p90', 'fractionAbove'] as const;
export type ClipStatistic = (typeof CLIP_STATISTICS)[number];

/** Probability above which a frame counts as showing a biomarker (`fractionAbove`). */
export const FRAME_THRESHOLD = 0.5;

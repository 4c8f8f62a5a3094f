/**
 * Public API of the feature extractor, for local mode, the CLI and the training
 * dataset builder: import from here, not from the individual modules.
 */
export {
  decodeFrames,
  decodeFrameBytes,
  uniformSampleIndices,
  toFloat01,
  toUint8Frames,
  framePgm,
  defaultFfmpegPath,
  DEFAULT_FRAME_SIZE,
  DEFAULT_MAX_FRAMES,
  MAX_DECODED_FRAMES,
  type DecodeOptions,
  type DecodedClip,
  type DecodedClipBytes,
  type Preprocessing,
} from './decode';
export {
  createExtractorSession,
  cudaProviderInstalled,
  type ExecutionProviderChoice,
  type ExecutionProviderInUse,
  type ExtractorSession,
  type ExtractorSessionOptions,
} from './infer';
export { extractFeatures, type ExtractFeaturesInput } from './extract';
export {
  runExtractJob,
  readExtractEnv,
  cachedExtractorSession,
  releaseCachedSessions,
  type ExtractJobConfig,
  type ExtractJobDeps,
  type ExtractJobResult,
} from './main';

/**
 * This deployment's rates (core/pricing.ts ScanRates) from its config: resolved once by
 * the CDK app, handed to the Finalize function as an environment variable, and by local
 * mode to the same handler. Lives beside the config because only the deploying side
 * knows the instance types, the Fargate size and the price table.
 */
import type { ScanRates } from '../core/pricing';
import type { SonomarkConfig } from './config';

type PricingConfig = Pick<SonomarkConfig, 'computeMode' | 'gpuInstanceTypes' | 'cpuJob' | 'prices'> &
  Partial<Pick<SonomarkConfig, 'lambdaExtractor'>>;

/** The extractor's rate for `config.computeMode`, at on-demand list prices, and what it is. */
function extractorRate(config: PricingConfig): {
  usdPerHour: number;
  minimumSeconds: number;
  usdPerRun?: number;
  capacity: string;
} {
  const { prices } = config;
  if (config.computeMode === 'lambda') {
    // Lambda bills the configured memory per GB-second of duration (1 ms granularity, no
    // minimum) and a fee per request. Ephemeral storage above 512 MB is billed too, at a
    // small fraction of the memory rate: left out of this estimate.
    const memoryMb = config.lambdaExtractor?.memoryMb;
    if (memoryMb === undefined) throw new Error('computeMode lambda needs lambdaExtractor.memoryMb to be priced.');
    return {
      usdPerHour: (memoryMb / 1024) * prices.lambdaArm64.usdPerGbSecond * 3600,
      minimumSeconds: 0,
      usdPerRun: prices.lambdaArm64.usdPerRequest,
      capacity: `Lambda arm64 ${memoryMb} MB`,
    };
  }
  if (config.computeMode === 'cpu') {
    const { architecture, vcpus, memoryMiB } = config.cpuJob;
    const rates = prices.fargate[architecture];
    return {
      usdPerHour: vcpus * rates.vcpuUsdPerHour + (memoryMiB / 1024) * rates.gbUsdPerHour,
      minimumSeconds: prices.fargate.minimumSeconds,
      capacity: `Fargate ${architecture} ${vcpus} vCPU ${memoryMiB} MiB on-demand`,
    };
  }
  let dearest: { type: string; usdPerHour: number } | undefined;
  for (const type of config.gpuInstanceTypes) {
    const price = prices.gpuInstances[type];
    if (price === undefined) throw new Error(`The price table has no price for GPU instance type ${type}.`);
    if (dearest === undefined || price.onDemandUsdPerHour > dearest.usdPerHour)
      dearest = { type, usdPerHour: price.onDemandUsdPerHour };
  }
  if (dearest === undefined) throw new Error('No GPU instance types configured.');
  return { usdPerHour: dearest.usdPerHour, minimumSeconds: 0, capacity: `${dearest.type} on-demand` };
}

/** This deployment's rates, from its config and the memory size of each expert function. */
export function scanRates(
  config: PricingConfig,
  experts: readonly { readonly name: string; readonly memoryMb: number }[],
): ScanRates {
  const extractor = extractorRate(config);
  return {
    basis: `${config.prices.source}; extractor at ${extractor.capacity}${config.computeMode === 'lambda' ? '' : ' (a ceiling: spot runs first)'}`,
    extractor: {
      usdPerSecond: extractor.usdPerHour / 3600,
      minimumSeconds: extractor.minimumSeconds,
      ...(extractor.usdPerRun !== undefined ? { usdPerRun: extractor.usdPerRun } : {}),
    },
    lambda: { ...config.prices.lambdaArm64 },
    expertMemoryMb: Object.fromEntries(experts.map((e) => [e.name, e.memoryMb])),
    usdPerStateTransition: config.prices.stepFunctionsStandard.usdPerStateTransition,
  };
}

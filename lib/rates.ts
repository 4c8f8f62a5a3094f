/**
 * This deployment's rates (core/pricing.ts ScanRates) from its config: resolved once by
 * the CDK app, handed to the Finalize function as an environment variable, and by local
 * mode to the same handler. Lives beside the config because only the deploying side
 * knows the instance types, the Fargate size and the price table.
 */
import type { ScanRates } from '../core/pricing';
import type { SonomarkConfig } from './config';

type PricingConfig = Pick<SonomarkConfig, 'computeMode' | 'gpuInstanceTypes' | 'cpuJob' | 'prices'>;

/** The extractor's rate for `config.computeMode`, at on-demand list prices, and what it is. */
function extractorRate(config: PricingConfig): { usdPerHour: number; minimumSeconds: number; capacity: string } {
  const { prices } = config;
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
    basis: `${config.prices.source}; extractor at ${extractor.capacity} (a ceiling: spot runs first)`,
    extractor: { usdPerSecond: extractor.usdPerHour / 3600, minimumSeconds: extractor.minimumSeconds },
    lambda: { ...config.prices.lambdaArm64 },
    expertMemoryMb: Object.fromEntries(experts.map((e) => [e.name, e.memoryMb])),
    usdPerStateTransition: config.prices.stepFunctionsStandard.usdPerStateTransition,
  };
}

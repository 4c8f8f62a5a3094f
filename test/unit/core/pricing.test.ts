import { DEFAULT_PRICE_TABLE, parseConfig } from '../../../lib/config';
import { ENV } from '../../../core/contract';
import { jsonEnv } from '../../../core/env';
import {
  COMPLETED_SCAN_STATES,
  estimateScanCost,
  FIXED_LAMBDA_REQUESTS_PER_SCAN,
  ScanRates,
} from '../../../core/pricing';
import { scanRates } from '../../../lib/rates';

const EXPERTS = [
  { name: 'diagnosis', memoryMb: 1024 },
  { name: 'triage', memoryMb: 512 },
];

describe('scanRates', () => {
  test('GPU mode prices the extractor at the dearest configured instance type, on demand', () => {
    // Act
    const rates = scanRates(parseConfig(undefined), EXPERTS);
    // Assess: g5.xlarge ($1.006/h) is dearer than g6.xlarge ($0.8048/h)
    expect(rates.extractor.usdPerSecond).toBeCloseTo(1.006 / 3600, 12);
    expect(rates.extractor.minimumSeconds).toBe(0);
    expect(rates.basis).toContain('g5.xlarge on-demand');
    expect(rates.basis).toContain(DEFAULT_PRICE_TABLE.source);
    expect(rates.lambda).toEqual(DEFAULT_PRICE_TABLE.lambdaArm64);
    expect(rates.expertMemoryMb).toEqual({ diagnosis: 1024, triage: 512 });
    expect(rates.usdPerStateTransition).toBe(0.000025);
  });

  test('CPU mode prices the Fargate task (vCPU-hours + GB-hours of its architecture) with its one-minute minimum', () => {
    // Act
    const rates = scanRates(
      parseConfig({ computeMode: 'cpu', cpuJob: { architecture: 'arm64', vcpus: 4, memoryMiB: 8192 } }),
      EXPERTS,
    );
    // Assess
    expect(rates.extractor.usdPerSecond).toBeCloseTo((4 * 0.03238 + 8 * 0.00356) / 3600, 12);
    expect(rates.extractor.minimumSeconds).toBe(60);
    expect(rates.basis).toContain('Fargate arm64 4 vCPU 8192 MiB on-demand');
  });

  test('uses a price table given in config', () => {
    // Act
    const rates = scanRates(
      parseConfig({
        gpuInstanceTypes: ['g6.xlarge'],
        prices: { source: 'eu-west-1 list prices', gpuInstances: { 'g6.xlarge': { onDemandUsdPerHour: 0.9 } } },
      }),
      EXPERTS,
    );
    // Assess: the given keys replace the default's, the others stay
    expect(rates.extractor.usdPerSecond).toBeCloseTo(0.9 / 3600, 12);
    expect(rates.basis).toMatch(/^eu-west-1 list prices; /);
    expect(rates.lambda).toEqual(DEFAULT_PRICE_TABLE.lambdaArm64);
  });

  test('the rates survive the JSON round trip through the environment', () => {
    // Prepare
    const rates = scanRates(parseConfig(undefined), EXPERTS);
    // Act / Assess
    expect(ScanRates.parse(JSON.parse(JSON.stringify(rates)))).toEqual(rates);
  });
});

describe('estimateScanCost', () => {
  const rates: ScanRates = {
    basis: 'test prices',
    extractor: { usdPerSecond: 0.0002, minimumSeconds: 0 },
    lambda: { usdPerGbSecond: 0.00002, usdPerRequest: 0.0000002 },
    expertMemoryMb: { diagnosis: 1024, triage: 512 },
    usdPerStateTransition: 0.000025,
  };

  test('sums extractor seconds, expert GB-seconds, requests and state transitions', () => {
    // Act
    const cost = estimateScanCost({ extractorSeconds: 30, expertMs: { diagnosis: 100, triage: 200 } }, rates);
    // Assess: 30 s × 0.0002; (0.1 s × 1 GB + 0.2 s × 0.5 GB) × 0.00002; (4 + 2) requests; (10 + 2) transitions
    expect(cost).toEqual({
      extractorUsd: 0.006,
      expertsUsd: 0.000004,
      requestsUsd: 0.0000012,
      stateTransitionsUsd: 0.0003,
      totalUsd: 0.0063052,
      basis: 'test prices',
    });
    expect(FIXED_LAMBDA_REQUESTS_PER_SCAN + 2).toBe(6);
    expect(COMPLETED_SCAN_STATES.length + 2).toBe(12);
  });

  test('bills at least the minimum seconds (Fargate)', () => {
    // Act
    const cost = estimateScanCost(
      { extractorSeconds: 12, expertMs: {} },
      { ...rates, extractor: { usdPerSecond: 0.0001, minimumSeconds: 60 } },
    );
    // Assess
    expect(cost?.extractorUsd).toBe(0.006);
  });

  test('is null without measured extractor seconds, or for an expert the rates do not know', () => {
    // Assess
    expect(estimateScanCost({ extractorSeconds: null, expertMs: { diagnosis: 1 } }, rates)).toBeNull();
    expect(estimateScanCost({ extractorSeconds: 1, expertMs: { unknown: 1 } }, rates)).toBeNull();
  });

  test('a 30-second GPU scan with three 1 GB experts at the default list prices is about one cent', () => {
    // Prepare
    const defaults = scanRates(parseConfig(undefined), [
      { name: 'a', memoryMb: 1024 },
      { name: 'b', memoryMb: 1024 },
      { name: 'c', memoryMb: 1024 },
    ]);
    // Act
    const cost = estimateScanCost({ extractorSeconds: 30, expertMs: { a: 5, b: 5, c: 5 } }, defaults);
    // Assess: 30 × 1.006 / 3600 ≈ $0.00838, plus 13 transitions ($0.000325), 7 requests and 15 ms of 1 GB
    expect(cost?.totalUsd).toBeCloseTo(0.00871, 6);
  });
});

describe('config price table', () => {
  test('the default table holds the default GPU instance types and reuses the endpoint price', () => {
    // Act
    const config = parseConfig(undefined);
    // Assess
    expect(config.prices).toEqual(DEFAULT_PRICE_TABLE);
    for (const type of config.gpuInstanceTypes) expect(config.prices.gpuInstances[type]).toBeDefined();
    expect(config.prices.interfaceEndpoint.usdPerAzHour).toBe(0.01);
  });

  test('GPU mode refuses an instance type without a price; CPU mode does not need one', () => {
    // Assess
    expect(() => parseConfig({ gpuInstanceTypes: ['p5.48xlarge'] })).toThrow(/prices.gpuInstances.p5.48xlarge/);
    expect(() => parseConfig({ computeMode: 'cpu', gpuInstanceTypes: ['p5.48xlarge'] })).not.toThrow();
  });

  test.each([
    [{ prices: { lambdaArm64: { usdPerGbSecond: -1, usdPerRequest: 0 } } }, /prices.lambdaArm64.usdPerGbSecond/],
    [{ prices: { nosuch: 1 } }, /Unrecognized key|nosuch/],
  ])('rejects %j, naming the field', (raw, message) => {
    expect(() => parseConfig(raw)).toThrow(message);
  });
});

describe('SCAN_RATES environment variable', () => {
  const valid = JSON.stringify(scanRates(parseConfig(undefined), EXPERTS));

  test('parses and validates the JSON the CDK app writes', () => {
    // Act
    const rates = jsonEnv(ENV.scanRates, ScanRates, { [ENV.scanRates]: valid });
    // Assess
    expect(rates.expertMemoryMb).toEqual({ diagnosis: 1024, triage: 512 });
  });

  test.each([
    ['unset', {}, /SCAN_RATES is required/],
    ['not JSON', { SCAN_RATES: 'not json' }, /SCAN_RATES is not valid JSON/],
    [
      'a negative price',
      { SCAN_RATES: JSON.stringify({ ...JSON.parse(valid), usdPerStateTransition: -1 }) },
      /SCAN_RATES is invalid: usdPerStateTransition/,
    ],
    ['an unknown key', { SCAN_RATES: JSON.stringify({ ...JSON.parse(valid), extra: 1 }) }, /SCAN_RATES is invalid/],
  ])('fails fast with a ConfigError naming the variable: %s', (_what, env, message) => {
    expect(() => jsonEnv(ENV.scanRates, ScanRates, env)).toThrow(message);
    expect(() => jsonEnv(ENV.scanRates, ScanRates, env)).toThrow(expect.objectContaining({ name: 'ConfigError' }));
  });
});

import {
  configFromContext,
  idleNetworkUsdPerMonth,
  interfaceEndpointsFor,
  INTERFACE_ENDPOINTS,
  parseConfig,
  sitePriceTable,
  uploadSiteIds,
} from '../../lib/config';
import { DEFAULT_INPUT_LIMITS } from '../../core/limits';

const context = (values: Record<string, unknown>) => ({ tryGetContext: (key: string) => values[key] });

describe('SonomarkConfig', () => {
  test('an empty context gives the documented defaults', () => {
    // Act
    const config = parseConfig(undefined);
    // Assess
    expect(config).toMatchObject({
      computeMode: 'gpu',
      gpuInstanceTypes: ['g4dn.xlarge', 'g5.xlarge', 'g6.xlarge'],
      cpuJob: { architecture: 'x86_64', vcpus: 2, memoryMiB: 4096 },
      runnableTimeLimitMinutes: 30,
      spotCapacityWaitMinutes: 10,
      admission: { maxRunningScans: 64, starterConcurrency: 2, batchSize: 10, maxReceiveCount: 50 },
      network: { maxAzs: 2, endpointAzs: 2, egress: 'endpoints' },
      expertOverrides: {},
    });
  });

  test('site registry: empty by default (any site may upload, as before); ids validated, unique; a plan overrides prices', () => {
    // Act
    const defaults = parseConfig(undefined);
    const two = parseConfig({
      sites: [
        { id: 'site-a', displayName: 'Hospital A' },
        {
          id: 'site-b',
          displayName: 'Clinic B',
          prices: { lambdaArm64: { usdPerGbSecond: 0.00001, usdPerRequest: 0 } },
        },
      ],
    });
    // Assess
    expect(defaults.sites).toEqual([]);
    expect(uploadSiteIds(defaults)).toBeUndefined();
    expect(uploadSiteIds(two)).toEqual(['site-a', 'site-b']);
    expect(uploadSiteIds(parseConfig({ ...two, siteIds: ['site-a'] }))).toEqual(['site-a']);
    expect(sitePriceTable(two, two.sites[0])).toEqual(two.prices);
    expect(sitePriceTable(two, two.sites[1]).lambdaArm64).toEqual({ usdPerGbSecond: 0.00001, usdPerRequest: 0 });
    expect(sitePriceTable(two, two.sites[1]).gpuInstances).toEqual(two.prices.gpuInstances);
    expect(() => parseConfig({ sites: [{ id: 'a/b', displayName: 'x' }] })).toThrow(/sites\.0\.id/);
    expect(() =>
      parseConfig({
        sites: [
          { id: 'a', displayName: 'x' },
          { id: 'a', displayName: 'y' },
        ],
      }),
    ).toThrow(/registered twice/);
    expect(() => parseConfig({ sites: [{ id: 'a', displayName: 'x', plan: 1 }] })).toThrow(/sites/);
  });

  test('`computeMode` alone on the command line overrides the sonomark object', () => {
    // Act
    const config = configFromContext(context({ sonomark: { computeMode: 'gpu', maxvCpus: 8 }, computeMode: 'cpu' }));
    // Assess
    expect(config.computeMode).toBe('cpu');
    expect(config.maxvCpus).toBe(8);
  });

  test('input limits: the documented defaults, each key given replaces its default, unknown keys are refused', () => {
    // Act
    const defaults = parseConfig(undefined).limits;
    const shorter = parseConfig({ limits: { maxDurationSeconds: 120 } }).limits;
    // Assess
    expect(defaults).toEqual(DEFAULT_INPUT_LIMITS);
    expect(shorter).toEqual({ ...DEFAULT_INPUT_LIMITS, maxDurationSeconds: 120 });
    expect(() => parseConfig({ limits: { maxPixels: 1 } })).toThrow(/limits/);
  });

  test('the sonomark object may arrive as a JSON string (-c sonomark=...)', () => {
    // Act
    const config = configFromContext(context({ sonomark: '{"network":{"endpointAzs":1}}' }));
    // Assess
    expect(config.network).toEqual({ maxAzs: 2, endpointAzs: 1, egress: 'endpoints' });
  });

  test.each([
    [{ computeMode: 'tpu' }, /computeMode/],
    [{ nosuch: 1 }, /Unrecognized key|nosuch/],
    [{ runnableTimeLimitMinutes: 1441 }, /runnableTimeLimitMinutes/],
    [{ network: { maxAzs: 3 } }, /network.maxAzs/],
    [{ network: { egress: 'nat' } }, /network.egress/],
    [
      { network: { egress: 'public-ip', endpointAzs: 1 } },
      /network.endpointAzs: endpointAzs applies to egress 'endpoints' only/,
    ],
    [{ cpuJob: { vcpus: 3 } }, /cpuJob.vcpus/],
    [{ expertOverrides: { diagnosis: { memoryMb: 64 } } }, /expertOverrides.diagnosis.memoryMb/],
  ])('rejects %j, naming the field', (raw, message) => {
    // Assess
    expect(() => parseConfig(raw)).toThrow(message);
  });

  test('interface endpoints: six for GPU hosts (ECR, Logs, ECS agent), three for Fargate (ECR, Logs)', () => {
    // Assess
    expect(interfaceEndpointsFor('gpu')).toEqual(Object.keys(INTERFACE_ENDPOINTS));
    expect(interfaceEndpointsFor('cpu')).toEqual(['ecr.api', 'ecr.dkr', 'logs']);
  });

  test.each([
    ['gpu', 2, 87.6],
    ['gpu', 1, 43.8],
    ['cpu', 2, 43.8],
    ['cpu', 1, 21.9],
  ] as const)(
    'idle network cost, %s mode with endpoints in %d AZ(s): $%d per month',
    (computeMode, endpointAzs, usd) => {
      // Act / Assess
      expect(idleNetworkUsdPerMonth({ computeMode, network: { maxAzs: 2, endpointAzs } })).toBe(usd);
    },
  );

  test("idle network cost uses the price table's endpoint price, the us-east-1 list price by default", () => {
    // Prepare
    const config = parseConfig({ prices: { interfaceEndpoint: { usdPerAzHour: 0.012 } } });
    // Act / Assess: 6 endpoints × 2 AZs × 730 h
    expect(config.prices.interfaceEndpoint.usdPerAzHour).toBe(0.012);
    expect(idleNetworkUsdPerMonth(config)).toBe(105.12);
    expect(idleNetworkUsdPerMonth(parseConfig(undefined))).toBe(87.6);
  });

  test("network.egress 'public-ip': no interface endpoints, so the network costs $0 at rest", () => {
    // Act
    const config = configFromContext(context({ sonomark: '{"network":{"egress":"public-ip"}}', computeMode: 'cpu' }));
    // Assess
    expect(config.network).toEqual({ maxAzs: 2, endpointAzs: 0, egress: 'public-ip' });
    expect(parseConfig({ network: { egress: 'public-ip', maxAzs: 1 } }).network).toEqual({
      maxAzs: 1,
      endpointAzs: 0,
      egress: 'public-ip',
    });
    for (const computeMode of ['gpu', 'cpu'] as const) {
      expect(interfaceEndpointsFor(computeMode, 'public-ip')).toEqual([]);
      expect(idleNetworkUsdPerMonth(parseConfig({ computeMode, network: { egress: 'public-ip' } }))).toBe(0);
    }
  });

  test.each([
    ['gpu', 87.6],
    ['cpu', 43.8],
  ] as const)(
    "network.egress 'endpoints' (given explicitly) costs what the default does: %s $%d",
    (computeMode, usd) => {
      // Act
      const config = parseConfig({ computeMode, network: { egress: 'endpoints' } });
      // Assess
      expect(config.network).toEqual({ maxAzs: 2, endpointAzs: 2, egress: 'endpoints' });
      expect(interfaceEndpointsFor(computeMode, 'endpoints')).toEqual(interfaceEndpointsFor(computeMode));
      expect(idleNetworkUsdPerMonth(config)).toBe(usd);
      expect(idleNetworkUsdPerMonth(parseConfig({ computeMode }))).toBe(usd);
    },
  );
});

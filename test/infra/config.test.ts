import {
  configFromContext,
  idleNetworkUsdPerMonth,
  interfaceEndpointsFor,
  INTERFACE_ENDPOINTS,
  parseConfig,
} from '../../lib/config';

const context = (values: Record<string, unknown>) => ({ tryGetContext: (key: string) => values[key] });

describe('SonomarkConfig', () => {
  test('an empty context gives the documented defaults', () => {
    // Act
    const config = parseConfig(undefined);
    // Assess
    expect(config).toMatchObject({
      computeMode: 'gpu',
      gpuInstanceTypes: ['g5.xlarge', 'g6.xlarge'],
      cpuJob: { architecture: 'x86_64', vcpus: 2, memoryMiB: 4096 },
      runnableTimeLimitMinutes: 30,
      network: { maxAzs: 2, endpointAzs: 2 },
      expertOverrides: {},
    });
  });

  test('`computeMode` alone on the command line overrides the sonomark object', () => {
    // Act
    const config = configFromContext(context({ sonomark: { computeMode: 'gpu', maxvCpus: 8 }, computeMode: 'cpu' }));
    // Assess
    expect(config.computeMode).toBe('cpu');
    expect(config.maxvCpus).toBe(8);
  });

  test('the sonomark object may arrive as a JSON string (-c sonomark=...)', () => {
    // Act
    const config = configFromContext(context({ sonomark: '{"network":{"endpointAzs":1}}' }));
    // Assess
    expect(config.network).toEqual({ maxAzs: 2, endpointAzs: 1 });
  });

  test.each([
    [{ computeMode: 'tpu' }, /computeMode/],
    [{ nosuch: 1 }, /Unrecognized key|nosuch/],
    [{ runnableTimeLimitMinutes: 1441 }, /runnableTimeLimitMinutes/],
    [{ network: { maxAzs: 3 } }, /network.maxAzs/],
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
});

import { LOCAL_RETRY_FLOOR_SECONDS, scaleRetries } from '../../../local/retry';

const definition = {
  StartAt: 'A',
  States: {
    A: {
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke',
      Retry: [
        {
          ErrorEquals: ['Sonomark.TransientError'],
          IntervalSeconds: 5,
          MaxAttempts: 8,
          BackoffRate: 2,
          MaxDelaySeconds: 120,
          JitterStrategy: 'FULL',
        },
        { ErrorEquals: ['Lambda.ServiceException'] },
      ],
      Next: 'M',
    },
    M: {
      Type: 'Map',
      ItemProcessor: {
        StartAt: 'B',
        States: { B: { Type: 'Task', Resource: 'x', Retry: [{ ErrorEquals: ['E'], IntervalSeconds: 2 }], End: true } },
      },
      End: true,
    },
  },
};

describe('scaleRetries', () => {
  it('scales every interval and cap, nested states included, and keeps everything else', () => {
    // Act
    const scaled = scaleRetries(definition) as typeof definition;
    // Assess
    expect(scaled.States.A.Retry[0]).toEqual({
      ErrorEquals: ['Sonomark.TransientError'],
      IntervalSeconds: 0.005,
      MaxAttempts: 8,
      BackoffRate: 2,
      MaxDelaySeconds: 0.12,
      JitterStrategy: 'FULL',
    });
    // ASL's default interval (1 s) is made explicit, then scaled and floored.
    expect(scaled.States.A.Retry[1]).toEqual({
      ErrorEquals: ['Lambda.ServiceException'],
      IntervalSeconds: LOCAL_RETRY_FLOOR_SECONDS,
    });
    expect(scaled.States.M.ItemProcessor.States.B.Retry[0]!.IntervalSeconds).toBe(LOCAL_RETRY_FLOOR_SECONDS);
    expect({ ...scaled, States: {} }).toEqual({ ...definition, States: {} });
  });

  it('leaves the given definition untouched', () => {
    // Prepare
    const before = JSON.stringify(definition);
    // Act
    scaleRetries(definition, { scale: 0.5, floorSeconds: 0 });
    // Assess
    expect(JSON.stringify(definition)).toBe(before);
  });

  it('refuses a scale of zero: retries would not wait at all', () => {
    // Act / Assess
    expect(() => scaleRetries(definition, { scale: 0 })).toThrow(/retry scale must be > 0/);
  });
});

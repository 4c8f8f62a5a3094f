/**
 * Every state's Retry and Catch blocks, whole: the synthesized definition is walked
 * (the Map's item processor included) and each Task state's blocks are compared with
 * the expected ones, in order, so a retrier dropped, reordered or widened on any state
 * fails here, not only on the first state someone thought to check.
 */
import { STATE } from '../../core/contract';
import { TRANSIENT_ERROR_NAME } from '../../core/errors';
import { BATCH_TRANSIENT_ERRORS, LAMBDA_TRANSIENT_ERRORS } from '../../lib/constructs/workflow';
import { definitionOf, synth } from './helpers';

type States = Record<string, Record<string, any>>;

/** Every state of the definition, nested ones (Map item processors, Parallel branches) included. */
function allStates(definition: Record<string, any>): [string, Record<string, any>][] {
  const out: [string, Record<string, any>][] = [];
  const visit = (states: States) => {
    for (const [name, state] of Object.entries(states)) {
      out.push([name, state]);
      const inner = state.ItemProcessor ?? state.Iterator;
      if (inner?.States) visit(inner.States as States);
      for (const branch of (state.Branches ?? []) as { States: States }[]) visit(branch.States);
    }
  };
  visit(definition.States as States);
  return out;
}

const transient = {
  ErrorEquals: [TRANSIENT_ERROR_NAME],
  IntervalSeconds: 5,
  MaxAttempts: 8,
  BackoffRate: 2,
  MaxDelaySeconds: 120,
  JitterStrategy: 'FULL',
};
const lambdaService = (attempts: number) => ({
  ErrorEquals: LAMBDA_TRANSIENT_ERRORS,
  IntervalSeconds: 2,
  MaxAttempts: attempts,
  BackoffRate: 2,
  MaxDelaySeconds: 30,
  JitterStrategy: 'FULL',
});
// A Lambda invocation that ran past its timeout: twice more (workflow.ts LAMBDA_TIMEOUT_RETRY says why).
const lambdaTimeout = {
  ErrorEquals: ['Sandbox.Timedout'],
  IntervalSeconds: 5,
  MaxAttempts: 2,
  BackoffRate: 2,
  JitterStrategy: 'FULL',
};
const batchService = {
  ErrorEquals: BATCH_TRANSIENT_ERRORS,
  IntervalSeconds: 5,
  MaxAttempts: 5,
  BackoffRate: 2,
  MaxDelaySeconds: 120,
  JitterStrategy: 'FULL',
};
const toRecordFailure = [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: STATE.recordFailure }];

/** The expected blocks of every state that may have them; `undefined` = the state must have none. */
const EXPECTED: Record<string, { Retry?: unknown[]; Catch?: unknown[] }> = {
  [STATE.validate]: { Retry: [transient, lambdaService(5), lambdaTimeout], Catch: toRecordFailure },
  // A failed Extract goes to the ExtractFailed Choice: on demand for want of spot capacity, else RecordFailure.
  [STATE.extract]: {
    Retry: [transient, batchService],
    Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: STATE.extractFailed }],
  },
  [STATE.extractOnDemand]: { Retry: [transient, batchService], Catch: toRecordFailure },
  // Reads the manifest from the artifacts bucket at run time: an S3 5xx is transient like any other.
  [STATE.loadExperts]: { Retry: [transient, lambdaService(5), lambdaTimeout], Catch: toRecordFailure },
  // The Map catches for its items: one expert failing for good fails the scan once.
  [STATE.scoreExpert]: { Retry: [transient, lambdaService(5), lambdaTimeout] },
  [STATE.score]: { Catch: toRecordFailure },
  [STATE.finalize]: { Retry: [transient, lambdaService(5), lambdaTimeout], Catch: toRecordFailure },
  [STATE.recordFailure]: {
    Retry: [transient, lambdaService(6), lambdaTimeout],
    // A failure to record a failure still ends in Failed, with the first error kept in $.error.
    Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.recordFailureError', Next: STATE.failed }],
  },
};

/**
 * `computeMode: 'lambda'`: Extract is a Lambda invoke with the Lambda Tasks' blocks, caught
 * straight to RecordFailure (no spot queue, so no ExtractFailed/ExtractOnDemand).
 */
const EXPECTED_LAMBDA_MODE: Record<string, { Retry?: unknown[]; Catch?: unknown[] }> = Object.fromEntries([
  ...Object.entries(EXPECTED).filter(([name]) => name !== STATE.extractOnDemand),
  [STATE.extract, { Retry: [transient, lambdaService(5), lambdaTimeout], Catch: toRecordFailure }],
]);

describe.each([
  ['gpu', EXPECTED],
  ['cpu', EXPECTED],
  ['lambda', EXPECTED_LAMBDA_MODE],
])('state machine Retry and Catch (computeMode %s)', (computeMode, EXPECTED) => {
  let states: [string, Record<string, any>][];
  beforeAll(() => {
    const built = synth({ nag: false, context: { sonomark: { computeMode } } });
    states = allStates(definitionOf(built.pipelineTemplate));
  });

  test('every Task and Map state is listed here, so none goes unchecked', () => {
    // Assess
    const withWork = states.filter(([, s]) => s.Type === 'Task' || s.Type === 'Map').map(([n]) => n);
    expect(withWork.sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  test('each state has exactly the expected Retry and Catch blocks, in order', () => {
    // Assess
    for (const [name, state] of states) {
      const expected = EXPECTED[name] ?? {};
      expect({ name, Retry: state.Retry, Catch: state.Catch }).toEqual({
        name,
        Retry: expected.Retry,
        Catch: expected.Catch,
      });
    }
  });

  test('every Task state retries Sonomark.TransientError first, over minutes, with full jitter', () => {
    // Assess
    for (const [name, state] of states.filter(([, s]) => s.Type === 'Task')) {
      const first = (state.Retry as Record<string, unknown>[])[0];
      expect({ name, first }).toEqual({ name, first: transient });
      // The schedule the workflow.ts comment states: caps 5, 10, …, 120 s; their sum is the longest wait.
      const caps = Array.from({ length: transient.MaxAttempts }, (_, n) =>
        Math.min(transient.IntervalSeconds * transient.BackoffRate ** n, transient.MaxDelaySeconds),
      );
      expect(caps.reduce((a, b) => a + b, 0)).toBe(515);
    }
  });

  test('no retrier matches States.ALL or States.TaskFailed: permanent errors go straight to the Catch', () => {
    // Assess
    for (const [, state] of states) {
      for (const r of (state.Retry ?? []) as { ErrorEquals: string[] }[]) {
        expect(r.ErrorEquals).not.toContain('States.ALL');
        expect(r.ErrorEquals).not.toContain('States.TaskFailed');
      }
    }
  });
});

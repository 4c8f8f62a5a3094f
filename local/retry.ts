/**
 * Local mode runs the synthesized Retry blocks as they are (errors, attempts, backoff
 * rate, full jitter), with every interval and cap scaled down, so a retry really waits,
 * really backs off and really runs the handler again, in milliseconds instead of minutes.
 * aws-local-stepfunctions' own retryIntervalOverrides would replace the schedule by one
 * constant and turn jitter off; scaling the definition keeps the cloud's schedule.
 */

/** Cloud seconds → local seconds: 5 s becomes 5 ms. */
export const LOCAL_RETRY_SCALE = 1 / 1000;
/** No local wait below this (seconds): a retry always yields to the event loop and other executions. */
export const LOCAL_RETRY_FLOOR_SECONDS = 0.002;

export interface RetryScaling {
  /** Factor applied to IntervalSeconds and MaxDelaySeconds. @default LOCAL_RETRY_SCALE */
  readonly scale?: number;
  /** Smallest scaled interval, in seconds. @default LOCAL_RETRY_FLOOR_SECONDS */
  readonly floorSeconds?: number;
}

type StateJson = Record<string, unknown>;

/**
 * A copy of `definition` whose every Retry (nested Map and Parallel states included)
 * has IntervalSeconds and MaxDelaySeconds multiplied by `scale`, floored. Fractional
 * seconds are not valid ASL, so the copy is for execution only (validate the original).
 */
export function scaleRetries(definition: StateJson, scaling: RetryScaling = {}): StateJson {
  const scale = scaling.scale ?? LOCAL_RETRY_SCALE;
  const floor = scaling.floorSeconds ?? LOCAL_RETRY_FLOOR_SECONDS;
  if (!(scale > 0) || !(floor >= 0))
    throw new RangeError(`retry scale must be > 0 and floor >= 0 (got ${scale}, ${floor})`);
  const copy = JSON.parse(JSON.stringify(definition)) as StateJson;
  const scaled = (seconds: number) => Math.max(seconds * scale, floor);
  const visit = (states: Record<string, StateJson>) => {
    for (const state of Object.values(states)) {
      for (const r of (state.Retry ?? []) as StateJson[]) {
        // ASL's defaults made explicit, so that they are scaled too.
        const interval = scaled(typeof r.IntervalSeconds === 'number' ? r.IntervalSeconds : 1);
        r.IntervalSeconds = interval;
        if (typeof r.MaxDelaySeconds === 'number') r.MaxDelaySeconds = Math.max(scaled(r.MaxDelaySeconds), interval);
      }
      const inner = (state.ItemProcessor ?? state.Iterator) as { States?: Record<string, StateJson> } | undefined;
      if (inner?.States) visit(inner.States);
      for (const branch of (state.Branches ?? []) as { States: Record<string, StateJson> }[]) visit(branch.States);
    }
  };
  visit(copy.States as Record<string, StateJson>);
  return copy;
}

/** What the trigger stack and the StartExecution handler agree on (no SDK imports: the CDK app reads it). */

/** Environment variable holding the state machine's ARN. */
export const STATE_MACHINE_ARN_ENV = 'STATE_MACHINE_ARN';

/** Names of the local buckets and table, apart from the workflow so a reader (sonomark report) loads no CDK. */
export const LOCAL_UPLOADS_BUCKET = 'sonomark-uploads-local';
export const LOCAL_ARTIFACTS_BUCKET = 'sonomark-artifacts-local';
export const LOCAL_TABLE = 'sonomark-results-local';

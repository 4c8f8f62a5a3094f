/** A GetObject Body as the SDK hands it in Lambda and Batch: a Node Readable (the extractor job streams it to a file). */
import { Readable } from 'node:stream';

export const s3Body = (bytes: Uint8Array) => Readable.from([Buffer.from(bytes)]) as never;

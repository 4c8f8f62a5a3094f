/**
 * How the header readers reach bytes past the head Validate keeps: ranged reads of one
 * object. Validate implements it with S3 ranged GetObject (the same client in the cloud
 * and in local mode, where s3rver answers); tests and tools read a buffer or a file.
 */
export interface RangeReader {
  /**
   * At most `length` bytes from `offset` (fewer at the end of the object, none past it).
   * The caller bounds `length`; an implementation never returns more than asked.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** A RangeReader over bytes in memory (tests, and callers that hold the whole file anyway). */
export function bufferRangeReader(bytes: Uint8Array): RangeReader {
  return {
    read: async (offset, length) =>
      offset >= bytes.length || length <= 0
        ? new Uint8Array(0)
        : bytes.subarray(offset, Math.min(bytes.length, offset + length)),
  };
}

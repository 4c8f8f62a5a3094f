/**
 * The part of dcmjs (no bundled types) that sonomark uses: reading and writing Part 10
 * files and naturalizing data sets (keyword → value).
 */
declare module 'dcmjs' {
  export interface ReadOptions {
    /** Stop reading at this tag ('7FE00010' = Pixel Data). */
    untilTag?: string;
    /** With untilTag: read that tag's value too. */
    includeUntilTagValue?: boolean;
    ignoreErrors?: boolean;
  }
  export interface DicomElement {
    vr: string;
    Value?: unknown[];
  }
  export type DenaturalizedDataset = Record<string, DicomElement>;
  export type NaturalizedDataset = Record<string, unknown>;

  export class DicomDict {
    constructor(meta: DenaturalizedDataset);
    meta: DenaturalizedDataset;
    dict: DenaturalizedDataset;
    write(options?: { fragmentMultiframe?: boolean; allowInvalidVRLength?: boolean }): ArrayBuffer;
  }

  export const data: {
    DicomMessage: {
      readFile(buffer: ArrayBuffer, options?: ReadOptions): DicomDict;
    };
    DicomMetaDictionary: {
      naturalizeDataset(dataset: DenaturalizedDataset): NaturalizedDataset;
      denaturalizeDataset(dataset: NaturalizedDataset): DenaturalizedDataset;
      uid(): string;
    };
    DicomDict: typeof DicomDict;
  };

  type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';
  export const log: {
    setLevel(level: LogLevel): void;
    getLoggers(): Record<string, { setLevel(level: LogLevel): void }>;
  };

  const dcmjs: { data: typeof data; log: typeof log };
  export default dcmjs;
}

/**
 * A tiny ONNX graph builder over proto.ts, plus a seeded PRNG so models built
 * from "random" weights are reproducible byte for byte.
 */
import {
  encodeModel,
  float32LE,
  int64LE,
  TensorDataType,
  type AttributeProto,
  type AttributeValue,
  type Dim,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './proto';

/** Attribute values by JS type: number → int when integral (use `{type:'float'}` to force a float). */
export type AttrInput = number | string | readonly number[] | AttributeValue;

export interface GraphBuilderOptions {
  readonly name: string;
  /** @default 8 */
  readonly irVersion?: number;
  /** @default 17 */
  readonly opsetVersion?: number;
  readonly docString?: string;
}

export class GraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly names = new Set<string>();

  constructor(private readonly options: GraphBuilderOptions) {}

  private declare(name: string): string {
    if (this.names.has(name)) throw new Error(`ONNX graph "${this.options.name}": value "${name}" is defined twice`);
    this.names.add(name);
    return name;
  }

  /** A float graph input; use 'batch' (or any string) for a symbolic dimension. */
  input(name: string, dims: readonly Dim[], elemType: TensorDataType = TensorDataType.FLOAT): string {
    this.inputs.push({ name: this.declare(name), dims, elemType });
    return name;
  }

  initializer(name: string, dims: readonly number[], values: Float32Array): string {
    const count = dims.reduce((n, d) => n * d, 1);
    if (values.length !== count) {
      throw new Error(`initializer "${name}": ${values.length} values for dims [${dims.join(', ')}]`);
    }
    this.initializers.push({
      name: this.declare(name),
      dims,
      dataType: TensorDataType.FLOAT,
      rawData: float32LE(values),
    });
    return name;
  }

  initializerInt64(name: string, dims: readonly number[], values: readonly number[]): string {
    this.initializers.push({
      name: this.declare(name),
      dims,
      dataType: TensorDataType.INT64,
      rawData: int64LE(values),
    });
    return name;
  }

  node(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    attrs: Record<string, AttrInput> = {},
  ): readonly string[] {
    for (const i of inputs) {
      if (i !== '' && !this.names.has(i)) throw new Error(`node ${opType}: input "${i}" is not defined yet`);
    }
    outputs.forEach((o) => this.declare(o));
    const attributes: AttributeProto[] = Object.entries(attrs).map(([name, v]) => ({ name, value: toAttribute(v) }));
    this.nodes.push({ opType, inputs, outputs, name: `${opType.toLowerCase()}_${this.nodes.length}`, attributes });
    return outputs;
  }

  output(name: string, dims: readonly Dim[], elemType: TensorDataType = TensorDataType.FLOAT): void {
    if (!this.names.has(name)) throw new Error(`output "${name}" is not produced by any node`);
    this.outputs.push({ name, dims, elemType });
  }

  toBytes(): Uint8Array {
    return encodeModel({
      irVersion: this.options.irVersion,
      opsetVersion: this.options.opsetVersion,
      docString: this.options.docString,
      graph: {
        name: this.options.name,
        nodes: this.nodes,
        initializers: this.initializers,
        inputs: this.inputs,
        outputs: this.outputs,
      },
    });
  }
}

export function graph(name: string, options: Omit<GraphBuilderOptions, 'name'> = {}): GraphBuilder {
  return new GraphBuilder({ name, ...options });
}

function toAttribute(v: AttrInput): AttributeValue {
  if (typeof v === 'number') return Number.isInteger(v) ? { type: 'int', value: v } : { type: 'float', value: v };
  if (typeof v === 'string') return { type: 'string', value: v };
  if (Array.isArray(v)) {
    const arr = v as readonly number[];
    return arr.every((x) => Number.isInteger(x)) ? { type: 'ints', value: arr } : { type: 'floats', value: arr };
  }
  return v as AttributeValue;
}

// ---------------------------------------------------------------------------
// Deterministic weights
// ---------------------------------------------------------------------------

/** mulberry32: a 32-bit seeded PRNG returning floats in [0, 1). Same seed → same sequence, on every platform. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` values uniform in [-scale, scale), rounded to float32. */
export function uniformWeights(rand: () => number, count: number, scale: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (rand() * 2 - 1) * scale;
  return out;
}

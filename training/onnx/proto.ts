/**
 * A hand-written protobuf encoder for the subset of onnx.proto sonomark writes.
 *
 * Why not a protobuf library: the fixture models must be byte-for-byte
 * reproducible, and a few dozen lines of wire format are easier to audit than a
 * generated binding. Field numbers follow onnx/onnx.proto (proto2, IR version 8).
 * Fields are emitted in ascending field-number order, like the reference encoders.
 */

// ---------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------

const WIRE_VARINT = 0;
const WIRE_I32 = 5;
const WIRE_LEN = 2;

/** Accumulates encoded bytes. */
export class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];
  private length = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.length;
  }

  /** Unsigned or two's-complement varint; BigInt so int64 values above 2^53 and negatives stay exact. */
  varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    const out: number[] = [];
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v !== 0n) byte |= 0x80;
      out.push(byte);
    } while (v !== 0n);
    this.push(Uint8Array.from(out));
  }

  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  int(field: number, value: number | bigint): void {
    this.tag(field, WIRE_VARINT);
    this.varint(value);
  }

  float(field: number, value: number): void {
    this.tag(field, WIRE_I32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
  }

  bytes(field: number, value: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    this.varint(value.length);
    this.push(value);
  }

  string(field: number, value: string): void {
    this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, encode: (w: ProtoWriter) => void): void {
    const inner = new ProtoWriter();
    encode(inner);
    this.bytes(field, inner.finish());
  }

  packedInts(field: number, values: readonly (number | bigint)[]): void {
    const inner = new ProtoWriter();
    for (const v of values) inner.varint(v);
    this.bytes(field, inner.finish());
  }

  packedFloats(field: number, values: readonly number[]): void {
    const b = new Uint8Array(values.length * 4);
    const view = new DataView(b.buffer);
    values.forEach((v, i) => view.setFloat32(i * 4, v, true));
    this.bytes(field, b);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const c of this.chunks) {
      out.set(c, offset);
      offset += c.length;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------
// ONNX messages (plain data)
// ---------------------------------------------------------------------------

export const TensorDataType = { FLOAT: 1, INT64: 7 } as const;
export type TensorDataType = (typeof TensorDataType)[keyof typeof TensorDataType];

export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

export type AttributeValue =
  | { type: 'float'; value: number }
  | { type: 'int'; value: number }
  | { type: 'string'; value: string }
  | { type: 'floats'; value: readonly number[] }
  | { type: 'ints'; value: readonly number[] };

export interface AttributeProto {
  readonly name: string;
  readonly value: AttributeValue;
}

export interface NodeProto {
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly name: string;
  readonly opType: string;
  readonly attributes: readonly AttributeProto[];
  /** '' = the default ONNX domain. */
  readonly domain?: string;
}

export interface TensorProto {
  readonly name: string;
  readonly dims: readonly number[];
  readonly dataType: TensorDataType;
  /** Little-endian raw bytes of the tensor. */
  readonly rawData: Uint8Array;
}

/** A dimension is a fixed size or a symbolic name such as "batch". */
export type Dim = number | string;

export interface ValueInfoProto {
  readonly name: string;
  readonly elemType: TensorDataType;
  readonly dims: readonly Dim[];
}

export interface GraphProto {
  readonly name: string;
  readonly nodes: readonly NodeProto[];
  readonly initializers: readonly TensorProto[];
  readonly inputs: readonly ValueInfoProto[];
  readonly outputs: readonly ValueInfoProto[];
}

export interface ModelProto {
  readonly graph: GraphProto;
  /** @default 8 */
  readonly irVersion?: number;
  /** Default-domain opset. @default 17 */
  readonly opsetVersion?: number;
  /** @default 'sonomark' */
  readonly producerName?: string;
  readonly producerVersion?: string;
  readonly docString?: string;
}

// ---------------------------------------------------------------------------
// Encoders
// ---------------------------------------------------------------------------

function encodeAttribute(w: ProtoWriter, a: AttributeProto): void {
  w.string(1, a.name); // name
  const v = a.value;
  switch (v.type) {
    case 'float':
      w.float(2, v.value); // f
      w.int(20, AttributeType.FLOAT);
      break;
    case 'int':
      w.int(3, v.value); // i
      w.int(20, AttributeType.INT);
      break;
    case 'string':
      w.string(4, v.value); // s
      w.int(20, AttributeType.STRING);
      break;
    case 'floats':
      // proto2 repeated scalars are unpacked by default; parsers accept both, but stay canonical.
      for (const f of v.value) w.float(7, f);
      w.int(20, AttributeType.FLOATS);
      break;
    case 'ints':
      for (const i of v.value) w.int(8, i);
      w.int(20, AttributeType.INTS);
      break;
  }
}

function encodeNode(w: ProtoWriter, n: NodeProto): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name);
  w.string(4, n.opType);
  for (const a of n.attributes) w.message(5, (m) => encodeAttribute(m, a));
  if (n.domain !== undefined && n.domain !== '') w.string(7, n.domain);
}

function encodeTensor(w: ProtoWriter, t: TensorProto): void {
  for (const d of t.dims) w.int(1, d); // dims (int64, unpacked in proto2)
  w.int(2, t.dataType);
  w.string(8, t.name);
  w.bytes(9, t.rawData);
}

function encodeValueInfo(w: ProtoWriter, v: ValueInfoProto): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, v.elemType);
      tensor.message(2, (shape) => {
        for (const d of v.dims) {
          shape.message(1, (dim) => {
            if (typeof d === 'number') dim.int(1, d);
            else dim.string(2, d);
          });
        }
      });
    }),
  );
}

function encodeGraph(w: ProtoWriter, g: GraphProto): void {
  for (const n of g.nodes) w.message(1, (m) => encodeNode(m, n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, (m) => encodeTensor(m, t));
  for (const i of g.inputs) w.message(11, (m) => encodeValueInfo(m, i));
  for (const o of g.outputs) w.message(12, (m) => encodeValueInfo(m, o));
}

/** Serializes a ModelProto. Deterministic: the same model always gives the same bytes. */
export function encodeModel(model: ModelProto): Uint8Array {
  const w = new ProtoWriter();
  w.int(1, model.irVersion ?? 8); // ir_version
  w.string(2, model.producerName ?? 'sonomark'); // producer_name
  if (model.producerVersion !== undefined) w.string(3, model.producerVersion);
  if (model.docString !== undefined) w.string(6, model.docString);
  w.message(7, (g) => encodeGraph(g, model.graph)); // graph
  w.message(8, (op) => {
    op.string(1, ''); // domain: '' is the default ONNX operator set
    op.int(2, model.opsetVersion ?? 17);
  });
  return w.finish();
}

/** Little-endian bytes of a Float32Array, independent of the host's endianness. */
export function float32LE(values: Float32Array): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return out;
}

/** Little-endian bytes of int64 values. */
export function int64LE(values: readonly (number | bigint)[]): Uint8Array {
  const out = new Uint8Array(values.length * 8);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setBigInt64(i * 8, BigInt(v), true));
  return out;
}

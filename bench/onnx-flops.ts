/**
 * FLOPs per frame of an ONNX model, read from the graph itself: the protobuf decoded with
 * protobufjs (the few onnx.proto messages needed are declared below, field numbers from
 * onnx/onnx.proto), every tensor's shape propagated from the input through the nodes, and
 * the multiply-accumulates of Conv, ConvTranspose, Gemm and MatMul counted from those
 * shapes (2 FLOPs per MAC). Elementwise ops, pooling and reductions are left out, as
 * rooflines do. Works for whatever extractor the manifest ships: nothing model-specific.
 *
 * An op without a shape rule below is an error naming it (add a rule); the bench then
 * falls back to onnxruntime's profile (bench/ort.ts) and says so.
 */
import * as protobuf from 'protobufjs';

// A subset of onnx.proto (proto2), enough for graphs, attributes, initializers and shapes.
const ONNX_SUBSET = `
syntax = "proto2";
package onnx;
message AttributeProto {
  optional string name = 1;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  repeated float floats = 7;
  repeated int64 ints = 8;
  optional int32 type = 20;
}
message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
}
message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  repeated AttributeProto attribute = 5;
  optional string domain = 7;
}
message ModelProto {
  optional int64 ir_version = 1;
  optional GraphProto graph = 7;
  repeated OperatorSetIdProto opset_import = 8;
}
message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
}
message TensorProto {
  repeated int64 dims = 1;
  optional int32 data_type = 2;
  repeated float float_data = 4;
  repeated int32 int32_data = 5;
  repeated int64 int64_data = 7;
  optional string name = 8;
  optional bytes raw_data = 9;
}
message TensorShapeProto {
  message Dimension {
    optional int64 dim_value = 1;
    optional string dim_param = 2;
  }
  repeated Dimension dim = 1;
}
message TypeProto {
  message Tensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  optional Tensor tensor_type = 1;
}
message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}
`;

interface Tensor {
  dims?: number[];
  dataType?: number;
  floatData?: number[];
  int32Data?: number[];
  int64Data?: number[];
  name?: string;
  rawData?: Uint8Array;
}
interface Attribute {
  name?: string;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: Tensor;
  floats?: number[];
  ints?: number[];
}
interface Node {
  input?: string[];
  output?: string[];
  name?: string;
  opType?: string;
  attribute?: Attribute[];
  domain?: string;
}
interface ValueInfo {
  name?: string;
  type?: { tensorType?: { shape?: { dim?: { dimValue?: number; dimParam?: string }[] } } };
}
export interface OnnxModel {
  irVersion?: number;
  opsetImport?: { domain?: string; version?: number }[];
  graph?: { node?: Node[]; name?: string; initializer?: Tensor[]; input?: ValueInfo[]; output?: ValueInfo[] };
}

let modelType: protobuf.Type | undefined;

/** The model protobuf as a plain object (int64 as numbers: no ONNX dim or attribute here is above 2^53). */
export function decodeOnnx(bytes: Uint8Array): OnnxModel {
  modelType ??= protobuf.parse(ONNX_SUBSET, { keepCase: false }).root.lookupType('onnx.ModelProto');
  const msg = modelType.decode(bytes);
  return modelType.toObject(msg, { longs: Number, arrays: true, defaults: false }) as OnnxModel;
}

/** int64/int32/float values of a constant tensor (raw_data little-endian or the typed fields). */
function tensorValues(t: Tensor): number[] {
  const type = t.dataType ?? 0;
  const raw = t.rawData;
  if (raw && raw.length > 0) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const out: number[] = [];
    if (type === 7) for (let i = 0; i < raw.length; i += 8) out.push(Number(view.getBigInt64(i, true)));
    else if (type === 6) for (let i = 0; i < raw.length; i += 4) out.push(view.getInt32(i, true));
    else if (type === 1) for (let i = 0; i < raw.length; i += 4) out.push(view.getFloat32(i, true));
    else throw new Error(`constant tensor "${t.name ?? ''}": data type ${type} is not read (int64, int32, float are)`);
    return out;
  }
  return t.int64Data ?? t.int32Data ?? t.floatData ?? [];
}

export interface FlopCount {
  /** FLOPs (2 per MAC) of one frame, Conv/ConvTranspose/Gemm/MatMul. */
  readonly total: number;
  /** The same by op type. */
  readonly byOp: Record<string, number>;
  /** Each counted node: its op, output shape at `batch` and FLOPs per frame. */
  readonly nodes: readonly { op: string; name: string; output: number[]; flops: number }[];
  /** Opset of the default domain. */
  readonly opset: number;
}

const prod = (xs: readonly number[]) => xs.reduce((p, x) => p * x, 1);

/** numpy-style broadcast of two shapes. */
export function broadcast(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new Error(`shapes [${a.join(',')}] and [${b.join(',')}] do not broadcast`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** Output spatial size of a convolution or pooling window along one axis. */
export function windowOut(
  size: number,
  kernel: number,
  stride: number,
  padBegin: number,
  padEnd: number,
  dilation: number,
  ceil = false,
): number {
  const span = dilation * (kernel - 1) + 1;
  const q = (size + padBegin + padEnd - span) / stride;
  return (ceil ? Math.ceil(q) : Math.floor(q)) + 1;
}

const UNARY = new Set([
  'Relu',
  'LeakyRelu',
  'PRelu',
  'Elu',
  'Selu',
  'Celu',
  'Gelu',
  'Sigmoid',
  'HardSigmoid',
  'HardSwish',
  'Tanh',
  'Softplus',
  'Softsign',
  'Mish',
  'Sqrt',
  'Exp',
  'Log',
  'Abs',
  'Neg',
  'Erf',
  'Reciprocal',
  'Floor',
  'Ceil',
  'Round',
  'Sign',
  'Not',
  'Clip',
  'Identity',
  'Dropout',
  'Cast',
  'BatchNormalization',
  'InstanceNormalization',
  'LayerNormalization',
  'LpNormalization',
  'Softmax',
  'LogSoftmax',
]);
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Mean', 'Sum', 'Equal', 'Less', 'Greater']);

/**
 * Shape-propagates the graph with the first graph input given `inputShape` (its batch
 * included) and counts FLOPs. `batch` divides the counts into per-frame figures.
 */
export function countFlops(bytes: Uint8Array, inputShape: readonly number[]): FlopCount {
  const model = decodeOnnx(bytes);
  const g = model.graph;
  if (!g?.node?.length) throw new Error('ONNX model has no graph nodes');
  const opset = model.opsetImport?.find((o) => !o.domain || o.domain === 'ai.onnx')?.version ?? 1;
  const shapes = new Map<string, number[]>();
  const consts = new Map<string, number[]>();
  for (const t of g.initializer ?? []) {
    shapes.set(t.name!, (t.dims ?? []).map(Number));
    if ((t.dims ?? []).length <= 1 && [6, 7].includes(t.dataType ?? 0)) consts.set(t.name!, tensorValues(t));
  }
  const inits = new Set(shapes.keys());
  const graphInputs = (g.input ?? []).filter((i) => !inits.has(i.name!));
  if (graphInputs.length !== 1)
    throw new Error(`expected one graph input, found ${graphInputs.map((i) => i.name).join(', ') || 'none'}`);
  const declared = graphInputs[0]!.type?.tensorType?.shape?.dim ?? [];
  if (declared.length !== inputShape.length)
    throw new Error(`input "${graphInputs[0]!.name}" has rank ${declared.length}, given [${inputShape.join(',')}]`);
  declared.forEach((d, i) => {
    if (d.dimValue && d.dimValue !== inputShape[i])
      throw new Error(`input dim ${i} is ${d.dimValue} in the graph, given ${inputShape[i]}`);
  });
  shapes.set(graphInputs[0]!.name!, [...inputShape]);
  const batch = inputShape[0]!;

  const byOp: Record<string, number> = {};
  const counted: { op: string; name: string; output: number[]; flops: number }[] = [];
  for (const node of g.node) {
    const op = node.opType ?? '';
    const label = `${op} node "${node.name ?? node.output?.[0] ?? ''}"`;
    if (node.domain && node.domain !== 'ai.onnx')
      throw new Error(`${label}: domain "${node.domain}" has no shape rule`);
    const attrs = new Map((node.attribute ?? []).map((a) => [a.name!, a]));
    const int = (name: string, dflt: number) => attrs.get(name)?.i ?? dflt;
    const ints = (name: string) => attrs.get(name)?.ints;
    const inputs = node.input ?? [];
    const shapeOf = (i: number): number[] => {
      const name = inputs[i];
      const s = name ? shapes.get(name) : undefined;
      if (!s) throw new Error(`${label}: the shape of input ${i} ("${name ?? ''}") is unknown`);
      return s;
    };
    const constOf = (i: number): number[] | undefined => (inputs[i] ? consts.get(inputs[i]) : undefined);
    const axesOf = (rank: number, i: number): number[] | undefined => {
      const a = ints('axes') ?? (inputs[i] ? constOf(i) : undefined);
      return a?.map((x) => (x < 0 ? x + rank : x));
    };
    const outs = node.output ?? [];
    const set = (s: number[], i = 0) => outs[i] && shapes.set(outs[i], s);
    let flops = 0;

    if (op === 'Constant') {
      const t = attrs.get('value')?.t;
      if (t) {
        set((t.dims ?? []).map(Number));
        if ([6, 7].includes(t.dataType ?? 0)) consts.set(outs[0]!, tensorValues(t));
      } else if (attrs.has('value_ints')) {
        set([ints('value_ints')!.length]);
        consts.set(outs[0]!, ints('value_ints')!);
      } else if (attrs.has('value_int')) {
        set([]);
        consts.set(outs[0]!, [int('value_int', 0)]);
      } else set([]);
    } else if (UNARY.has(op)) {
      set(shapeOf(0));
      if (op === 'Cast' && constOf(0)) consts.set(outs[0]!, constOf(0)!);
    } else if (BINARY.has(op)) {
      let s = shapeOf(0);
      for (let i = 1; i < inputs.length; i++) s = broadcast(s, shapeOf(i));
      set(s);
    } else if (op === 'Where') {
      set(broadcast(broadcast(shapeOf(0), shapeOf(1)), shapeOf(2)));
    } else if (op.startsWith('Reduce') || op === 'ArgMax' || op === 'ArgMin') {
      const x = shapeOf(0);
      const keep = int('keepdims', 1) === 1;
      let axes = op.startsWith('Arg') ? [int('axis', 0)] : axesOf(x.length, 1);
      if (op.startsWith('Arg')) axes = axes!.map((a) => (a < 0 ? a + x.length : a));
      if (!axes?.length) axes = int('noop_with_empty_axes', 0) ? [] : x.map((_, i) => i);
      const out: number[] = [];
      x.forEach((d, i) => {
        if (!axes!.includes(i)) out.push(d);
        else if (keep) out.push(1);
      });
      set(out);
    } else if (op === 'Conv' || op === 'ConvTranspose') {
      const x = shapeOf(0);
      const w = shapeOf(1);
      const spatial = x.length - 2;
      const group = int('group', 1);
      const kernel = ints('kernel_shape') ?? w.slice(2);
      const strides = ints('strides') ?? kernel.map(() => 1);
      const dil = ints('dilations') ?? kernel.map(() => 1);
      const pads = ints('pads') ?? new Array<number>(2 * spatial).fill(0);
      const autoPad = attrs.get('auto_pad')?.s ? Buffer.from(attrs.get('auto_pad')!.s!).toString() : 'NOTSET';
      const out = [x[0]!, op === 'Conv' ? w[0]! : w[1]! * group];
      for (let k = 0; k < spatial; k++) {
        const size = x[k + 2]!;
        if (op === 'ConvTranspose') {
          const outPad = ints('output_padding')?.[k] ?? 0;
          out.push(
            ints('output_shape')?.[k] ??
              strides[k]! * (size - 1) + outPad + ((kernel[k]! - 1) * dil[k]! + 1) - pads[k]! - pads[k + spatial]!,
          );
        } else if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') out.push(Math.ceil(size / strides[k]!));
        else if (autoPad === 'VALID') out.push(windowOut(size, kernel[k]!, strides[k]!, 0, 0, dil[k]!));
        else out.push(windowOut(size, kernel[k]!, strides[k]!, pads[k]!, pads[k + spatial]!, dil[k]!));
      }
      set(out);
      // Conv: every output element is a dot product over (Cin/group)·kernel. ConvTranspose: every input element scatters over Cout/group·kernel.
      flops = op === 'Conv' ? 2 * prod(out) * prod(w.slice(1)) : 2 * prod(x) * prod(w.slice(1));
    } else if (op === 'MaxPool' || op === 'AveragePool' || op === 'LpPool') {
      const x = shapeOf(0);
      const kernel = ints('kernel_shape')!;
      const spatial = kernel.length;
      const strides = ints('strides') ?? kernel.map(() => 1);
      const dil = ints('dilations') ?? kernel.map(() => 1);
      const pads = ints('pads') ?? new Array<number>(2 * spatial).fill(0);
      const autoPad = attrs.get('auto_pad')?.s ? Buffer.from(attrs.get('auto_pad')!.s!).toString() : 'NOTSET';
      const ceil = int('ceil_mode', 0) === 1;
      const out = [x[0]!, x[1]!];
      for (let k = 0; k < spatial; k++) {
        const size = x[k + 2]!;
        if (autoPad.startsWith('SAME')) out.push(Math.ceil(size / strides[k]!));
        else if (autoPad === 'VALID') out.push(windowOut(size, kernel[k]!, strides[k]!, 0, 0, dil[k]!, ceil));
        else out.push(windowOut(size, kernel[k]!, strides[k]!, pads[k]!, pads[k + spatial]!, dil[k]!, ceil));
      }
      set(out);
    } else if (op === 'GlobalAveragePool' || op === 'GlobalMaxPool') {
      const x = shapeOf(0);
      set([x[0]!, x[1]!, ...x.slice(2).map(() => 1)]);
    } else if (op === 'Gemm') {
      const a = shapeOf(0);
      const b = shapeOf(1);
      const [m, k] = int('transA', 0) ? [a[1]!, a[0]!] : [a[0]!, a[1]!];
      const n = int('transB', 0) ? b[0]! : b[1]!;
      set([m, n]);
      flops = 2 * m * n * k;
    } else if (op === 'MatMul') {
      const a = shapeOf(0);
      const b = shapeOf(1);
      const a2 = a.length === 1 ? [1, a[0]!] : a;
      const b2 = b.length === 1 ? [b[0]!, 1] : b;
      const k = a2.at(-1)!;
      const lead = broadcast(a2.slice(0, -2), b2.slice(0, -2));
      const out = [...lead, ...(a.length === 1 ? [] : [a2.at(-2)!]), ...(b.length === 1 ? [] : [b2.at(-1)!])];
      set(out);
      flops = 2 * prod(lead) * a2.at(-2)! * b2.at(-1)! * k;
    } else if (op === 'Concat') {
      const first = shapeOf(0);
      const axis = (int('axis', 0) + first.length) % first.length;
      const out = [...first];
      for (let i = 1; i < inputs.length; i++) out[axis]! += shapeOf(i)[axis]!;
      set(out);
      if (inputs.every((_, i) => constOf(i)))
        consts.set(
          outs[0]!,
          inputs.flatMap((_, i) => constOf(i)!),
        );
    } else if (op === 'Flatten') {
      const x = shapeOf(0);
      const axis = (int('axis', 1) + x.length) % (x.length || 1);
      set([prod(x.slice(0, axis)), prod(x.slice(axis))]);
    } else if (op === 'Reshape') {
      const x = shapeOf(0);
      const target = constOf(1);
      if (!target) throw new Error(`${label}: the target shape is not a constant`);
      const out = target.map((d, i) => (d === 0 ? x[i]! : d));
      const known = prod(out.filter((d) => d !== -1));
      set(out.map((d) => (d === -1 ? prod(x) / known : d)));
    } else if (op === 'Transpose') {
      const x = shapeOf(0);
      const perm = ints('perm') ?? x.map((_, i) => x.length - 1 - i);
      set(perm.map((p) => x[p]!));
    } else if (op === 'Squeeze') {
      const x = shapeOf(0);
      const axes = axesOf(x.length, 1) ?? x.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0);
      set(x.filter((_, i) => !axes.includes(i)));
      if (constOf(0)) consts.set(outs[0]!, constOf(0)!);
    } else if (op === 'Unsqueeze') {
      const x = shapeOf(0);
      const rank = x.length + (ints('axes') ?? constOf(1) ?? []).length;
      const axes = axesOf(rank, 1) ?? [];
      const out: number[] = [];
      let j = 0;
      for (let i = 0; i < rank; i++) out.push(axes.includes(i) ? 1 : x[j++]!);
      set(out);
      if (constOf(0)) consts.set(outs[0]!, constOf(0)!);
    } else if (op === 'Shape') {
      const x = shapeOf(0);
      set([x.length]);
      consts.set(outs[0]!, x);
    } else if (op === 'Gather') {
      const x = shapeOf(0);
      const idx = shapeOf(1);
      const axis = (int('axis', 0) + x.length) % x.length;
      set([...x.slice(0, axis), ...idx, ...x.slice(axis + 1)]);
      const data = constOf(0);
      const at = constOf(1);
      if (data && at && axis === 0)
        consts.set(
          outs[0]!,
          at.map((i) => data[i < 0 ? i + data.length : i]!),
        );
    } else {
      throw new Error(`${label}: no shape rule for op "${op}" in bench/onnx-flops.ts (add one)`);
    }
    if (flops > 0) {
      byOp[op] = (byOp[op] ?? 0) + flops / batch;
      counted.push({ op, name: node.name ?? '', output: shapes.get(outs[0]!)!, flops: flops / batch });
    }
  }
  return { total: Object.values(byOp).reduce((a, b) => a + b, 0), byOp, nodes: counted, opset };
}

import { markAsUntransferable } from 'node:worker_threads';
import { DisposedError } from './errors.js';
import { keep, registerTrackedClass, track } from './engine.js';
import { checkDevice, DEVICES, type Device, type DeviceChoice } from './backends.js';
import { native, type NativeArray, type TensorHandle } from './native.js';
import { encodeHalf } from './half.js';
import { isGradEnabled, Node, type BackwardFn, type Edge } from './autograd/graph.js';
import { attrVector, inputVector, schemaOf, type AttrValues } from './ops/schema.js';

export type DType = 'float32' | 'int32' | 'float16' | 'bfloat16';
/** float32 -> Float32Array, int32 -> Int32Array; float16/bfloat16 -> Uint16Array of raw bits. */
export type TypedArrayFor<D extends DType> = D extends 'float32'
  ? Float32Array
  : D extends 'int32'
    ? Int32Array
    : Uint16Array;
export type DataArray = Float32Array | Int32Array | Uint16Array;

/** An onnxruntime-style tensor: `{ type, data, dims }` (an `ort.Tensor` is one). */
export interface OrtLikeTensor {
  readonly type: string;
  readonly data: unknown;
  readonly dims: readonly number[];
}

export interface TensorOptions {
  /** Where the tensor lives. Default 'cpu'. 'auto': CUDA when usable, else the CPU. */
  device?: DeviceChoice;
  /** Element type. Default: from the data (Float32Array -> float32, Int32Array -> int32), else float32. */
  dtype?: DType;
  /** Whether gradients are accumulated into this (leaf) tensor's `.grad` by backward(). Default false. */
  requiresGrad?: boolean;
  /**
   * CPU tensors made from a TypedArray of the tensor's dtype share its memory (no copy) unless
   * `copy` is true. Arrays over a SharedArrayBuffer or a resizable ArrayBuffer are always copied.
   * A shared array's buffer is marked untransferable (postMessage and structuredClone copy it
   * from then on), so it cannot be detached under the tensor;
   * writes to it are visible to the tensor.
   */
  copy?: boolean;
}

// Set by Tensor's static block (the autograd engine's access to its private state).
let gradAccess!: GradAccess;

// The dtypes, in the native enum's order (a dtype's code is its index).
const DTYPES: readonly DType[] = ['float32', 'int32', 'float16', 'bfloat16'];
const isDType = (v: unknown): v is DType => (DTYPES as readonly unknown[]).includes(v);

/** Memory layouts `contiguous()` can produce: row-major, or NHWC for a [B, C, H, W] tensor. */
export type MemoryFormat = 'rowMajor' | 'channelsLast';

/**
 * An n-dimensional array on one device, owned from JavaScript: a strided view of a block of
 * memory. Ops return new tensors at once and compute them in order on the device's queue;
 * reading (`data()`, `dataSync()`, `to()`) waits for the result. Views (`reshape`, `permute`,
 * `transpose`, `narrow`, `split`) share memory and cost nothing; `contiguous()` copies.
 */
export class Tensor {
  readonly shape: readonly number[];
  /** Element strides of each dim (row-major contiguous: [..., shape[n-1], 1]). */
  readonly strides: readonly number[];
  readonly dtype: DType;
  readonly device: Device;
  /** Number of elements. */
  readonly size: number;
  #handle: TensorHandle | null;
  #offset: number;
  // Autograd (lib/autograd): a leaf's flag and gradient; the node that made a non-leaf.
  #requiresGrad = false;
  #grad: Tensor | null = null;
  #gradFn: Node | null = null;
  #outputIndex = 0;

  /**
   * @internal Tensors are made by `tensor()` and by ops, never with `new`. `metaSlot`: where the
   * native call that made `handle` left its metadata (else it is asked for).
   */
  constructor(handle: TensorHandle, metaSlot = -1) {
    if (!(handle instanceof native.TensorHandle)) throw new TypeError('Tensor: use tensor() to create tensors');
    this.#handle = handle;
    if (metaSlot >= 0) {
      const m = META;
      const base = metaSlot * META_SLOT;
      const n = m[base];
      const shape = new Array<number>(n);
      const strides = new Array<number>(n);
      let size = 1;
      for (let i = 0; i < n; i++) {
        shape[i] = m[base + 4 + i];
        strides[i] = m[base + 12 + i];
        size *= shape[i];
      }
      this.shape = Object.freeze(shape);
      this.strides = Object.freeze(strides);
      this.dtype = DTYPES[m[base + 1]];
      this.device = DEVICES[m[base + 2]];
      this.#offset = m[base + 3];
      this.size = size;
    } else {
      const info = handle.info();
      this.shape = Object.freeze(info.shape);
      this.strides = Object.freeze(info.strides);
      this.#offset = info.offset;
      this.dtype = info.dtype;
      this.device = info.device;
      this.size = info.shape.reduce((a, b) => a * b, 1);
    }
    track(this);
  }

  /** True once dispose() was called (or the tensor was released by a scope). */
  get disposed(): boolean {
    return this.#handle === null;
  }

  /** @internal The native handle; throws DisposedError naming `op` if disposed. */
  handle(op: string, what = 'tensor'): TensorHandle {
    if (this.#handle === null) throw new DisposedError(op, what);
    return this.#handle;
  }

  /** A copy of the elements, read off the JS thread. */
  async data(): Promise<DataArray> {
    return (await this.handle('data').read()) as DataArray;
  }

  /** A copy of the elements, read synchronously (blocks until device work is done). */
  dataSync(): DataArray {
    return this.handle('dataSync').readSync() as DataArray;
  }

  /** A copy of this tensor on `device` (always a new tensor, also for the same device). */
  async to(device: DeviceChoice): Promise<Tensor> {
    const h = this.handle('to');
    const from = this.device;
    const out = new Tensor(await h.to(checkDevice(device, 'to: device')));
    return record('to', [this], [out], ([g]) => [g === null || g.device === from ? g : g.toSync(from)])[0];
  }

  /** Synchronous `to()`. */
  toSync(device: DeviceChoice): Tensor {
    const h = this.handle('to');
    const from = this.device;
    const out = new Tensor(h.toSync(checkDevice(device, 'to: device')));
    return record('to', [this], [out], ([g]) => [g === null || g.device === from ? g : g.toSync(from)])[0];
  }

  /** True when the elements lie packed in row-major order. */
  isContiguous(): boolean {
    let expect = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] === 1) continue;
      if (this.strides[i] !== expect) return false;
      expect *= this.shape[i];
    }
    return true;
  }

  /**
   * This tensor packed in `format` (default row-major): itself when already so laid out,
   * else a copy queued on its device. 'channelsLast' keeps a [B, C, H, W] shape with the
   * channels innermost in memory (NHWC), the layout secvit's convolution and norm kernels
   * prefer.
   */
  contiguous(format: MemoryFormat = 'rowMajor'): Tensor {
    if (format === 'channelsLast') {
      if (this.shape.length !== 4) throw new RangeError(`contiguous: channelsLast needs a [B, C, H, W] tensor, got [${this.shape.join(', ')}]`);
      const nhwc = this.permute([0, 2, 3, 1]);
      const packed = nhwc.isContiguous() ? nhwc : record('contiguous', [nhwc], copyOp(nhwc, this.dtype, false), (g) => g)[0];
      const out = packed.permute([0, 3, 1, 2]);
      packed.dispose();
      if (packed !== nhwc) nhwc.dispose();
      return out;
    }
    if (format !== 'rowMajor') throw new RangeError(`contiguous: format must be 'rowMajor' or 'channelsLast', got '${String(format)}'`);
    if (this.isContiguous()) return this.#view(this.shape, this.strides, this.#offset, 'contiguous', (g) => g);
    return record('contiguous', [this], copyOp(this, this.dtype, false), (g) => g)[0];
  }

  /** A copy converted to `dtype` (round to nearest even into 16-bit floats), in the same layout. */
  cast(dtype: DType): Tensor {
    if (!isDType(dtype)) throw new TypeError(`cast: dtype: unknown dtype '${String(dtype)}'`);
    const from = this.dtype;
    if (this.requiresGrad && (dtype === 'int32' || from === 'int32'))
      throw new TypeError(`cast: a tensor that requires grad cannot be cast to or from int32 (no gradient)`);
    return record('cast', [this], copyOp(this, dtype, true), ([g]) => [g === null || g.dtype === from ? g : g.cast(from)])[0];
  }

  /**
   * The same elements in `shape` (one entry may be -1: inferred). A view when the tensor is
   * contiguous, else a contiguous copy.
   */
  reshape(shape: readonly number[]): Tensor {
    const dims = inferShape(shape, this.size, 'reshape');
    if (!this.isContiguous()) {
      const c = this.contiguous();
      const r = c.reshape(dims);
      c.dispose();
      return r;
    }
    const from = this.shape;
    return this.#view(dims, rowMajorStrides(dims), this.#offset, 'reshape', (g) => g.reshape(from));
  }

  /** A view with the dims reordered: `dims` is a permutation of 0..rank-1. */
  permute(dims: readonly number[]): Tensor {
    const n = this.shape.length;
    if (!Array.isArray(dims) || dims.length !== n || new Set(dims).size !== n || dims.some((d) => !Number.isInteger(d) || d < 0 || d >= n))
      throw new RangeError(`permute: dims must be a permutation of 0..${n - 1}, got ${JSON.stringify(dims)}`);
    const inverse = new Array<number>(n);
    dims.forEach((d, i) => (inverse[d] = i));
    return this.#view(dims.map((d) => this.shape[d]), dims.map((d) => this.strides[d]), this.#offset, 'permute',
      (g) => g.permute(inverse));
  }

  /** A view with dims `a` and `b` swapped (negative dims count from the end). */
  transpose(a: number, b: number): Tensor {
    const n = this.shape.length;
    const da = normDim(a, n, 'transpose');
    const db = normDim(b, n, 'transpose');
    const dims = [...Array(n).keys()];
    dims[da] = db;
    dims[db] = da;
    return this.permute(dims);
  }

  /** A view of `length` entries of dim `dim` starting at `start`. */
  narrow(dim: number, start: number, length: number): Tensor {
    const d = normDim(dim, this.shape.length, 'narrow');
    if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > this.shape[d])
      throw new RangeError(`narrow: [${start}, ${start}+${length}) is outside dim ${d} of size ${this.shape[d]}`);
    const shape = [...this.shape];
    shape[d] = length;
    const size = this.shape[d];
    return this.#view(shape, this.strides, this.#offset + start * this.strides[d], 'narrow',
      (g) => runInternal('pad', { x: g }, { dim: d, before: start, after: size - start - length }));
  }

  /**
   * A view with size-1 dims repeated to `shape` (stride 0, no copy), as torch.expand: `shape`
   * may add leading dims; -1 keeps a dim's size. Writing through such a view is not possible.
   */
  expand(shape: readonly number[]): Tensor {
    if (!Array.isArray(shape) || shape.length < this.shape.length)
      throw new RangeError(`expand: shape must have at least ${this.shape.length} dims, got ${JSON.stringify(shape)}`);
    const lead = shape.length - this.shape.length;
    const strides: number[] = [];
    const dims = shape.map((s, i) => {
      const own = i >= lead ? this.shape[i - lead] : 1;
      const size = s === -1 && i >= lead ? own : s;
      if (!Number.isInteger(size) || size < 0) throw new RangeError(`expand: shape[${i}] must be an integer >= 0 (or -1), got ${s}`);
      if (own !== size && own !== 1)
        throw new RangeError(`expand: dim ${i} of size ${own} cannot be expanded to ${size} ([${this.shape.join(', ')}] to [${shape.join(', ')}])`);
      strides.push(i < lead || (own === 1 && size !== 1) ? 0 : this.strides[i - lead]);
      return size;
    });
    const from = this.shape;
    return this.#view(dims, strides, this.#offset, 'expand', (g) => sumTo(g, from));
  }

  /** Views splitting dim `dim` into pieces of `sizes` (an array), or of `sizes` each (the last may be smaller). */
  split(sizes: number | readonly number[], dim = 0): Tensor[] {
    const d = normDim(dim, this.shape.length, 'split');
    const total = this.shape[d];
    let parts: number[];
    if (typeof sizes === 'number') {
      if (!Number.isInteger(sizes) || sizes < 1) throw new RangeError(`split: size must be a positive integer, got ${sizes}`);
      parts = [];
      for (let s = 0; s < total; s += sizes) parts.push(Math.min(sizes, total - s));
    } else {
      if (!Array.isArray(sizes)) throw new TypeError(`split: sizes must be a positive integer or an array of them, got ${typeof sizes}`);
      parts = [...sizes];
      // Each size checked here, so a bad one is split's error (it surfaced as narrow's).
      parts.forEach((p, i) => {
        if (typeof p !== 'number' || !Number.isInteger(p) || p < 0) throw new RangeError(`split: sizes[${i}] must be a non-negative integer, got ${String(p)}`);
      });
      if (parts.reduce((a, b) => a + b, 0) !== total)
        throw new RangeError(`split: sizes [${parts.join(', ')}] do not add up to dim ${d}'s size ${total}`);
    }
    const out: Tensor[] = [];
    let start = 0;
    for (const p of parts) {
      out.push(this.narrow(d, start, p));
      start += p;
    }
    return out;
  }

  #view(shape: readonly number[], strides: readonly number[], offset: number, op: string, backward: (g: Tensor) => Tensor): Tensor {
    return record(op, [this], [new Tensor(native.view(this.handle(op), shape, strides, offset), 0)], ([g]) => [g ? backward(g) : null])[0];
  }

  // ---- autograd ----------------------------------------------------------------------------------

  /**
   * Whether backward() computes a gradient for this tensor: settable on leaves (tensors no
   * recorded op made); true for tensors computed from one that requires grad while gradients
   * were recorded. Only float tensors can require grad.
   */
  get requiresGrad(): boolean {
    return this.#requiresGrad || this.#gradFn !== null;
  }

  set requiresGrad(v: boolean) {
    if (typeof v !== 'boolean') throw new TypeError(`requiresGrad: expected a boolean, got ${typeof v}`);
    if (this.#gradFn !== null)
      throw new Error(`requiresGrad: only leaf tensors have a settable requiresGrad; this one was computed by '${this.#gradFn.name}' (use detach() for a leaf copy of it)`);
    if (v && this.dtype === 'int32') throw new TypeError('requiresGrad: only float tensors can require grad, this one is int32');
    this.handle('requiresGrad');
    this.#requiresGrad = v;
  }

  /** True unless a recorded op made this tensor. */
  get isLeaf(): boolean {
    return this.#gradFn === null;
  }

  /** The recorded op that made this tensor (its name), or null for a leaf. */
  get gradFn(): { readonly name: string } | null {
    return this.#gradFn === null ? null : { name: this.#gradFn.name };
  }

  /**
   * The gradient backward() accumulated into this leaf, or null. It belongs to this tensor (no
   * scope disposes it; disposing this tensor disposes it); an optimizer's zeroGrad() sets it
   * back to null. Assigning null disposes the old one; assigning a tensor (of this shape and
   * dtype, on this device) makes it this tensor's.
   */
  get grad(): Tensor | null {
    return this.#grad;
  }

  set grad(g: Tensor | null) {
    if (g !== null) {
      if (!(g instanceof Tensor)) throw new TypeError(`grad: expected a Tensor or null, got ${describe(g)}`);
      g.handle('grad', 'gradient');
      if (g.dtype !== this.dtype || g.device !== this.device || g.shape.length !== this.shape.length || g.shape.some((s, i) => s !== this.shape[i]))
        throw new RangeError(`grad: expected a ${this.dtype} [${this.shape.join(', ')}] tensor on ${this.device}, got ${g}`);
      keep(g);
    }
    if (this.#grad !== null && this.#grad !== g) this.#grad.dispose();
    this.#grad = g;
  }

  /** A view of the same memory that is not part of any graph and does not require grad. */
  detach(): Tensor {
    return new Tensor(native.view(this.handle('detach'), this.shape, this.strides, this.#offset), 0);
  }

  /**
   * Computes the gradients of this tensor with respect to every leaf that requires grad and
   * adds them into their `.grad` (torch's backward). A scalar (one element) needs no
   * `gradOutput`; any other tensor needs one of its shape. The graph's saved tensors are freed
   * as backward passes through them unless `retainGraph`. Queues the work and resolves once the
   * gradients are computed (rejecting with the error of a kernel that failed).
   */
  backward(gradOutput?: Tensor | null, options: { retainGraph?: boolean } = {}): Promise<void> {
    if (backwardImpl === null) throw new Error('backward: the autograd engine is not loaded (import secvit, not secvit/dist/.../tensor)');
    return backwardImpl(this, gradOutput ?? null, options);
  }

  static {
    // The autograd engine's access to what only it may change (lib/autograd).
    gradAccess = {
      node: (t) => (t.#gradFn === null ? null : { node: t.#gradFn, index: t.#outputIndex }),
      attach: (t, node, index) => {
        t.#gradFn = node;
        t.#outputIndex = index;
        node.retain();
      },
      leaf: (t) => t.#requiresGrad && t.#gradFn === null,
    };
  }

  /** Waits (blocking) until the tensor has been computed; throws the error of the op that failed. */
  waitSync(): void {
    this.handle('waitSync').wait();
  }

  /** Resolves once the tensor has been computed (off the JS thread); rejects with the error of the op that failed. */
  async ready(): Promise<void> {
    await this.handle('ready').ready();
  }

  /** An onnxruntime-style `{ type, data, dims }` copy on the host. */
  toOrt(): { type: DType; data: DataArray; dims: number[] } {
    return { type: this.dtype, data: this.dataSync(), dims: [...this.shape] };
  }

  /** Releases the tensor's memory now (and its `.grad`'s, and the graph only it still reaches). Idempotent. */
  dispose(): void {
    if (this.#handle === null) return;
    const h = this.#handle;
    this.#handle = null;
    h.dispose();
    if (this.#grad !== null) {
      this.#grad.dispose();
      this.#grad = null;
    }
    if (this.#gradFn !== null) {
      const n = this.#gradFn;
      this.#gradFn = null;
      n.release();
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** `await using t = ...`: the same as dispose() (nothing to wait for: queued work keeps what it reads). */
  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}], ${this.device}${this.disposed ? ', disposed' : ''})`;
  }
}
registerTrackedClass(Tensor);

function isOrtLike(v: unknown): v is OrtLikeTensor {
  return (
    typeof v === 'object' && v !== null && !ArrayBuffer.isView(v) && !Array.isArray(v) &&
    'type' in v && 'data' in v && 'dims' in v
  );
}

function checkShape(shape: unknown, what: string): number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${what}: expected an array of integers, got ${typeof shape}`);
  if (shape.length > 8) throw new RangeError(`${what}: at most 8 dimensions are supported, got ${shape.length}`);
  const dims = shape.map((d, i) => {
    if (typeof d !== 'number') throw new TypeError(`${what}[${i}]: expected an integer, got ${typeof d}`);
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`${what}[${i}]: expected an integer >= 0, got ${d}`);
    return d;
  });
  // Bounded as it is multiplied (the native side checks again): no product of sizes may pass
  // 2^40 elements, so no later product can overflow either.
  let n = 1;
  for (const d of dims) {
    if (d !== 0 && n > MAX_ELEMENTS / d) throw new RangeError(`${what}: [${dims.join(', ')}] is too large (more than 2^40 elements)`);
    n *= d;
  }
  return dims;
}

/** The most elements a tensor may have (native kMaxElements). */
const MAX_ELEMENTS = 2 ** 40;

const DTYPE_CODE = Object.fromEntries(DTYPES.map((d, i) => [d, i])) as Record<DType, number>;
const META = native.meta;
const META_SLOT = 20;

// ---- ops the Tensor methods run (the op layer, lib/ops/run.ts, builds on this file) -----------

/**
 * Runs op `name` on handles and wraps the outputs; no recording (a Tensor method records its
 * own node, and gradient functions run with recording off).
 */
function runInternal(name: string, inputs: Readonly<Record<string, Tensor | null>>, attrs: AttrValues = {}, sync = false): Tensor {
  const s = schemaOf(name);
  const handles = inputVector(s, inputs).map((t, i) => (t === null ? null : t.handle(name, s.inputs[i])));
  const out = native.run(s.id, handles, attrVector(s, attrs), sync);
  return Array.isArray(out) ? new Tensor(out[0], 0) : new Tensor(out, 0);
}

function copyOp(t: Tensor, dtype: DType, keepLayout: boolean, sync = false): Tensor[] {
  return [runInternal('copy', { x: t }, { dtype: DTYPE_CODE[dtype], keepLayout }, sync)];
}

/** @internal `t.cast(dtype)`, computed before it returns (for sources about to be overwritten). */
export function castSync(t: Tensor, dtype: DType): Tensor {
  return copyOp(t, dtype, true, true)[0];
}

/** `g` summed over the dims that broadcasting added or expanded to reach it from `shape`. */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  const lead = g.shape.length - shape.length;
  let mask = 0;
  g.shape.forEach((s, i) => {
    if (i < lead || (shape[i - lead] === 1 && s !== 1)) mask |= 1 << i;
  });
  if (mask === 0) return g;
  const summed = runInternal('sum', { x: g }, { dims: mask, keepDim: true });
  if (lead === 0) return summed;
  const r = summed.reshape(shape);
  summed.dispose();
  return r;
}

// ---- recording ---------------------------------------------------------------------------------

/** @internal What the autograd engine (and the op layer) may see and change of a Tensor. */
export interface GradAccess {
  node(t: Tensor): { node: Node; index: number } | null;
  attach(t: Tensor, node: Node, index: number): void;
  /** A leaf that requires grad (backward accumulates into its .grad). */
  leaf(t: Tensor): boolean;
}
/** @internal */
export function tensorGrad(): GradAccess {
  return gradAccess;
}

let backwardImpl: ((t: Tensor, g: Tensor | null, o: { retainGraph?: boolean }) => Promise<void>) | null = null;
/** @internal Installed by lib/autograd/backward.ts. */
export function setBackwardImpl(fn: typeof backwardImpl): void {
  backwardImpl = fn;
}

/** Where the gradient of input `t` goes, or null when it needs none. */
export function edgeOf(t: Tensor | null): Edge | null {
  if (t === null || !t.requiresGrad) return null;
  const made = gradAccess.node(t);
  return made ? { node: made.node, index: made.index } : { leaf: t };
}

/**
 * @internal Makes `outputs` the results of a recorded node when gradients are on and an input
 * requires grad (else returns them as they are). `backward` gets the outputs' gradients and the
 * `saved` tensors (the node's own views of them).
 */
export function record(name: string, inputs: readonly (Tensor | null)[], outputs: Tensor[], backward: BackwardFn,
  saved: readonly Tensor[] = []): Tensor[] {
  if (!isGradEnabled() || !inputs.some((t) => t !== null && t.requiresGrad)) return outputs;
  const node = new Node(name, inputs.map(edgeOf), inputs.map((t) => (t === null ? null : t.shape)), outputs.length,
    saved.map(saveView), backward);
  outputs.forEach((o, i) => {
    if (o.dtype !== 'int32') gradAccess.attach(o, node, i);
  });
  return outputs;
}

/** @internal A view of `t` owned by a graph node: outside every scope, with no autograd of its own. */
export function saveView(t: Tensor): Tensor {
  return keep(t.detach());
}

function rowMajorStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

function normDim(dim: number, rank: number, op: string): number {
  if (!Number.isInteger(dim) || dim < -rank || dim >= rank) throw new RangeError(`${op}: dim ${dim} is out of range for rank ${rank}`);
  return dim < 0 ? dim + rank : dim;
}

function inferShape(shape: readonly number[], size: number, op: string): number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${op}: shape must be an array of integers`);
  let infer = -1;
  let known = 1;
  const dims = shape.map((d, i) => {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < -1) throw new RangeError(`${op}: shape[${i}] must be an integer >= -1, got ${d}`);
    if (d === -1) {
      if (infer >= 0) throw new RangeError(`${op}: only one dim may be -1`);
      infer = i;
    } else {
      known *= d;
    }
    return d;
  });
  if (infer >= 0) {
    if (known === 0 || size % known !== 0) throw new RangeError(`${op}: cannot infer dim ${infer} of [${shape.join(', ')}] for ${size} elements`);
    dims[infer] = size / known;
  }
  const n = dims.reduce((a, b) => a * b, 1);
  if (n !== size) throw new RangeError(`${op}: shape [${dims.join(', ')}] has ${n} elements, the tensor ${size}`);
  return dims;
}

function defaultDType(data: unknown): DType {
  if (data instanceof Int32Array) return 'int32';
  return 'float32';
}

/** Converts `data` to the array class of `dtype`; `shared` says whether no copy was made. */
function toNativeArray(data: unknown, dtype: DType, what: string): { array: NativeArray; shared: boolean } {
  if (dtype === 'float16' || dtype === 'bfloat16') {
    // A Uint16Array holds raw bits; any other numbers are rounded to the 16-bit type.
    if (data instanceof Uint16Array) return { array: data, shared: true };
    if (Array.isArray(data) || data instanceof Float32Array || data instanceof Float64Array) {
      for (let i = 0; i < data.length; i++)
        if (typeof data[i] !== 'number') throw new TypeError(`${what}[${i}]: expected a number, got ${typeof data[i]}`);
      return { array: encodeHalf(data as ArrayLike<number>, dtype), shared: false };
    }
    throw new TypeError(`${what}: dtype ${dtype} needs a Uint16Array of raw bits, a Float32Array or numbers, got ${describe(data)}`);
  }
  if (dtype === 'float32' && data instanceof Float32Array) return { array: data, shared: true };
  if (dtype === 'int32' && data instanceof Int32Array) return { array: data, shared: true };
  if (Array.isArray(data) || (ArrayBuffer.isView(data) && !(data instanceof DataView))) {
    if (data instanceof BigInt64Array || data instanceof BigUint64Array)
      throw new TypeError(`${what}: BigInt arrays are not supported`);
    const src = data as ArrayLike<unknown>;
    const out = dtype === 'int32' ? new Int32Array(src.length) : new Float32Array(src.length);
    for (let i = 0; i < src.length; i++) {
      const v = src[i];
      if (typeof v !== 'number') throw new TypeError(`${what}[${i}]: expected a number, got ${typeof v}`);
      if (dtype === 'int32' && !(Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31))
        throw new RangeError(`${what}[${i}]: int32 needs integers in [-2^31, 2^31), got ${v}`);
      out[i] = v;
    }
    return { array: out, shared: false };
  }
  throw new TypeError(`${what}: expected a TypedArray, an array of numbers or an onnxruntime-style tensor, got ${describe(data)}`);
}

function canShare(array: NativeArray): boolean {
  const buf = array.buffer as ArrayBufferLike & { resizable?: boolean; growable?: boolean };
  if (typeof SharedArrayBuffer !== 'undefined' && buf instanceof SharedArrayBuffer) return false;
  return !buf.resizable && !buf.growable;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (ArrayBuffer.isView(v)) return v.constructor.name;
  if (Array.isArray(v)) return 'an array';
  return typeof v;
}

/**
 * Creates a tensor from a Float32Array, Int32Array, any other numeric TypedArray or number[]
 * (converted), or an onnxruntime-style `{ type, data, dims }`. `shape` defaults to the ORT dims,
 * or 1-D. Errors: TypeError for wrong types, RangeError when the shape does not fit the data.
 */
export function tensor(
  data: ArrayLike<number> | ArrayBufferView | OrtLikeTensor,
  shape?: readonly number[],
  options: TensorOptions = {},
): Tensor {
  if (typeof options !== 'object' || options === null) throw new TypeError('tensor: options must be an object');
  if (options.copy !== undefined && typeof options.copy !== 'boolean')
    throw new TypeError(`tensor: copy must be a boolean, got ${describe(options.copy)}`);
  let values: unknown = data;
  let dtype = options.dtype;
  if (dtype !== undefined && !isDType(dtype))
    throw new TypeError(`tensor: dtype: expected 'float32', 'int32', 'float16' or 'bfloat16', got '${String(dtype)}'`);
  if (isOrtLike(data)) {
    if (typeof data.type !== 'string' || !isDType(data.type))
      throw new TypeError(`tensor: onnxruntime tensor type '${String(data.type)}' is not supported (float32, int32, float16, bfloat16)`);
    if (dtype !== undefined && dtype !== data.type)
      throw new TypeError(`tensor: dtype '${dtype}' differs from the onnxruntime tensor's type '${data.type}'`);
    dtype = data.type as DType;
    values = data.data;
    shape ??= checkShape(data.dims, 'tensor: dims');
  }
  dtype ??= defaultDType(values);
  const length = (values as { length?: unknown })?.length;
  const dims = shape === undefined ? [typeof length === 'number' ? length : 0] : checkShape(shape, 'tensor: shape');
  let { array, shared } = toNativeArray(values, dtype, 'tensor: data');
  if (!canShare(array)) {
    // SharedArrayBuffer (another thread may write it while a kernel reads) and resizable
    // buffers (a shrink would leave the tensor pointing past the end): always copied.
    array = array.slice();
    shared = false;
  }
  const numel = dims.reduce((a, b) => a * b, 1);
  if (array.length !== numel)
    throw new RangeError(`tensor: shape [${dims.join(',')}] needs ${numel} elements, got ${array.length}`);
  const device = checkDevice(options.device ?? 'cpu', 'tensor: device');
  // Device tensors always copy; CPU tensors copy when asked or when the data was converted.
  const copy = options.copy === true || !shared || device !== 'cpu';
  const grad = requiresGradOption(options, 'tensor', dtype);
  // A shared buffer must not be detached while a tensor reads it: postMessage/structuredClone
  // transfers of it become copies from now on.
  if (!copy) markAsUntransferable(array.buffer);
  const t = new Tensor(native.createTensor(array, dims, dtype, device, copy), 0);
  if (grad) t.requiresGrad = true;
  return t;
}

function requiresGradOption(options: { requiresGrad?: unknown }, op: string, dtype: DType): boolean {
  const v = options.requiresGrad;
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new TypeError(`${op}: requiresGrad must be a boolean, got ${describe(v)}`);
  if (v && dtype === 'int32') throw new TypeError(`${op}: only float tensors can require grad, dtype is int32`);
  return v;
}

/** A zero-filled tensor. */
export function zeros(shape: readonly number[], options: Omit<TensorOptions, 'copy'> = {}): Tensor {
  const dims = checkShape(shape, 'zeros: shape');
  const dtype = options.dtype ?? 'float32';
  if (!isDType(dtype)) throw new TypeError(`zeros: dtype: unknown dtype '${String(dtype)}'`);
  const grad = requiresGradOption(options, 'zeros', dtype);
  const t = new Tensor(native.createTensor(null, dims, dtype, checkDevice(options.device ?? 'cpu', 'zeros: device'), true), 0);
  if (grad) t.requiresGrad = true;
  return t;
}

/** Validates that `t` is a live Tensor and returns its handle (TypeError / DisposedError). */
export function handleOf(t: unknown, op: string, what: string): TensorHandle {
  if (!(t instanceof Tensor)) throw new TypeError(`${op}: ${what} must be a Tensor, got ${describe(t)}`);
  return t.handle(op, what);
}

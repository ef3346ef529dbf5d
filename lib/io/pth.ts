// PyTorch checkpoints: the zip format of torch.save (torch >= 1.6). `<dir>/data.pkl` is a pickle
// whose tensors are `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` calls
// on storages named by persistent ids ('storage', torch.FloatStorage, key, location, numel),
// each storage's bytes in `<dir>/data/<key>`. The pickle is read by the restricted unpickler
// (nothing executes); tensors become descriptors, and only the ones the caller keeps are read,
// straight from their storage, honouring offsets, strides and storages shared between tensors.
import {
  checkedBytes, checkedNumel, CheckpointError, openSource, readBuffer, STORED_DTYPE_SIZE,
  type ByteSource, type StoredDType, type StoredTensor,
} from './source.js';
import { readZip, type ZipEntry } from './zip.js';
import { brief } from '../brief.js';
import { PickleError, PyDict, PyGlobal, PyObject, unpickle } from './pickle.js';

const STORAGE_DTYPES: Record<string, StoredDType> = {
  FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16', DoubleStorage: 'F64',
  LongStorage: 'I64', IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8', BoolStorage: 'BOOL',
};

/** The largest pickle read into memory (a state dict's pickle is kilobytes to a few megabytes). */
const MAX_PICKLE_BYTES = 256 << 20;

class StorageRef {
  constructor(readonly key: string, readonly dtype: StoredDType, readonly numel: number, readonly entry: ZipEntry | undefined) {}
}

/** A tensor of the pickle, not yet read. */
export class PickledTensor implements StoredTensor {
  readonly pickleBuildable = true;
  readonly numel: number;
  /** Elements of the storage up to this tensor's last one: what is read (or inflated) of it. */
  private readonly extent: number;
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
    private readonly file: string,
  ) {
    this.numel = checkedNumel(shape, `${file}: tensor`);
    this.extent = 0;
    if (this.numel > 0) {
      let last = offset;
      for (let i = 0; i < shape.length; i++) last += (shape[i] - 1) * stride[i];
      if (!Number.isSafeInteger(last) || last >= storage.numel)
        throw new CheckpointError(`${file}: a tensor [${shape.join(', ')}] at offset ${offset} with strides [${stride.join(', ')}] reaches element ${last} of a ${storage.numel}-element storage '${storage.key}'`);
      this.extent = last + 1;
    }
  }
  get dtype(): StoredDType {
    return this.storage.dtype;
  }
  /** The elements packed row-major (a copy of a strided view is gathered here). */
  read(into?: Uint8Array): Uint8Array {
    const { entry, key, dtype } = this.storage;
    if (!entry) throw new CheckpointError(`${this.file}: storage '${key}' is missing from the archive`);
    const el = STORED_DTYPE_SIZE[dtype];
    const bytes = checkedBytes(this.storage.numel, el, `${this.file}: storage '${key}'`);
    if (entry.size !== bytes)
      throw new CheckpointError(`${this.file}: storage '${key}' holds ${entry.size} bytes; ${this.storage.numel} ${dtype} elements need ${bytes}`);
    const out = readBuffer(into, this.numel * el);
    if (this.numel === 0) return out;
    // Only the storage's bytes up to this tensor's last element (a view of a large storage, or
    // a deflated storage that inflates to far more than the tensor uses, costs what it reads).
    const data = entry.readPrefix(this.extent * el);
    const nd = this.shape.length;
    let contiguous = true;
    for (let i = nd - 1, expect = 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.stride[i] !== expect) contiguous = false;
      expect *= this.shape[i];
    }
    if (contiguous) {
      out.set(data.subarray(this.offset * el, (this.offset + this.numel) * el));
      return out;
    }
    // Gather: walk the index odometer over the strided view.
    const idx = new Array<number>(nd).fill(0);
    let src = this.offset;
    for (let n = 0; n < this.numel; n++) {
      out.set(data.subarray(src * el, src * el + el), n * el);
      for (let d = nd - 1; d >= 0; d--) {
        if (++idx[d] < this.shape[d]) {
          src += this.stride[d];
          break;
        }
        src -= (this.shape[d] - 1) * this.stride[d];
        idx[d] = 0;
      }
    }
    return out;
  }
}

function intTuple(v: unknown, what: string, file: string): number[] {
  if (!Array.isArray(v) || v.length > 8 || !v.every((x) => Number.isSafeInteger(x) && (x as number) >= 0))
    throw new CheckpointError(`${file}: ${what} must be a tuple of at most 8 non-negative integers, got ${brief(v)}`);
  return v as number[];
}

export interface PthFile {
  /** The chosen state dict. */
  tensors: Map<string, StoredTensor>;
  /** What could be read of the training args: `model` (the registry name), `epoch`, ... */
  metadata: Map<string, string>;
  /** The top-level key the weights came from ('' for the top level). */
  key: string;
  /** Top-level keys of the checkpoint (when it is a dict). */
  topLevelKeys: string[];
  close(): void;
}

/** The keys timm tries, in order, for the weights of a training checkpoint. */
export const WEIGHT_KEYS = ['state_dict_ema', 'model_ema', 'state_dict', 'model'] as const;

const isStateDict = (v: unknown): boolean =>
  v instanceof PyDict && v.size > 0 && [...v.values()].every((t) => t instanceof PickledTensor);

/** Reads a torch.save zip: the pickle is parsed, tensors are read when asked for. */
export function readPth(input: string | Uint8Array, options: { key?: string } = {}): PthFile {
  const src = openSource(input, 'readPth');
  try {
    return parsePth(src, options);
  } catch (e) {
    src.close();
    if (e instanceof PickleError) throw new CheckpointError(e.message);
    // A backstop: no step of reading recurses over the pickle's structures (messages describe
    // them within bounds), but an engine error never leaves the loader as one.
    if (e instanceof RangeError && /call stack|string length|array length/i.test(e.message))
      throw new CheckpointError(`${src.name}: the pickle's structures are too deep or too large (${e.message})`);
    throw e;
  }
}

function parsePth(src: ByteSource, options: { key?: string }): PthFile {
  const file = src.name;
  const entries = readZip(src);
  const pkls = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1)
    throw new CheckpointError(`${file}: not a torch.save archive: expected one '<name>/data.pkl', found ${pkls.length}`);
  const dir = pkls[0].slice(0, -'data.pkl'.length);
  const order = entries.get(`${dir}byteorder`);
  if (order) {
    const bo = new TextDecoder().decode(order.read()).trim();
    if (bo !== 'little') throw new CheckpointError(`${file}: byteorder '${bo}' is not supported (little-endian only)`);
  }
  const pkl = entries.get(pkls[0])!;
  if (pkl.size > MAX_PICKLE_BYTES) throw new CheckpointError(`${file}: data.pkl is ${pkl.size} bytes (limit ${MAX_PICKLE_BYTES})`);

  const storages = new Map<string, StorageRef>();
  const rebuild = (a: unknown[]): PickledTensor => {
    const [storage, offset, size, stride] = a;
    if (!(storage instanceof StorageRef)) throw new CheckpointError(`${file}: _rebuild_tensor_v2 on something that is not a storage`);
    if (!Number.isSafeInteger(offset) || (offset as number) < 0) throw new CheckpointError(`${file}: bad storage offset ${brief(offset)}`);
    const shape = intTuple(size, 'tensor size', file);
    const strides = intTuple(stride, 'tensor stride', file);
    if (strides.length !== shape.length) throw new CheckpointError(`${file}: tensor size and stride have different lengths`);
    return new PickledTensor(storage, offset as number, shape, strides, file);
  };
  const root = unpickle(pkl.read(), {
    name: `${file}: data.pkl`,
    markers: new Set(Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`)),
    callables: new Map<string, (a: unknown[]) => unknown>([
      ['torch._utils._rebuild_tensor_v2', rebuild],
      ['torch._utils._rebuild_tensor', rebuild],
      // nn.Parameter: the tensor itself (requires_grad and hooks are training state).
      ['torch._utils._rebuild_parameter', (a) => a[0]],
      ['torch._utils._rebuild_parameter_with_state', (a) => a[0]],
      ['torch.device', (a) => (typeof a[0] === 'string' ? a[0] : brief(a[0]))],
    ]),
    persistentLoad: (pid) => {
      if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage')
        throw new CheckpointError(`${file}: unsupported persistent id ${brief(pid)}`);
      const [, type, key, , numel] = pid;
      if (!(type instanceof PyGlobal) || !Object.hasOwn(STORAGE_DTYPES, type.name))
        throw new CheckpointError(`${file}: unsupported storage type ${type instanceof PyGlobal ? type.qualname : brief(type)}`);
      if (typeof key !== 'string' || !/^[\w.-]+$/.test(key)) throw new CheckpointError(`${file}: bad storage key ${brief(key)}`);
      if (!Number.isSafeInteger(numel) || (numel as number) < 0) throw new CheckpointError(`${file}: bad storage size ${brief(numel)}`);
      const dtype = STORAGE_DTYPES[type.name];
      const prev = storages.get(key);
      if (prev) {
        if (prev.dtype !== dtype || prev.numel !== numel) throw new CheckpointError(`${file}: storage '${key}' is declared twice with different types`);
        return prev;
      }
      const ref = new StorageRef(key, dtype, numel as number, entries.get(`${dir}data/${key}`));
      storages.set(key, ref);
      return ref;
    },
  });

  const topLevelKeys = root instanceof PyDict ? [...root.keys()].filter((k): k is string => typeof k === 'string') : [];
  let key = '';
  let dict: unknown = root;
  if (options.key !== undefined) {
    if (typeof options.key !== 'string') throw new TypeError('readPth: key must be a string');
    if (!(root instanceof PyDict) || !root.has(options.key))
      throw new CheckpointError(`${file}: no key '${options.key}' at the top level (keys: ${topLevelKeys.join(', ') || 'none'})`);
    key = options.key;
    dict = root.get(key);
    if (dict instanceof PyDict && dict.has('state_dict') && !isStateDict(dict)) dict = dict.get('state_dict');
  } else if (root instanceof PyDict && !isStateDict(root)) {
    const found = WEIGHT_KEYS.find((k) => isStateDict(root.get(k)));
    if (found) {
      key = found;
      dict = root.get(found);
    }
  }
  if (!isStateDict(dict)) {
    throw new CheckpointError(
      `${file}: ${key ? `'${key}'` : 'the top level'} is not a state dict of tensors` +
      (topLevelKeys.length ? ` (top-level keys: ${topLevelKeys.join(', ')}; choose one with { key })` : ''));
  }
  const tensors = new Map<string, StoredTensor>();
  for (const [k, v] of dict as PyDict) {
    if (typeof k !== 'string') throw new CheckpointError(`${file}: a state-dict key is not a string (${typeof k})`);
    tensors.set(k, v as PickledTensor);
  }
  const metadata = new Map<string, string>();
  if (root instanceof PyDict) {
    const args = root.get('args');
    if (args instanceof PyObject) {
      for (const [k, v] of args.attrs) if (typeof k === 'string' && (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')) metadata.set(`args.${k}`, String(v));
      const model = args.attrs.get('model');
      if (typeof model === 'string') metadata.set('model', model);
    }
    for (const k of ['epoch', 'max_accuracy']) {
      const v = root.get(k);
      if (typeof v === 'number') metadata.set(k, String(v));
    }
  }
  return { tensors, metadata, key, topLevelKeys, close: () => src.close() };
}

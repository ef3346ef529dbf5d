// Checkpoints in and out of a SecViT: safetensors and PyTorch `.pth` files in, safetensors out.
// Loading is a walk over the model's slot names; every problem with the names or shapes is
// collected and reported in one error (strict by default, as torch's load_state_dict).
import { writeFileAtomic } from '../io/atomic.js';
import { noGrad } from '../autograd/graph.js';
import { basename } from 'node:path';
import { castSync, tensor, Tensor, type DType } from '../tensor.js';
import { encodeSafetensors, readSafetensors, type TensorBytes } from '../io/safetensors.js';
import { readPth } from '../io/pth.js';
import { checkedBytes, CheckpointError, openSource, STORED_DTYPE_SIZE, type StoredTensor } from '../io/source.js';
import type { ConfigInput } from './config.js';
import type { ModelFamily } from './base.js';
import type { ModelOptions, VisionModel } from './base.js';
import { MODEL_LIMITS } from './limits.js';

export interface Checkpoint {
  /** The state dict: names as the reference's (after `module.` prefixes are stripped). */
  tensors: Map<string, StoredTensor>;
  /** safetensors metadata, or for `.pth` what could be read of the training args. */
  metadata: Map<string, string>;
  format: 'safetensors' | 'pth';
  /** For `.pth`: the key the weights were taken from ('' for the top level). */
  key?: string;
  close(): void;
}

export interface ReadCheckpointOptions {
  /** `.pth`: the top-level key holding the weights (default: as timm picks them). */
  key?: string;
}

/** Reads a checkpoint's header and names; tensors are read when used. Detects the format by content. */
export function readCheckpoint(input: string | Uint8Array, options: ReadCheckpointOptions = {}): Checkpoint {
  const src = openSource(input, 'readCheckpoint');
  let magic: Uint8Array;
  try {
    magic = src.read(0, Math.min(4, src.size), 'magic');
  } finally {
    src.close();
  }
  if (magic[0] === 0x50 && magic[1] === 0x4b) {
    const p = readPth(input, options);
    return { ...p, format: 'pth' };
  }
  if (magic[0] === 0x80 && magic[1] >= 2 && magic[1] <= 5)
    throw new CheckpointError(
      `${typeof input === 'string' ? input : 'buffer'}: a legacy (non-zip) torch.save file; re-save it with a torch >= 1.6 torch.save (the zip format)`);
  if (options.key !== undefined) throw new TypeError(`readCheckpoint: key applies to .pth files only`);
  const s = readSafetensors(input);
  return { ...s, format: 'safetensors' };
}

/** The family a state dict's keys belong to. */
export function familyOfKeys(keys: Iterable<string>): ModelFamily | undefined {
  const set = new Set(keys);
  if (set.has('features.0.0.weight')) return 'swin';
  if (set.has('conv_proj.weight') || set.has('encoder.pos_embedding')) return 'vit';
  if (set.has('patch_embed.proj.0.weight') || [...set].some((k) => k.startsWith('layers.0.blocks.'))) return 'secvit';
  return undefined;
}

/**
 * Progress of loading weights: `done` of `total` bytes read. `total` is the stored size of the
 * tensors the model takes (never an optimizer's or other unused entries of the file).
 */
export type LoadProgress = (done: number, total: number) => void;

export interface LoadStateDictOptions {
  /** Default true: missing, unexpected or misshapen keys are an error. */
  strict?: boolean;
  /**
   * Called as the tensors are read (for a progress bar): first with (0, total), last with
   * (total, total), `done` increasing in between; at most 101 calls, however many tensors there
   * are (one per whole percent reached). Not called when the checkpoint does not fit the model.
   * An exception it throws ends the load: what was read is freed and the model is left as it was.
   */
  onProgress?: LoadProgress;
}

export interface LoadOptions extends Omit<ModelOptions, 'seed'>, LoadStateDictOptions {
  /** The config; default: the file's `config` metadata (safetensors), the training args' model name (.pth), else inferred from the weights' shapes. */
  config?: ConfigInput | string;
  /** `.pth`: the key holding the weights. */
  key?: string;
}

export function checkProgress(op: string, fn: unknown): LoadProgress | undefined {
  if (fn !== undefined && typeof fn !== 'function') throw new TypeError(`${op}: onProgress must be a function, got ${fn === null ? 'null' : typeof fn}`);
  return fn as LoadProgress | undefined;
}

/** Reports `done` of `total` to `fn` when a new whole percent is reached (so 0 and the end always); a no-op without `fn`. */
function progressReporter(fn: LoadProgress | undefined, total: number): (done: number) => void {
  if (fn === undefined) return () => {};
  let reported = -1;
  return (done) => {
    const percent = done >= total ? 100 : Math.floor((done * 100) / total);
    if (percent <= reported) return;
    reported = percent;
    fn(done, total);
  };
}

/**
 * `model` (built empty) filled from a checkpoint already read: its weights, and its metadata when
 * safetensors. On failure the model is disposed and the error rethrown.
 */
export function fillFromCheckpoint<M extends VisionModel>(model: M, ck: Checkpoint, options: LoadStateDictOptions & { strict?: boolean }): M {
  try {
    checkImpliedSize(model, ck, options.strict ?? true);
    loadStateDict(model, ck.tensors, { strict: options.strict ?? true, onProgress: options.onProgress });
    if (ck.format === 'safetensors') model.metadata = new Map(ck.metadata);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/**
 * The model a config implies (the module tree: nothing allocated yet), against the parameter
 * limit and, for strict loads, where every parameter must come from the file, against the values
 * the checkpoint holds. A config in a checkpoint's metadata is untrusted: this stops one that asks
 * for a model its file cannot fill before any weight is read or made.
 */
function checkImpliedSize(model: VisionModel, ck: Checkpoint, strict: boolean): void {
  const n = model.parameterCount;
  const fmt = (v: number) => v.toLocaleString('en-US');
  if (n > MODEL_LIMITS.parameters)
    throw new CheckpointError(`the config implies ${fmt(n)} parameters, more than the limit of ${fmt(MODEL_LIMITS.parameters)}`);
  if (!strict) return;
  let stored = 0;
  for (const t of ck.tensors.values()) stored += t.numel;
  if (n > stored)
    throw new CheckpointError(`the config implies ${fmt(n)} parameters but the checkpoint holds ${fmt(stored)} values: the config does not describe these weights`);
}

/**
 * The elements of a stored tensor as a CPU tensor of `target` (default: the stored dtype; float64
 * becomes float32), copied into secvit's own memory. Every tensor is read through `scratch`
 * (grown to the largest one), so loading leaves no JS garbage the size of the checkpoint behind
 * (it did: 60 MB of dead ArrayBuffers for SecViT-T's float16 file, alive until V8 next collected
 * them). A conversion reads the scratch bytes in place: a stored-dtype copy in secvit's memory,
 * freed after its cast, would leave holes between the weights (7 MB for that file).
 */
function hostTensor(name: string, st: StoredTensor, scratch: { bytes: Uint8Array }, target?: DType): Tensor {
  if (st.dtype !== 'F64' && st.dtype !== 'F32' && st.dtype !== 'F16' && st.dtype !== 'BF16')
    throw new CheckpointError(`SecViT.load: '${name}' is ${st.dtype}; a floating-point tensor was expected`);
  const el = STORED_DTYPE_SIZE[st.dtype];
  const need = checkedBytes(st.numel, el, `SecViT.load: '${name}'`);
  if (scratch.bytes.byteLength < need) scratch.bytes = new Uint8Array(need);
  const raw = st.read(scratch.bytes);
  // read() may return a view of a memory source at any byte offset: align it for typed views.
  const bytes = raw.byteOffset % el === 0 ? raw : (scratch.bytes.set(raw), scratch.bytes.subarray(0, raw.byteLength));
  const view = <T>(T: new (b: ArrayBufferLike, o: number, n: number) => T): T => new T(bytes.buffer, bytes.byteOffset, st.numel);
  // float64 is narrowed in JS into an array of its own (which the tensor may keep); the others
  // are views of the scratch bytes (which it must copy).
  const fresh = st.dtype === 'F64';
  const stored = ({ F64: 'float32', F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const)[st.dtype];
  const data = fresh ? Float32Array.from(view(Float64Array)) : stored === 'float32' ? view(Float32Array) : view(Uint16Array);
  if (target === undefined || target === stored) return tensor(data, st.shape, { dtype: stored, copy: !fresh });
  const shared = tensor(data, st.shape, { dtype: stored, copy: false });
  try {
    return castSync(shared, target);
  } finally {
    shared.dispose();
  }
}

function readCounter(name: string, st: StoredTensor): bigint {
  if (st.numel !== 1 || (st.dtype !== 'I64' && st.dtype !== 'I32'))
    throw new CheckpointError(`SecViT.load: '${name}' must be an integer scalar, got ${st.dtype} [${st.shape.join(', ')}]`);
  const b = st.read();
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return st.dtype === 'I64' ? dv.getBigInt64(0, true) : BigInt(dv.getInt32(0, true));
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/** Whether a stored (int64/int32) or given (int32/float) tensor holds exactly these integers. */
function sameIndex(t: StoredTensor | Tensor, values: Int32Array): boolean {
  let got: ArrayLike<number | bigint>;
  if (t instanceof Tensor) got = t.dataSync() as ArrayLike<number>;
  else if (t.dtype === 'I64') {
    const b = t.read();
    got = new BigInt64Array(b.slice().buffer, 0, t.numel);
  } else if (t.dtype === 'I32') {
    const b = t.read();
    got = new Int32Array(b.slice().buffer, 0, t.numel);
  } else return false;
  if (got.length !== values.length) return false;
  for (let i = 0; i < values.length; i++) if (Number(got[i]) !== values[i]) return false;
  return true;
}

/** Strips DataParallel's `module.` prefix when every key has it. */
export function stripModulePrefix<T>(tensors: Map<string, T>): Map<string, T> {
  const keys = [...tensors.keys()];
  if (keys.length === 0 || !keys.every((k) => k.startsWith('module.'))) return tensors;
  return new Map([...tensors].map(([k, v]) => [k.slice(7), v]));
}

/**
 * Fills the model's slots from a state dict (stored tensors from a checkpoint, or Tensors).
 * Strict: one error listing every missing, unexpected and misshapen key. `num_batches_tracked`
 * may be absent (torch tolerates it too). Values are converted to the model's dtype and device.
 * `onProgress` follows the bytes read (see LoadStateDictOptions).
 */
export function loadStateDict(model: VisionModel, state: Map<string, StoredTensor | Tensor>, options: LoadStateDictOptions = {}): void {
  const op = `${model.className}.load`;
  if (model.disposed) throw new Error(`${model.className}.loadStateDict: the model has been disposed`);
  if (!(state instanceof Map)) throw new TypeError(`${model.className}.loadStateDict: state must be a Map of name -> tensor`);
  const strict = options.strict ?? true;
  const onProgress = checkProgress('SecViT.load', options.onProgress);
  const entries = stripModulePrefix(state);
  const missing: string[] = [];
  const misshapen: string[] = [];
  const used = new Set<string>();
  const slots = [...model.namedSlots()];
  for (const [name, slot] of slots) {
    const t = entries.get(name);
    if (t === undefined) missing.push(name);
    else if (!sameShape(t.shape, slot.shape)) misshapen.push(`${name}: expected [${slot.shape.join(', ')}], got [${t.shape.join(', ')}]`);
    used.add(name);
  }
  const counters = [...model.namedCounters()];
  for (const [name] of counters) used.add(name);
  // Index tables the model computes (Swin's relative_position_index): optional, but when present
  // they must hold the model's values.
  for (const [name, table] of model.namedIndexTables()) {
    used.add(name);
    const t = entries.get(name);
    if (t === undefined) continue;
    if (!sameShape(t.shape, table.shape)) misshapen.push(`${name}: expected [${table.shape.join(', ')}], got [${t.shape.join(', ')}]`);
    else if (!sameIndex(t, table.values)) misshapen.push(`${name}: its values differ from the ones this model's config computes`);
  }
  const unexpected = [...entries.keys()].filter((k) => !used.has(k));
  const problems: string[] = [];
  if (misshapen.length) problems.push(`misshapen (${misshapen.length}): ${misshapen.join('; ')}`);
  if (strict && missing.length) problems.push(`missing (${missing.length}): ${missing.join(', ')}`);
  if (strict && unexpected.length) problems.push(`unexpected (${unexpected.length}): ${unexpected.join(', ')}`);
  if (problems.length) throw new CheckpointError(`${op}: the checkpoint does not fit the model:\n  ${problems.join('\n  ')}`);

  // Convert everything first, then swap: a failure leaves the model as it was.
  const made = new Map<string, Tensor>();
  const scratch = { bytes: new Uint8Array(0) };
  const bytesOf = (t: StoredTensor | Tensor): number =>
    t instanceof Tensor ? t.size * (t.dtype === 'float16' || t.dtype === 'bfloat16' ? 2 : 4) : t.numel * STORED_DTYPE_SIZE[t.dtype];
  let total = 0;
  for (const [name] of slots) {
    const t = entries.get(name);
    if (t !== undefined) total += bytesOf(t);
  }
  const report = progressReporter(onProgress, total);
  let done = 0;
  try {
    report(0);
    // Copies (or views) detached from any graph of the given tensors: the model's own leaves.
    noGrad(() => {
      for (const [name] of slots) {
        const t = entries.get(name);
        if (t === undefined) continue;
        if (t instanceof Tensor) {
          if (t.dtype === 'int32') throw new CheckpointError(`${op}: '${name}' is int32; a floating-point tensor was expected`);
          made.set(name, model.makeTensor(t.device === 'cpu' && t.dtype === 'float32' ? t.contiguous() : t.toSync('cpu')));
        } else {
          made.set(name, model.makeTensor(hostTensor(name, t, scratch, model.device === 'cpu' ? model.dtype : undefined)));
        }
        done += bytesOf(t);
        report(done);
      }
    });
  } catch (e) {
    for (const t of made.values()) t.dispose();
    throw e;
  }
  model.releaseDerived();
  for (const [name, slot] of slots) {
    const t = made.get(name);
    if (t === undefined) continue;
    // Parameters require grad (PyTorch's default), or keep the flag of the tensor they replace.
    if (slot.kind === 'parameter') t.requiresGrad = slot.tensor ? slot.tensor.requiresGrad : true;
    slot.tensor?.dispose();
    slot.tensor = t;
  }
  for (const [name, c] of counters) {
    const t = entries.get(name);
    if (t !== undefined && !(t instanceof Tensor)) c.value = readCounter(name, t);
  }
}

const STORED = { float32: 'F32', bfloat16: 'BF16', float16: 'F16' } as const;

/** The model as safetensors bytes: reference names and shapes, the config in the metadata. */
export function encodeModel(model: VisionModel, extraMetadata: Record<string, string> = {}): Uint8Array {
  if (model.disposed) throw new Error(`${model.className}.save: the model has been disposed`);
  const tensors: [string, TensorBytes][] = [];
  const counters = new Map(model.namedCounters());
  const order = new Map<string, number>();
  for (const [name, slot] of model.namedSlots()) {
    order.set(name, order.size);
    const t = slot.tensor;
    if (!t) throw new Error(`${model.className}.save: '${name}' is not loaded`);
    const data = t.dataSync();
    tensors.push([name, { dtype: STORED[model.dtype], shape: slot.shape, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) }]);
  }
  for (const [name, c] of counters) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigInt64(0, c.value, true);
    tensors.push([name, { dtype: 'I64', shape: [], data: b }]);
  }
  for (const [name, table] of model.namedIndexTables()) {
    const b = new Uint8Array(8 * table.values.length);
    const dv = new DataView(b.buffer);
    table.values.forEach((v, i) => dv.setBigInt64(8 * i, BigInt(v), true));
    tensors.push([name, { dtype: 'I64', shape: table.shape, data: b }]);
  }
  // Keep the reference's key order: a counter follows its batch norm's running_var, an index
  // table its bias table.
  const rank = (name: string): number =>
    order.get(name) ?? (order.get(name.replace(/num_batches_tracked$/, 'running_var'))
      ?? order.get(name.replace(/relative_position_index$/, 'relative_position_bias_table')) ?? order.size) + 0.5;
  tensors.sort((a, b) => rank(a[0]) - rank(b[0]));
  return encodeSafetensors(tensors, { format: 'pt', config: JSON.stringify(model.referenceConfig()), ...extraMetadata });
}

export function saveModel(model: VisionModel, path: string, extraMetadata: Record<string, string> = {}): void {
  if (typeof path !== 'string') throw new TypeError(`${model.className}.save: path must be a string`);
  writeFileAtomic(path, encodeModel(model, { source: `secvit ${basename(path)}`, ...extraMetadata }));
}

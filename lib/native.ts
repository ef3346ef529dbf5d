// The native addon's surface, typed in one place. Everything here is implemented in
// native/napi; nothing else in lib/ touches the addon object directly.
import bindings from 'bindings';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export type NativeDType = 'float32' | 'int32' | 'float16' | 'bfloat16';
export type NativeDevice = 'cpu' | 'cuda' | 'cuda-emu';
export type NativeArray = Float32Array | Int32Array | Uint16Array;

/** A native tensor. Owned by exactly one `Tensor`; never exposed to users. */
export interface TensorHandle {
  dispose(): void;
  readonly disposed: boolean;
  readSync(): NativeArray;
  read(): Promise<NativeArray>;
  toSync(device: NativeDevice): TensorHandle;
  to(device: NativeDevice): Promise<TensorHandle>;
  /** Blocks until the tensor is computed; throws the error of the op that failed to compute it. */
  wait(): void;
  /** Resolves once the tensor is computed (without blocking); rejects with the error of the op that failed. */
  ready(): Promise<void>;
  info(): {
    shape: number[];
    strides: number[];
    offset: number;
    dtype: NativeDType;
    device: NativeDevice;
    bytes: number;
    borrowed: boolean;
    /** Identity of the memory block (views of one block share it), while it lives. */
    storage: number;
  };
}

export interface NativeMemory {
  tensors: number;
  hostBytes: number;
  deviceBytes: number;
  peakHostBytes: number;
  peakDeviceBytes: number;
  gcReleasedTensors: number;
}

export interface NativeBackendInfo {
  name: NativeDevice;
  available: boolean;
  reason?: string;
  description?: string;
  threads?: number;
  simd?: 'avx2-fma' | 'scalar';
  reservedBytes?: number;
  /** cpu: idle bytes in the block cache (part of reservedBytes). */
  cachedBytes?: number;
  /** cpu: what the kernels' per-thread scratch buffers hold (not part of reservedBytes). */
  scratchBytes?: number;
  driverAllocations?: number;
}

export interface NativeAddon {
  TensorHandle: new () => TensorHandle;
  createTensor(
    data: NativeArray | null,
    shape: readonly number[],
    dtype: NativeDType,
    device: NativeDevice,
    copy: boolean,
  ): TensorHandle;
  memory(): NativeMemory;
  resetPeakMemory(): void;
  backends(): NativeBackendInfo[];
  emptyCache(device: NativeDevice): void;
  synchronize(device: NativeDevice): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  availableCores(): number;
  setCpuSimd(simd: 'scalar' | 'avx2-fma'): void;
  /** The op profiler: on clears the sums and starts timing every queued kernel; off stops. */
  setOpProfiling(on: boolean): void;
  /** Kernel wall time summed by device and label (the op's name, or a finer label such as 'conv2d:depthwise'). */
  opProfile(): { device: NativeDevice; label: string; calls: number; ms: number }[];
  readonly builtWithCuda: boolean;

  /**
   * The op registry: each op's name, inputs (a trailing '?' marks an optional one), attributes and
   * their defaults (null: required). Index = op id.
   */
  opNames(): string[];
  opSchema(id: number): { inputs: string[]; attrs: string[]; defaults: (number | null)[] };
  /**
   * Runs op `id` (queued on the inputs' device; returns at once unless `sync`): inputs in the
   * op's order (null for an absent optional input), attributes as numbers in the op's order.
   * One output: its handle; several: an array.
   */
  run(id: number, inputs: readonly (TensorHandle | null)[], attrs: readonly number[], sync: boolean): TensorHandle | TensorHandle[];
  /**
   * Metadata of the tensors the last createTensor/run/view call made, slot i for its i-th
   * result: [ndim, dtype, device, offset, shape[8], strides[8]] (dtype and device as codes).
   */
  readonly meta: Float64Array;
  /** A view over `h`'s storage (element strides and offset). */
  view(h: TensorHandle, shape: readonly number[], strides: readonly number[], offset: number): TensorHandle;
}

// The package root: the nearest directory above this file whose package.json is secvit's.
// (dist/cjs has a package.json of its own, which would fool bindings' own search.)
export function packageRoot(): string {
  let dir = path.dirname(bindings.getFileName());
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'secvit') return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('secvit: cannot find the package root above ' + bindings.getFileName());
    dir = up;
  }
}

function load(): NativeAddon {
  // SECVIT_ADDON_PATH picks a specific build (e.g. the AddressSanitizer one in CI).
  const explicit = process.env.SECVIT_ADDON_PATH;
  if (explicit) return createRequire(process.cwd() + '/')(explicit) as NativeAddon;
  try {
    return bindings({ bindings: 'secvit', module_root: packageRoot() }) as NativeAddon;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(
      `secvit: the native addon could not be loaded (${why.split('\n')[0]}). ` +
        'Build it with `npm run build:native` (needs cmake and a C++ compiler).',
    );
  }
}

export const native: NativeAddon = load();

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

/** Where the loaded addon came from: `SECVIT_ADDON_PATH`, a source build, or the package's prebuilt. */
export interface AddonOrigin {
  kind: 'env' | 'source' | 'prebuilt';
  file: string;
}

/** The prebuilt addon's folder for this platform: `prebuilds/<platform>-<arch>` (prebuildify's layout). */
export function prebuildDir(root: string = packageRoot()): string {
  return path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
}

/**
 * The addon to load, in order: `SECVIT_ADDON_PATH` (a specific build, e.g. the sanitizer one),
 * a source build (`build/Release/secvit.node`: made by `npm run build:native`, by the install
 * script when no prebuilt fits, or by `SECVIT_BUILD_FROM_SOURCE=1 npm rebuild secvit`), then the
 * prebuilt for this platform and architecture. Null when there is none.
 */
export function findAddon(root: string = packageRoot()): AddonOrigin | null {
  const explicit = process.env.SECVIT_ADDON_PATH;
  if (explicit) return { kind: 'env', file: path.resolve(explicit) };
  const source = path.join(root, 'build', 'Release', 'secvit.node');
  if (existsSync(source)) return { kind: 'source', file: source };
  const prebuilt = path.join(prebuildDir(root), 'secvit.node');
  if (existsSync(prebuilt)) return { kind: 'prebuilt', file: prebuilt };
  return null;
}

// The advice a user can follow in their own project (not the repository's npm scripts).
const REBUILD = 'npm rebuild secvit';

let origin: AddonOrigin | null = null;

/** Which addon this process loaded (for `secvit info` and bug reports). */
export function addonOrigin(): AddonOrigin {
  if (!origin) throw new Error('secvit: the native addon is not loaded');
  return origin;
}

function load(): NativeAddon {
  const root = packageRoot();
  const found = findAddon(root);
  const platform = `${process.platform}-${process.arch}`;
  if (!found) {
    throw new Error(
      `secvit: no native addon for ${platform}: no prebuilt in ${prebuildDir(root)} and no source build in ` +
        `${path.join(root, 'build', 'Release')}. Build it from source with \`${REBUILD}\` in your project ` +
        '(needs cmake and a C++20 compiler; a few minutes), or set SECVIT_ADDON_PATH to a secvit.node.',
    );
  }
  try {
    const addon = createRequire(path.join(root, 'package.json'))(found.file) as NativeAddon;
    origin = found;
    return addon;
  } catch (err) {
    const why = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    const fix =
      found.kind === 'prebuilt'
        ? `Build one for this machine instead with \`SECVIT_BUILD_FROM_SOURCE=1 ${REBUILD}\` in your project (needs cmake and a C++20 compiler).`
        : found.kind === 'source'
          ? `Rebuild it with \`SECVIT_BUILD_FROM_SOURCE=1 ${REBUILD}\` in your project, or delete ${path.dirname(path.dirname(found.file))} to use the prebuilt.`
          : 'Check SECVIT_ADDON_PATH.';
    throw new Error(`secvit: the native addon ${found.file} (${found.kind}) could not be loaded for ${platform}: ${why}. ${fix}`);
  }
}

export const native: NativeAddon = load();

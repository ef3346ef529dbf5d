import { native } from './native.js';

export interface MemoryInfo {
  /** Live (not disposed) tensors. */
  tensors: number;
  /** Bytes of host memory held by tensors, including CPU tensors that share a TypedArray. */
  hostBytes: number;
  /** Bytes of device memory held by tensors (cuda and cuda-emu; the allocator's cache is not counted). */
  deviceBytes: number;
  peakHostBytes: number;
  peakDeviceBytes: number;
  /** Tensors that were never disposed and were released by the garbage collector (process-wide, like the other counters). */
  gcReleasedTensors: number;
}

/** Exact counters from the native runtime. */
export function memory(): MemoryInfo {
  return native.memory();
}

/** Resets peakHostBytes/peakDeviceBytes to the current values. */
export function resetPeakMemory(): void {
  native.resetPeakMemory();
}

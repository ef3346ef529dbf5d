// The op profiler: kernel wall time by op (and by path, for ops with several: conv2d's
// depthwise, 1x1 and dense kernels), summed on each device's queue. For reading where a forward
// spends its time; it adds one clock read per kernel while on.
import { native } from './native.js';
import type { Device } from './backends.js';

export interface OpProfileRow {
  device: Device;
  /** The op's name, or a finer label ('conv2d:depthwise'). */
  label: string;
  calls: number;
  /** Summed wall time of the kernels on their device's dispatcher (CUDA: the host-side launch). */
  ms: number;
}

let active = false;

/**
 * Runs `fn` (and awaits it) with the profiler on; returns its result and the kernel time by
 * label, largest first. Everything queued by then is waited for before the sums are read. One
 * profile at a time: a nested or concurrent call is an Error. Ops run by other threads (workers)
 * in the meantime are counted too.
 */
export async function profileOps<T>(fn: () => T | Promise<T>): Promise<{ result: T; ops: OpProfileRow[] }> {
  if (typeof fn !== 'function') throw new TypeError(`profileOps: fn must be a function, got ${typeof fn}`);
  if (active) throw new Error('profileOps: a profile is already running');
  active = true;
  native.setOpProfiling(true);
  try {
    const result = await fn();
    for (const b of native.backends()) if (b.available) native.synchronize(b.name);
    const ops = native.opProfile().sort((a, b) => b.ms - a.ms);
    return { result, ops };
  } finally {
    native.setOpProfiling(false);
    active = false;
  }
}

import { native, type NativeBackendInfo, type NativeDevice } from './native.js';

export type Device = NativeDevice;
/** A device, or 'auto': CUDA when it is usable, otherwise the CPU. */
export type DeviceChoice = Device | 'auto';

export type BackendInfo = NativeBackendInfo;

/**
 * Every backend the addon knows, with whether it can be used here and, when not, why.
 * `cuda-emu` runs the CUDA kernels on the CPU through the CUDA emulator: it exists to test
 * them, and is slow.
 */
export function backends(): BackendInfo[] {
  return native.backends();
}

export interface DeviceSelection {
  device: Device;
  /** Why this device was chosen. */
  reason: string;
}

/** Resolves a device choice. 'auto' picks CUDA when usable and says why it did or did not. */
export function selectDevice(choice: DeviceChoice = 'auto'): DeviceSelection {
  if (choice !== 'auto') {
    const device = checkDevice(choice, 'selectDevice: device');
    return { device, reason: `'${device}' was asked for` };
  }
  const cuda = native.backends().find((b) => b.name === 'cuda');
  if (cuda?.available) return { device: 'cuda', reason: `CUDA is available (${cuda.description})` };
  return { device: 'cpu', reason: `CUDA is not usable: ${cuda?.reason ?? 'unknown reason'}` };
}

/** The devices, in the native enum's order. */
export const DEVICES: readonly Device[] = ['cpu', 'cuda', 'cuda-emu'];

/** Validates a device name (TypeError/RangeError naming `what`) and that it is usable here. */
export function checkDevice(device: unknown, what: string): Device {
  if (typeof device !== 'string') throw new TypeError(`${what}: expected a device name, got ${typeof device}`);
  if (device === 'auto') return selectDevice('auto').device;
  if (!(DEVICES as readonly string[]).includes(device))
    throw new RangeError(`${what}: expected 'cpu', 'cuda', 'cuda-emu' or 'auto', got '${device}'`);
  if (device !== 'cpu') {
    const info = native.backends().find((b) => b.name === device);
    if (!info?.available) throw new Error(`${what}: '${device}' is not available: ${info?.reason}`);
  }
  return device as Device;
}

/** Threads the CPU backend uses (the calling thread included). */
export function getNumThreads(): number {
  return native.getNumThreads();
}

/** Sets the CPU thread pool size (>= 1). The default is the number of cores this process may use. */
export function setNumThreads(n: number): void {
  if (typeof n !== 'number') throw new TypeError(`setNumThreads: n must be a number, got ${typeof n}`);
  if (!Number.isInteger(n)) throw new RangeError(`setNumThreads: n must be an integer, got ${n}`);
  if (n < 1 || n > 1024) throw new RangeError(`setNumThreads: n must be in [1, 1024], got ${n}`);
  native.setNumThreads(n);
}

/** Releases cached, unused device memory of `device` back to the driver. */
export function emptyCache(device: Device): void {
  native.emptyCache(checkDevice(device, 'emptyCache: device'));
}

/**
 * Blocks until every op queued so far on `device` has run (torch.cuda.synchronize). Ops read
 * their inputs when they run, not when they are called: a tensor made over your TypedArray
 * borrows it, so write to that array only after the work reading it has run (after this, or after
 * reading a result computed from it), or make the tensor with `{ copy: true }`.
 */
export function synchronize(device: Device = 'cpu'): void {
  native.synchronize(checkDevice(device, 'synchronize: device'));
}

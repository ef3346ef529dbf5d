export { Tensor, tensor, zeros, type DType, type DataArray, type MemoryFormat, type OrtLikeTensor, type TensorOptions } from './tensor.js';
export { DisposedError } from './errors.js';
export { tidy, keep } from './engine.js';
export { memory, resetPeakMemory, type MemoryInfo } from './memory.js';
export {
  backends,
  selectDevice,
  getNumThreads,
  setNumThreads,
  emptyCache,
  type BackendInfo,
  type Device,
  type DeviceChoice,
  type DeviceSelection,
} from './backends.js';
// Ops: every public op of these files (adding an op to one of them needs no change here).
export * from './ops/matmul.js';
export * from './ops/attention.js';
export * from './ops/layers.js';
export { listOps } from './ops/run.js';
export { decodeHalf, encodeHalf } from './half.js';

export { Tensor, tensor, zeros, type DType, type DataArray, type OrtLikeTensor, type TensorOptions } from './tensor.js';
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
export { matmul, matmulSync } from './ops/matmul.js';
export {
  secAttention,
  secAttentionSync,
  secAttentionUnfusedSync,
  windowAttention,
  windowAttentionSync,
  globalAttention,
  globalAttentionSync,
  type SecAttentionOptions,
  type SecAttentionResult,
  type WindowAttentionOptions,
} from './ops/attention.js';
export { decodeHalf, encodeHalf } from './half.js';

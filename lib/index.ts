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
export {
  conv2d,
  fusedConv2d,
  linear,
  fusedLinear,
  gelu,
  silu,
  swish,
  add,
  mul,
  layerNorm,
  batchNorm,
  foldBatchNorm,
  rope2d,
  globalAvgPool2d,
  reshape,
  permute,
  contiguous,
  type Activation,
  type Conv2dOptions,
  type FusedConv2dOptions,
  type FusedLinearOptions,
  type LayerNormOptions,
  type BatchNormParams,
} from './ops/layers.js';
export { listOps } from './ops/run.js';

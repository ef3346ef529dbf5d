export { Tensor, tensor, zeros, type DType, type DataArray, type MemoryFormat, type OrtLikeTensor, type TensorOptions } from './tensor.js';
export { DisposedError } from './errors.js';
export { tidy, keep } from './engine.js';
// Autograd: recording, the gradient registry, and backward() (installed on Tensor on import).
export { noGrad, enableGrad, isGradEnabled, registerGradient, differentiableOps, type GradientDef, type GradContext } from './autograd/graph.js';
import './autograd/backward.js';
export { memory, resetPeakMemory, type MemoryInfo } from './memory.js';
export {
  backends,
  selectDevice,
  getNumThreads,
  setNumThreads,
  emptyCache,
  synchronize,
  type BackendInfo,
  type Device,
  type DeviceChoice,
  type DeviceSelection,
} from './backends.js';
// Ops: every public op of these files (adding an op to one of them needs no change here).
export * from './ops/matmul.js';
export * from './ops/attention.js';
export * from './ops/layers.js';
export * from './ops/reduce.js';
export * from './ops/loss.js';
export * from './ops/dropout.js';
export { listOps } from './ops/run.js';
export { profileOps, type OpProfileRow } from './profile.js';
export { decodeHalf, encodeHalf } from './half.js';
// Models and checkpoints.
export {
  SecViT, normalize, PRETRAINED_CFG, MIN_INPUT_SIZE,
  SecAttention, Block, FFN, Stage, Downsample, RoPE, Conv2d, BatchNorm2d, LayerNorm,
  type ClusterRecord, type SecViTOptions,
} from './models/secvit.js';
export {
  resolveConfig, inferConfig, toReferenceConfig, hiddenDim, windowFor, CONFIG_NAMES, PUBLISHED_CLUSTERS,
  type SecViTConfig, type ReferenceConfig, type ConfigName, type ConfigInput,
} from './models/config.js';
export {
  readCheckpoint, loadStateDict, type Checkpoint, type LoadOptions, type LoadProgress, type LoadStateDictOptions, type ReadCheckpointOptions,
} from './models/load.js';
export {
  createModel, loadModel, listModels, modelNames, resolveModelConfig, resolveSwinConfig, resolveVitConfig, familyOfKeys,
  type ModelConfig, type ModelConfigInput, type CreateModelOptions, type LoadModelOptions, type ModelInfo,
} from './models/registry.js';
export {
  VisionModel, IMAGENET_MEAN, IMAGENET_STD,
  type ModelFamily, type ModelDType, type ModelOptions, type PretrainedCfg,
} from './models/base.js';
export {
  SwinTransformer, SwinTransformerBlock, ShiftedWindowAttention, PatchMerging, relativePositionIndex, swinWindowCounts,
  type SwinConfig, type SwinAttention,
} from './models/swin.js';
export { MODEL_LIMITS } from './models/limits.js';
export { VisionTransformer, EncoderBlock, MultiheadAttention, type VitConfig, type VitAttention } from './models/vit.js';
export { Linear, ModuleList } from './nn/layers.js';
export * from './optim/index.js';
export { Module, type Slot, type SlotKind, type Counter, type Init } from './nn/module.js';
export { Rng } from './nn/random.js';
export { randn, rand, type RandomOptions } from './random.js';
export { readSafetensors, encodeSafetensors, writeSafetensors, SAFETENSORS_MAX_HEADER, SAFETENSORS_MAX_TENSORS, type SafetensorsFile, type TensorBytes } from './io/safetensors.js';
export { readPth, WEIGHT_KEYS, type PthFile } from './io/pth.js';
export { CheckpointError, type StoredTensor, type StoredDType } from './io/source.js';
export { PickleError } from './io/pickle.js';
// Images in, labels out.
export { preprocess, resizeAndCrop, type PreprocessOptions } from './vision/preprocess.js';
export { decodeImage, toRgb, type ImageInput } from './vision/image.js';
export { resizeLikePillow, resizeShorterSide, centerCropOffsets, type RawImage, type ResampleFilter } from './vision/resize.js';
export { IMAGENET_CLASSES } from './vision/imagenet-classes.js';
export { pipeline, topKPredictions, type ImageClassificationPipeline, type Prediction, type PipelineOptions, type ClassifyOptions } from './pipeline.js';
export { clusterPicture, clusterOfTokens, clusterColor, tintByCluster, type ClusterPicture, type ClusterPictureOptions, type ClusterPanel } from './vision/clusters.js';
export { fit, finetuneFrom, DEIT_RECIPE, TrainingError, type TrainOptions, type TrainResult, type EpochLog, type Recipe } from './train/trainer.js';
export { evaluate, type EvalResult } from './train/evaluate.js';
export { learningRate, type ScheduleOptions } from './train/schedule.js';
export { ModelEma } from './train/ema.js';
export { readIdx, parseIdx, loadIdx, isIdxDir, DataError, IDX_MAX_BYTES, type IdxArray } from './data/idx.js';
export { loadImageData, type ImageData, type LoadDataOptions } from './data/sources.js';
export { subset, resizeSet, pixelStats, type ImageSet } from './data/dataset.js';
export { BatchLoader, epochOrder, type LoaderOptions } from './data/loader.js';
export { parseRandAugment, type AugmentOptions, type MixOptions, type ImageTransform } from './data/augment.js';
export { trainingCurves, confusionPicture, encodePng } from './vision/charts.js';

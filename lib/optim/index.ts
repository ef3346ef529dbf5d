export { Optimizer, decayGroups, type ParamGroup, type ParamGroupInput, type ParamsInput, type OptimizerStateDict } from './optimizer.js';
export { AdamW, type AdamWOptions } from './adamw.js';
export { SGD, type SGDOptions } from './sgd.js';
export { clipGradNorm } from './clip.js';

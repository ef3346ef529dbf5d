// The learning-rate schedule of DeiT's recipe (timm's CosineLRScheduler with warmup), evaluated
// per step at fractional epochs: a linear warmup from warmupLr to lr over warmupEpochs, then a
// half cosine from lr down to minLr at the last epoch.

export interface ScheduleOptions {
  lr: number;
  epochs: number;
  warmupEpochs: number;
  warmupLr: number;
  minLr: number;
}

/** The learning rate at `t` epochs into training (t may be fractional). */
export function learningRate(s: ScheduleOptions, t: number): number {
  const warm = Math.min(s.warmupEpochs, s.epochs);
  if (t < warm) return s.warmupLr + ((s.lr - s.warmupLr) * t) / warm;
  const span = s.epochs - warm;
  if (span <= 0) return s.lr;
  const f = Math.min(Math.max((t - warm) / span, 0), 1);
  return s.minLr + 0.5 * (s.lr - s.minLr) * (1 + Math.cos(Math.PI * f));
}

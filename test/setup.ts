// Every test must leave the native memory counters where it found them: no tensor and no byte
// may outlive the test that made it.
import { afterEach, beforeEach, expect } from 'vitest';
import { memory } from '../lib/index.js';

let baseline: ReturnType<typeof memory> | undefined;

beforeEach(() => {
  baseline = memory();
});

afterEach(() => {
  if (!baseline) return;
  const now = memory();
  expect({ tensors: now.tensors, hostBytes: now.hostBytes, deviceBytes: now.deviceBytes }, 'memory() after the test').toEqual({
    tensors: baseline.tensors,
    hostBytes: baseline.hostBytes,
    deviceBytes: baseline.deviceBytes,
  });
});

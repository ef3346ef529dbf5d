import { backends, type Device } from '../../lib/index.js';

/** The CPU's SIMD paths the suites run on: both where AVX2/FMA is present. */
export const SIMD_PATHS: Array<'scalar' | 'avx2-fma'> =
  backends().find((b) => b.name === 'cpu')!.simd === 'avx2-fma' ? ['avx2-fma', 'scalar'] : ['scalar'];

/**
 * The devices the op suites run on: cpu and cuda-emu always, cuda when a GPU is present.
 * SECVIT_TEST_REQUIRE_CUDA=1 (npm run test:gpu) makes a missing GPU a failure, not a skip.
 */
export function testDevices(): Device[] {
  const list = backends();
  const devices: Device[] = ['cpu', 'cuda-emu'];
  const cuda = list.find((b) => b.name === 'cuda');
  if (cuda?.available) devices.push('cuda');
  else if (process.env.SECVIT_TEST_REQUIRE_CUDA === '1')
    throw new Error(`SECVIT_TEST_REQUIRE_CUDA=1 but CUDA is not available: ${cuda?.reason}`);
  return devices;
}

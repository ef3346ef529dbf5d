// Backend reporting, device selection, and the cuda-emu caching allocator (the same allocator
// source as the real CUDA backend).
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { backends, emptyCache, memory, selectDevice, tensor, zeros } from '../lib/index.js';
import { native } from '../lib/native.js';

const requireCuda = process.env.SECVIT_TEST_REQUIRE_CUDA === '1';
const cuda = backends().find((b) => b.name === 'cuda')!;

describe('backends()', () => {
  it('lists cpu, cuda and cuda-emu', () => {
    const list = backends();
    expect(list.map((b) => b.name)).toEqual(['cpu', 'cuda', 'cuda-emu']);
    const cpu = list[0];
    expect(cpu.available).toBe(true);
    expect(cpu.threads).toBeGreaterThanOrEqual(1);
    expect(['avx2-fma', 'scalar']).toContain(cpu.simd);
    expect(list[2].available).toBe(true);
    expect(list[2].description).toContain('emulator');
  });

  it.runIf(!cuda.available)('says why CUDA is unavailable, and auto falls back to the CPU', () => {
    expect(requireCuda).toBe(false);
    expect(cuda.reason).toMatch(/CUDA|nvcc|GPU/);
    if (native.builtWithCuda) expect(cuda.reason).toMatch(/no CUDA driver found|no CUDA-capable GPU/);
    else expect(cuda.reason).toMatch(/built without CUDA/);
    const sel = selectDevice('auto');
    expect(sel.device).toBe('cpu');
    expect(sel.reason).toContain(cuda.reason!);
    expect(() => tensor([1], [1], { device: 'cuda' })).toThrow(new Error(`tensor: device: 'cuda' is not available: ${cuda.reason}`));
    using t = tensor([1, 2], [2], { device: 'auto' });
    expect(t.device).toBe('cpu');
  });

  it.runIf(cuda.available)('uses CUDA when it is there', () => {
    expect(cuda.description).toMatch(/sm_\d+/);
    expect(selectDevice('auto').device).toBe('cuda');
    using t = tensor([1, 2, 3], [3], { device: 'auto' });
    expect(t.device).toBe('cuda');
    expect(Array.from(t.dataSync())).toEqual([1, 2, 3]);
  });

  // Not for a specific build chosen by SECVIT_ADDON_PATH (the ASan build leaves nvcc out).
  it.skipIf(process.env.SECVIT_ADDON_PATH)('was built with CUDA when nvcc is on this machine', () => {
    let nvcc = false;
    try {
      execFileSync('nvcc', ['--version'], { stdio: 'ignore' });
      nvcc = true;
    } catch {
      nvcc = false;
    }
    if (nvcc && process.env.SECVIT_CUDA !== 'OFF') expect(native.builtWithCuda).toBe(true);
  });
});

describe('the caching device allocator (cuda-emu)', () => {
  it('reuses freed blocks instead of asking the driver again', () => {
    const emu = () => backends().find((b) => b.name === 'cuda-emu')!;
    emptyCache('cuda-emu');
    const start = emu().driverAllocations!;
    for (let i = 0; i < 20; i++) zeros([1000 + i], { device: 'cuda-emu' }).dispose();
    // All 20 requests round to the same 512-byte class, so one driver allocation serves them.
    expect(emu().driverAllocations! - start).toBe(1);
    expect(emu().reservedBytes).toBeGreaterThanOrEqual(4096);
    const before = memory().deviceBytes;
    const big = zeros([3 << 20], { device: 'cuda-emu' });
    expect(memory().deviceBytes).toBe(before + (3 << 20) * 4);
    big.dispose();
    emptyCache('cuda-emu');
    expect(emu().reservedBytes).toBe(0);
  });

  it('turns device out-of-memory into an Error that says how much was asked for', () => {
    const script = `
      const s = require(process.cwd());
      try { s.zeros([1 << 20], { device: 'cuda-emu' }); console.log('no error'); }
      catch (e) { console.log(e.constructor.name + ': ' + e.message); }`;
    const out = execFileSync(process.execPath, ['-e', script], {
      env: { ...process.env, SECVIT_EMU_DEVICE_MEMORY: String(1 << 20) },
      encoding: 'utf8',
    });
    expect(out).toMatch(/^Error: cuda-emu: out of device memory allocating 4194304 bytes/);
  });
});

describe('profileOps', () => {
  it('sums kernel time by op and conv path; off again afterwards; one profile at a time', async () => {
    const { profileOps, conv2d, matmul } = await import('../lib/index.js');
    using x = tensor(new Float32Array(2 * 8 * 9 * 9).fill(0.5), [2, 8, 9, 9]);
    using wd = tensor(new Float32Array(8 * 9).fill(0.1), [8, 1, 3, 3]);
    using wp = tensor(new Float32Array(4 * 8).fill(0.1), [4, 8, 1, 1]);
    using wk = tensor(new Float32Array(4 * 8 * 9).fill(0.1), [4, 8, 3, 3]);
    using a = tensor(new Float32Array(64 * 64).fill(1), [64, 64]);
    const { result, ops } = await profileOps(async () => {
      const outs = [conv2d(x, wd, null, { padding: 1, groups: 8 }), conv2d(x, wd, null, { padding: 1, groups: 8 }),
        conv2d(x, wp, null, {}), conv2d(x, wk, null, { padding: 1 }), matmul(a, a)];
      await outs[4].data();
      outs.forEach((o) => o.dispose());
      return 7;
    });
    expect(result).toBe(7);
    const by = new Map(ops.map((o) => [o.label, o]));
    expect(by.get('conv2d:depthwise')?.calls).toBe(2);
    expect(by.get('conv2d:1x1')?.calls).toBe(1);
    expect(by.get('conv2d:dense')?.calls).toBe(1);
    expect(by.get('matmul')?.calls).toBe(1);
    for (const o of ops) {
      expect(o.device).toBe('cpu');
      expect(o.ms).toBeGreaterThan(0);
    }
    expect(ops.map((o) => o.ms)).toEqual([...ops.map((o) => o.ms)].sort((p, q) => q - p));
    // Off afterwards: nothing more is counted.
    const m = matmul(a, a);
    await m.data();
    m.dispose();
    expect(native.opProfile().find((o) => o.label === 'matmul')?.calls).toBe(1);
    // Nested: an Error, and the outer profile still works.
    await profileOps(async () => {
      await expect(profileOps(() => 1)).rejects.toThrow(/already running/);
    });
    await expect(profileOps(42 as unknown as () => number)).rejects.toThrow(TypeError);
  });
});

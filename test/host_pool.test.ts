// The CPU caching allocator (native/core/host_pool.cpp): requests of 64 KiB and more are carved
// from segments, best fit, split and merged, so that memory freed by one stage of a model serves
// the next stage's differently sized tensors. Observed through the CPU backend's reservedBytes
// (every byte obtained from the system) and by reading back what every tensor holds (a block
// handed out twice would show as overwritten data).
import { describe, expect, it } from 'vitest';
import { backends, emptyCache, tensor, type Tensor } from '../lib/index.js';
import { Rng } from './helpers/random.js';

const reserved = () => backends().find((b) => b.name === 'cpu')!.reservedBytes!;
const MB = 1 << 20;

// A CPU tensor in secvit's own memory (copy: true; a shared TypedArray is not the pool's).
function owned(rng: Rng, elements: number): { t: Tensor; values: Float32Array } {
  const values = rng.normals(elements);
  return { t: tensor(values, [elements], { copy: true }), values };
}

async function expectIntact(all: { t: Tensor; values: Float32Array }[]): Promise<void> {
  // Byte comparison: toEqual walks million-element arrays slowly.
  for (const { t, values } of all) {
    const got = await t.data();
    expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(values.buffer))).toBe(true);
  }
}

describe('CPU caching allocator', () => {
  it('a freed block serves smaller requests, and freed neighbours merge to serve a larger one', async () => {
    const rng = new Rng(11);
    emptyCache('cpu');
    const r0 = reserved();
    const big = owned(rng, MB); // 4 MiB
    const r1 = reserved();
    expect(r1 - r0).toBeGreaterThanOrEqual(4 * MB);
    big.t.dispose();
    // Three smaller tensors (1.5 + 1.5 + 0.9 MiB) fit in the freed 4 MiB: nothing new is
    // allocated. (A cache of whole blocks allocates all three: none is within a quarter of 4 MiB.)
    const parts = [owned(rng, 393_216), owned(rng, 393_216), owned(rng, 235_929)];
    expect(reserved()).toBe(r1);
    await expectIntact(parts);
    // Freed in an order that merges a middle piece with both neighbours last.
    parts[0].t.dispose();
    parts[2].t.dispose();
    parts[1].t.dispose();
    const whole = owned(rng, 1_000_000); // 3.8 MiB: only the merged block holds it
    expect(reserved()).toBe(r1);
    await expectIntact([whole]);
    whole.t.dispose();
    emptyCache('cpu');
    expect(reserved()).toBe(r0);
  });

  it('a varying sequence of sizes settles: the second pass allocates nothing', async () => {
    // Sizes that shrink and grow as a model's stages do, with overlapping lifetimes.
    const sizes = [802_816, 3_211_264, 802_816, 401_408, 1_605_632, 401_408, 200_704, 802_816, 100_352, 2_408_448, 65_536, 17_000];
    const pass = async (rng: Rng) => {
      const live: { t: Tensor; values: Float32Array }[] = [];
      for (const n of sizes) {
        live.push(owned(rng, n / 4));
        if (live.length > 2) live.shift()!.t.dispose();
      }
      await expectIntact(live);
      live.forEach(({ t }) => t.dispose());
    };
    emptyCache('cpu');
    const r0 = reserved();
    await pass(new Rng(12));
    const r1 = reserved();
    await pass(new Rng(13));
    expect(reserved()).toBe(r1);
    // Never more than the two largest live at once plus what splitting left over.
    expect(r1 - r0).toBeLessThanOrEqual(3_211_264 + 2_408_448 + 802_816 + 64 * 1024 * sizes.length);
    emptyCache('cpu');
    expect(reserved()).toBe(r0);
  });

  it('many live pieces of one segment keep their contents through frees and reuse', async () => {
    const rng = new Rng(14);
    emptyCache('cpu');
    const r0 = reserved();
    const seg = owned(rng, 2 * MB); // 8 MiB
    seg.t.dispose();
    const live: { t: Tensor; values: Float32Array }[] = [];
    for (let i = 0; i < 200; i++) {
      // Random sizes from 64 KiB to 256 KiB, random frees: splits and merges at every step.
      live.push(owned(rng, rng.int(16_384, 65_536)));
      if (rng.next() < 0.4 && live.length > 1) live.splice(rng.int(0, live.length), 1)[0].t.dispose();
    }
    await expectIntact(live);
    live.forEach(({ t }) => t.dispose());
    emptyCache('cpu');
    expect(reserved()).toBe(r0);
  });
});

// Hostile inputs (issue 22): small crafted files and arguments that used to cost gigabytes or
// minutes, or escaped as engine errors. Each class: the reported repro and a variant of our own,
// each ending within seconds, with bounded memory, and with the loader's own error (or the
// function's named RangeError/TypeError).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, linkSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants as zlibConstants, deflateRawSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import {
  centerCropOffsets, CheckpointError, createModel, encodeSafetensors, loadModel, memory, MODEL_LIMITS, preprocess, readPth, resizeAndCrop,
  resizeLikePillow, resizeShorterSide, SecViT, tensor, mul, synchronize, fusedLinear, readSafetensors, SAFETENSORS_MAX_TENSORS,
} from '../lib/index.js';
import { unpickle } from '../lib/io/pickle.js';
import { PickleWriter, pth } from './helpers/pth.js';
import { Rng } from './helpers/random.js';
import { timeBound } from './helpers/time.js';

/** A safetensors file of one small tensor whose metadata carries `config`. */
function configBomb(config: Record<string, unknown>): Uint8Array {
  return encodeSafetensors([['head.bias', { dtype: 'F32', shape: [2], data: new Uint8Array(8) }]], { config: JSON.stringify(config) });
}

/** Runs `fn`, expecting it to throw `kind` matching `message` within `ms` and to leave memory() as it was. */
function expectQuickRefusal(fn: () => unknown, kind: new (...a: never[]) => Error, message: RegExp, ms = 2000): void {
  const before = memory();
  const t0 = performance.now();
  let thrown: unknown = null;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  const took = performance.now() - t0;
  expect(thrown, 'it throws').toBeInstanceOf(kind);
  expect((thrown as Error).message).toMatch(message);
  expect(took, 'refused within the time bound').toBeLessThan(timeBound(ms));
  const after = memory();
  expect([after.tensors, after.hostBytes]).toEqual([before.tensors, before.hostBytes]);
}

describe('config bombs: bounded before anything is built (class 1)', () => {
  const secvit = { embed_dims: [32, 64, 128, 256], num_heads: [1, 2, 4, 8], num_clusterss: [1, 1, 1, -1], num_classes: 2 };

  test('the report: a 152-byte safetensors whose config asks for 100,000 blocks', () => {
    const file = configBomb({ ...secvit, depths: [100000, 1, 1, 1] });
    expect(file.byteLength).toBeLessThan(400);
    expectQuickRefusal(() => SecViT.load(file), RangeError, /depths\[0\] must be in \[1, 256\], got 100000/);
    expectQuickRefusal(() => loadModel(file), RangeError, /depths\[0\] must be in \[1, 256\], got 100000/);
  });

  test('variants: depths within the per-stage bound but too many in all; a huge width; every family', () => {
    expectQuickRefusal(() => SecViT.load(configBomb({ ...secvit, depths: [256, 256, 1, 1] })), RangeError, /add up to more than 512 blocks/);
    expectQuickRefusal(() => SecViT.load(configBomb({ ...secvit, depths: [1, 1, 1, 1], embed_dims: [32, 64, 128, 1 << 20] })), RangeError, /embedDims\[3\] must be in \[1, 65536\]/);
    const swin = { family: 'swin', patch_size: [4, 4], embed_dim: 96, num_heads: [3, 6, 12, 24], window_size: [7, 7] };
    expectQuickRefusal(() => loadModel(configBomb({ ...swin, depths: [2, 2, 100000, 2] })), RangeError, /depths\[2\] must be in \[1, 256\]/);
    expectQuickRefusal(() => loadModel(configBomb({ ...swin, depths: new Array(100000).fill(1), num_heads: new Array(100000).fill(1) })), TypeError, /depths must be an array of 1 to 8 integers, got \[1, 1, 1, 1, 1, 1, \.\.\. \(100000 items\)\]/);
    const vit = { family: 'vit', image_size: 224, patch_size: 16, num_heads: 12, hidden_dim: 768, mlp_dim: 3072 };
    expectQuickRefusal(() => loadModel(configBomb({ ...vit, num_layers: 100000 })), RangeError, /numLayers must be in \[1, 256\]/);
    expectQuickRefusal(() => createModel({ ...vit, num_layers: 12, mlp_dim: 1e9 }), RangeError, /mlpDim must be in \[1, 65536\]/);
  });

  test('a config within every bound whose model the file cannot fill: refused from the module tree, nothing allocated', () => {
    // SecViT-T's shape (15M parameters) in a file of 2 values; a ViT whose parameters pass 2^32.
    expectQuickRefusal(() => SecViT.load(configBomb({ ...secvit, depths: [2, 2, 9, 2], embed_dims: [64, 128, 256, 512], num_heads: [2, 4, 8, 16] })),
      CheckpointError, /the config implies 1[0-9,]+ parameters but the checkpoint holds 2 values/);
    const wide = { family: 'vit', image_size: 224, patch_size: 16, num_heads: 64, hidden_dim: 16384, mlp_dim: 65536, num_layers: 256 };
    expectQuickRefusal(() => loadModel(configBomb(wide), { strict: false }), CheckpointError, /more than the limit of 4,294,967,296/);
    expectQuickRefusal(() => createModel(wide), RangeError, /more than the limit of 4,294,967,296/);
    expect(MODEL_LIMITS.parameters).toBe(2 ** 32);
  });
});

describe('convert cannot destroy its input (class 7)', () => {
  const fixture = join(__dirname, 'fixtures', 'micro.model.safetensors');
  const run = (cwd: string, ...args: string[]) => spawnSync(process.execPath, [join(__dirname, '..', 'bin', 'secvit.mjs'), 'convert', ...args], { encoding: 'utf8', cwd });
  const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

  test('an output that is a symlink or a hard link to the input (the report), or the input through a linked folder: refused, the input unchanged', () => {
    const dir = mkdtempSync(join(tmpdir(), 'secvit-convert-'));
    try {
      const input = join(dir, 'in.safetensors');
      copyFileSync(fixture, input);
      const before = sha(input);
      symlinkSync(input, join(dir, 'sym.safetensors'));
      linkSync(input, join(dir, 'hard.safetensors'));
      symlinkSync(dir, join(dir, 'again'));
      for (const out of ['sym.safetensors', 'hard.safetensors', join('again', 'in.safetensors')]) {
        const r = run(dir, 'in.safetensors', out);
        expect(r.status, `${out}: ${r.stderr}`).toBe(2);
        expect(r.stderr).toMatch(/^secvit convert: the output .* is the input in\.safetensors \(the same file\)\n$/);
        expect(sha(input), out).toBe(before);
      }
      // A different file is written (atomically: a temporary file renamed over the name).
      const ok = run(dir, 'in.safetensors', 'out.safetensors');
      expect(ok.status, ok.stderr).toBe(0);
      expect(sha(input)).toBe(before);
      expect(readdirSync(dir).sort()).toEqual(['again', 'hard.safetensors', 'in.safetensors', 'out.safetensors', 'sym.safetensors']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A state dict { w: tensor } whose tensor `size` argument is pushed by `size`. */
function stateDictPickle(size: (w: PickleWriter) => void, numel = 4, stride: number[] = [1]): Uint8Array {
  const w = new PickleWriter();
  w.emptyDict().str('w');
  w.tensor('0', numel, 0, size, stride);
  w.setitem();
  return w.stop();
}

/** A list of 2^depth leaves in `depth` memo-shared levels: L0 = [1, 1], Li = [Li-1, Li-1]. */
function sharedList(depth: number): (w: PickleWriter) => void {
  return (w) => {
    w.emptyList().mark().int(1).int(1).appends().put(1000).pop();
    for (let i = 1; i <= depth; i++) w.emptyList().mark().get(1000 + i - 1).get(1000 + i - 1).appends().put(1000 + i).pop();
    w.get(1000 + depth);
  };
}

/** A value nested `depth` levels deep: ((((1,),),),). */
function nested(depth: number): (w: PickleWriter) => void {
  return (w) => {
    w.int(1);
    for (let i = 0; i < depth; i++) w.tuple1();
  };
}

function expectLoaderRefusal(file: Uint8Array, message: RegExp, ms = 2000): void {
  const t0 = performance.now();
  let thrown: unknown = null;
  try {
    const p = readPth(file);
    for (const t of p.tensors.values()) t.read();
    p.close();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, 'the loader\'s own error').toBeInstanceOf(CheckpointError);
  expect((thrown as Error).message).toMatch(message);
  expect((thrown as Error).message.length, 'a bounded message').toBeLessThan(600);
  expect(performance.now() - t0).toBeLessThan(timeBound(ms));
}

describe('the unpickler: bounded work, its own errors (classes 2-4)', () => {
  test('class 2, the report: a tensor size that is a memo-shared nested list of 2^40 leaves', () => {
    const file = pth(stateDictPickle(sharedList(40)), [{ key: '0', data: new Uint8Array(16) }]);
    expect(file.byteLength).toBeLessThan(2000);
    expectLoaderRefusal(file, /tensor size must be a tuple of at most 8 non-negative integers, got \[\[\[\[/);
  });

  test('class 2, variants: the same structure as a storage size and as a persistent id', () => {
    const asNumel = new PickleWriter().emptyDict().str('w').global('torch._utils', '_rebuild_tensor_v2').mark()
      .mark().str('storage').global('torch', 'FloatStorage').str('0').str('cpu');
    sharedList(40)(asNumel);
    asNumel.tuple().binpersid().int(0).mark().int(4).tuple().mark().int(1).tuple().newFalse().global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce().setitem();
    expectLoaderRefusal(pth(asNumel.stop()), /bad storage size \[\[\[/);
    const asPid = new PickleWriter().emptyDict().str('w');
    sharedList(40)(asPid);
    asPid.binpersid().setitem();
    expectLoaderRefusal(pth(asPid.stop()), /unsupported persistent id \[\[\[/);
  });

  test('class 3, the report: a 160 KB LONG4, and a LONG of 200,000 digits: refused at once; 1 KiB ones decode exactly', () => {
    const big = new Uint8Array(160 << 10).fill(0x5a);
    expectLoaderRefusal(pth(new PickleWriter().emptyDict().str('n').long4(big).setitem().stop()), /LONG4: an integer of 163840 bytes \(at most 1024\)/);
    expectLoaderRefusal(pth(new PickleWriter().emptyDict().str('n').longText('7'.repeat(200000)).setitem().stop()), /LONG: an integer of 200000 digits/);
    // Linear decoding gives the same values as the definition (little-endian two's complement).
    const rng = new Rng(3);
    for (const len of [1, 7, 8, 9, 255, 1024]) {
      const b = Uint8Array.from({ length: len }, () => Math.floor(rng.next() * 256));
      let want = 0n;
      for (let i = len - 1; i >= 0; i--) want = want * 256n + BigInt(b[i]);
      if (b[len - 1] & 0x80) want -= 1n << BigInt(8 * len);
      const got = unpickle(new PickleWriter().long4(b).stop());
      expect(BigInt(got as number | bigint), `${len} bytes`).toBe(want);
    }
    expect(unpickle(new PickleWriter().long4(new Uint8Array(1024).fill(0xff)).stop())).toBe(-1);
  });

  test('class 4: 200,000 levels of nesting as a persistent id (the report) and as a tensor size: the loader\'s error, not a stack overflow', () => {
    const pid = new PickleWriter().emptyDict().str('w');
    nested(200000)(pid);
    pid.binpersid().setitem();
    expectLoaderRefusal(pth(pid.stop()), /unsupported persistent id \[\[\[\[/);
    expectLoaderRefusal(pth(stateDictPickle(nested(200000)), [{ key: '0', data: new Uint8Array(16) }]), /tensor size must be a tuple .*got \[\[\[\[/);
  });
});

describe('deflated storages: only what the tensors use is inflated (class 5)', () => {
  // 16 MiB of zeros, deflated and sync-flushed (a block sequence that does not end the stream):
  // repeated, it stands for any multiple of 16 MiB in a few KB per copy.
  const chunk = deflateRawSync(Buffer.alloc(16 << 20), { finishFlush: zlibConstants.Z_SYNC_FLUSH });
  const end = deflateRawSync(Buffer.alloc(0));
  const storage = (copies: number, declared: number) => ({ key: '0', data: new Uint8Array(0), declaredSize: declared, deflated: Buffer.concat([...new Array(copies).fill(chunk), end]) });

  test('the report: a 1 GiB storage (a few MB of file) read for a 432-element tensor', () => {
    const file = pth(stateDictPickle((w) => w.mark().int(432).tuple(), 1 << 28), [storage(64, 1 << 30)]);
    expect(file.byteLength).toBeLessThan(8 << 20);
    const before = process.memoryUsage().arrayBuffers;
    const t0 = performance.now();
    const p = readPth(file);
    const got = p.tensors.get('w')!.read();
    p.close();
    expect(got.length).toBe(432 * 4);
    expect(got.every((b) => b === 0)).toBe(true);
    expect(performance.now() - t0).toBeLessThan(timeBound(2000));
    // Inflating the whole storage allocated 1 GiB here (and 2 GB of peak).
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 << 20);
  });

  test('variant: the stream behind the tensor is cut short (only 16 MiB of the declared 1 GiB): the tensor reads, nothing past it is inflated', () => {
    const file = pth(stateDictPickle((w) => w.mark().int(432).tuple(), 1 << 28), [{ ...storage(1, 1 << 30), deflated: chunk }]);
    const p = readPth(file);
    expect(p.tensors.get('w')!.read().length).toBe(432 * 4);
    p.close();
    // A tensor that reaches past the data there is: the loader's error.
    const far = pth(stateDictPickle((w) => w.mark().int(8 << 20).tuple(), 1 << 28), [{ ...storage(1, 1 << 30), deflated: chunk }]);
    expectLoaderRefusal(far, /inflated to \d+ bytes, expected at least 33554432|does not decode to 33554432 bytes/);
  });
});

describe('preprocess: extreme aspect ratios cost the crop, not the resize (class 6)', () => {
  const raw = (width: number, height: number) => ({ data: Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * 37) % 256), width, height, channels: 3 });

  test('the report: 2000 x 1 and 200,000 x 1 images, within a second and a few MB, the same pixels as resizing everything', async () => {
    for (const [w, h] of [[2000, 1], [200000, 1], [1, 200000], [3, 150000]]) {
      const before = process.memoryUsage().arrayBuffers;
      const t0 = performance.now();
      using x = await preprocess(raw(w, h));
      expect(x.shape).toEqual([1, 3, 224, 224]);
      expect(performance.now() - t0, `${w} x ${h}`).toBeLessThan(timeBound(1500));
      expect(process.memoryUsage().arrayBuffers - before, `${w} x ${h}`).toBeLessThan(32 << 20);
    }
    // The region equals the whole resize, cropped (Pillow's pixels), where the whole resize is affordable.
    for (const [w, h, filter] of [[2000, 1, 'bicubic'], [37, 300, 'bilinear'], [301, 299, 'bicubic']] as const) {
      const img = raw(w, h);
      const [rw, rh] = resizeShorterSide(w, h, 256);
      const [top, left] = centerCropOffsets(rw, rh, 224, 224);
      const whole = resizeLikePillow(img, rw, rh, filter);
      const want = new Uint8Array(224 * 224 * 3);
      for (let y = 0; y < 224; y++) want.set(whole.data.subarray(((top + y) * rw + left) * 3, ((top + y) * rw + left + 224) * 3), y * 224 * 3);
      expect(Buffer.from(resizeAndCrop(img, { size: 224, resize: 256, interpolation: filter }).data).equals(Buffer.from(want)), `${w} x ${h} ${filter}`).toBe(true);
    }
  });

  test('variant: an image that cannot be resized as asked names preprocess and the image', async () => {
    // resize 300 with crop 224 of a 1 x 1 image works; a resize the crop does not fit is refused by name.
    await expect(preprocess(raw(5, 5), { size: 224, resize: 100 })).rejects.toThrow(/^preprocess: resize must be an integer >= size \(224\), got 100$/);
    await expect(preprocess([raw(4, 4), { data: new Uint8Array(5), width: 2, height: 2, channels: 3 }])).rejects.toThrow(/^preprocess: image 1/);
  });
});

describe('borrowed arrays under queued work (class 8)', () => {
  // What an op reads from a TypedArray a tensor borrows: its values when the op runs (the array is
  // shared, not copied at the call). Deterministic, and tested: after synchronize() (or a read of
  // a result computed from it) writing to the array changes no result already computed; with
  // { copy: true } no write ever does; and a write before an op is queued is what that op reads.
  test('after synchronize(), or a read of the result, writes to the array leave computed results alone', async () => {
    for (let run = 0; run < 3; run++) {
      const a = new Float32Array([1, 2, 3, 4]);
      using t = tensor(a, [4]);
      using y = mul(t, 2);
      synchronize('cpu');
      a[0] = 100;
      expect(Array.from(y.dataSync())).toEqual([2, 4, 6, 8]);
      using z = mul(t, 2);   // queued after the write: reads it
      expect(Array.from(await z.data())).toEqual([200, 4, 6, 8]);
      a[1] = 100;
      expect(Array.from(z.dataSync())).toEqual([200, 4, 6, 8]);
    }
  });

  test('{ copy: true } takes the values at the call: a write at once after it changes nothing queued', () => {
    for (let run = 0; run < 3; run++) {
      const a = new Float32Array([1, 2, 3, 4]);
      using t = tensor(a, [4], { copy: true });
      using y = mul(t, 2);
      a.fill(100);
      t.dispose();
      expect(Array.from(y.dataSync())).toEqual([2, 4, 6, 8]);
    }
    expect(() => synchronize('tpu' as never)).toThrow(/^synchronize: device/);
  });
});

describe('smaller (class 9)', () => {
  test('activation names are own keys: \'toString\' is refused by the op, as a TypeError naming the argument', () => {
    using x = tensor([1, 2, 3, 4], [1, 4]);
    using w = tensor([1, 0, 0, 1, 0, 0, 1, 0], [2, 4]);
    for (const bad of ['toString', 'constructor', '__proto__', 'hasOwnProperty'])
      expect(() => fusedLinear(x, w, null, { activation: bad as 'gelu' })).toThrow(/^fusedLinear: activation must be 'none', 'gelu' or 'silu', got "/);
  });

  test('split([4, -1]) is split\'s error', () => {
    using x = tensor(new Float32Array(6), [6]);
    expect(() => x.split([4, -1] as number[])).toThrow(/^split: sizes\[1\] must be a non-negative integer, got -1$/);
    expect(() => x.split([7, -1] as number[])).toThrow(RangeError);
    const parts = x.split([4, 2]);
    expect(parts.map((p) => p.shape[0])).toEqual([4, 2]);
    parts.forEach((p) => p.dispose());
  });

  test('unknown option keys of the model entry points are refused by name', () => {
    const file = join(__dirname, 'fixtures', 'micro.model.safetensors');
    expect(() => SecViT.load(file, { devcie: 'cpu' } as never)).toThrow(/^SecViT.load: unknown option 'devcie'; expected device, dtype, config, key, strict, onProgress$/);
    expect(() => loadModel(file, { stict: false } as never)).toThrow(/^loadModel: unknown option 'stict'/);
    expect(() => createModel('secvit-fm', { seeed: 1 } as never)).toThrow(/^createModel: unknown option 'seeed'/);
    expect(() => SecViT.create('secvit-fm', { numclasses: 3 } as never)).toThrow(/^SecViT.create: unknown option 'numclasses'/);
  });

  test('a safetensors header listing 300,000 empty tensors: refused at once', () => {
    const header: Record<string, unknown> = {};
    for (let i = 0; i < 300000; i++) header[`t${i}`] = { dtype: 'F32', shape: [0], data_offsets: [0, 0] };
    const json = new TextEncoder().encode(JSON.stringify(header));
    const file = new Uint8Array(8 + json.length);
    new DataView(file.buffer).setBigUint64(0, BigInt(json.length), true);
    file.set(json, 8);
    // Refused after parsing the header, before anything per entry: about what parsing it costs.
    const p0 = performance.now();
    JSON.parse(new TextDecoder().decode(json));
    const parse = performance.now() - p0;
    const t0 = performance.now();
    expect(() => readSafetensors(file)).toThrow(/lists 300000 entries, more than the limit of 65536 tensors/);
    expect(performance.now() - t0).toBeLessThan(3 * parse + timeBound(200));
    expect(SAFETENSORS_MAX_TENSORS).toBe(65536);
  });

  test('cast to int32 truncates toward zero, saturates at the int32 range and maps NaN to 0 (as the README says)', () => {
    using x = tensor([1.9, -1.9, 3e9, -3e9, NaN, Infinity, -Infinity, 2147483647.0], [8]);
    using y = x.cast('int32');
    expect(Array.from(y.dataSync())).toEqual([1, -1, 2147483647, -2147483648, 0, 2147483647, -2147483648, 2147483647]);
  });
});

// Checkpoint loading: PyTorch .pth files made by torch.save itself (test/fixtures, made by
// make_pth_fixtures.py with Debian's python3-torch), safetensors validation against every rule of
// the format's reference implementation, the restricted unpickler, config resolution, and
// save/load round trips. Every bad file must give a JS error, never a crash or an allocation of
// what a header claims.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import {
  backends, CheckpointError, emptyCache, encodeSafetensors, memory, readCheckpoint, readPth, readSafetensors, resolveConfig, SecViT, tensor,
  type StoredTensor,
} from '../../lib/index.js';
import { unpickle, PyDict, PyObject } from '../../lib/io/pickle.js';

const FIX = resolve(__dirname, '../fixtures');
const fx = (n: string): string => join(FIX, n);

function f32(t: StoredTensor): Float64Array {
  const b = t.read();
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out = new Float64Array(t.numel);
  for (let i = 0; i < t.numel; i++) {
    if (t.dtype === 'F32') out[i] = dv.getFloat32(4 * i, true);
    else if (t.dtype === 'I64') out[i] = Number(dv.getBigInt64(8 * i, true));
    else throw new Error(`f32: ${t.dtype}`);
  }
  return out;
}

/** name -> values of a model's state dict (via dataSync, so layouts do not matter). */
function modelValues(model: SecViT): Map<string, Float32Array> {
  return new Map([...model.stateDict()].map(([k, t]) => [k, t.dataSync() as Float32Array]));
}

/** Every weight within `tol` relative error (plus `abs`, for float16 subnormals) of the file's. */
function expectModelEquals(model: SecViT, expectedFile: string, tol = 0, abs = 0): void {
  const ref = readSafetensors(expectedFile);
  try {
    const vals = modelValues(model);
    for (const [name, st] of ref.tensors) {
      if (name.endsWith('num_batches_tracked')) continue;
      const want = f32(st);
      const got = vals.get(name);
      expect(got, name).toBeDefined();
      let bad = 0;
      for (let i = 0; i < want.length; i++) if (!(Math.abs(got![i] - want[i]) <= tol * Math.abs(want[i]) + abs)) bad++;
      expect(bad, `${name}: elements off by more than ${tol} relative + ${abs}`).toBe(0);
    }
    expect(vals.size).toBe([...ref.tensors.keys()].filter((k) => !k.endsWith('num_batches_tracked')).length);
  } finally {
    ref.close();
  }
}

describe('.pth (torch.save zip, pickle protocol 2)', () => {
  test('a training checkpoint shaped like the authors\': the EMA weights are picked (timm order), args read as inert data', () => {
    const ck = readPth(fx('micro_train.pth'));
    try {
      expect(ck.key).toBe('model_ema');
      expect(ck.topLevelKeys).toEqual(['model', 'model_ema', 'optimizer', 'lr_scheduler', 'epoch', 'scaler', 'args', 'max_accuracy']);
      expect(ck.metadata.get('model')).toBe('SecViT_micro');
      expect(ck.metadata.get('args.batch_size')).toBe('128');
      expect(ck.metadata.get('epoch')).toBe('299');
      expect(ck.metadata.get('max_accuracy')).toBe('82.6');
    } finally {
      ck.close();
    }
    // The name is unknown, so the config is inferred from the shapes (clusters: the published schedule).
    using model = SecViT.load(fx('micro_train.pth'));
    expect(model.config.embedDims).toEqual([8, 16, 16, 32]);
    expect(model.config.numHeads).toEqual([2, 2, 2, 4]);
    expect(model.config.layerScales).toEqual([false, false, true, true]);
    expect(model.config.numClasses).toBe(5);
    expectModelEquals(model, fx('micro.model_ema.safetensors'));
    const counters = new Map(model.namedCounters());
    expect(counters.get('norm.num_batches_tracked')!.value).toBe(207n);
  });

  test('the caller chooses the key; a key that is not there names the ones that are', () => {
    using model = SecViT.load(fx('micro_train.pth'), { key: 'model' });
    expectModelEquals(model, fx('micro.model.safetensors'));
    expect(() => SecViT.load(fx('micro_train.pth'), { key: 'weights' })).toThrow(/no key 'weights'.*model, model_ema, optimizer/);
    expect(() => SecViT.load(fx('micro_train.pth'), { key: 'optimizer' })).toThrow(/'optimizer' is not a state dict/);
  });

  test('the optimizer\'s tensors are never read: the archive without their storages loads the same', () => {
    using model = SecViT.load(fx('micro_train_noopt.pth'));
    expectModelEquals(model, fx('micro.model_ema.safetensors'));
  });

  test('a bare float16 state dict with DataParallel prefixes', () => {
    const reserved = () => backends().find((b) => b.name === 'cpu')!.reservedBytes!;
    emptyCache('cpu');
    const [r0, m0] = [reserved(), memory()];
    using model = SecViT.load(fx('micro_bare_fp16.pth'), { config: readSafetensors(fx('micro.model.safetensors')).metadata.get('config') });
    // Converted to float32 straight from the read buffer: the CPU cache holds the weights (in
    // 64-byte size classes) and no freed float16 copies.
    const m1 = memory();
    expect(reserved() - r0).toBeLessThanOrEqual(m1.hostBytes - m0.hostBytes + 64 * (m1.tensors - m0.tensors));
    // float16 rounding of the float32 originals: relative error <= 2^-11, or half the subnormal
    // spacing 2^-25 for values below float16's normal range.
    expectModelEquals(model, fx('micro.model.safetensors'), 2 ** -11, 2 ** -25);
  });

  test('shared storages, storage offsets and non-contiguous strides, nested under state_dict', () => {
    const ck = readPth(fx('micro_shared.pth'));
    try {
      expect(ck.key).toBe('state_dict');
      const t = ck.tensors.get('layers.1.blocks.0.ffn.fc1.weight') as unknown as { stride: number[] };
      expect(t.stride).toEqual([1, 48, 1, 1]);
    } finally {
      ck.close();
    }
    using model = SecViT.load(fx('micro_shared.pth'));
    expectModelEquals(model, fx('micro.model.safetensors'));
  });

  test('a malicious pickle (os.system) is refused, naming the global, and nothing runs', () => {
    const marker = '/tmp/secvit-pickle-was-executed';
    rmSync(marker, { force: true });
    expect(() => SecViT.load(fx('malicious.pth'))).toThrow(CheckpointError);
    expect(() => SecViT.load(fx('malicious.pth'))).toThrow(/refusing global 'posix\.system'/);
    expect(existsSync(marker)).toBe(false);
  });

  test('truncated and corrupt archives give errors', () => {
    const good = readFileSync(fx('micro_train.pth'));
    for (const cut of [0, 10, 100, good.length >> 1, good.length - 30, good.length - 1]) {
      expect(() => readCheckpoint(good.subarray(0, cut)), `cut ${cut}`).toThrow();
    }
    // Flip bytes across the file: every outcome is a clean error or a load.
    for (let i = 1; i < 40; i++) {
      const bad = Buffer.from(good);
      const at = Math.floor((i / 40) * bad.length);
      bad[at] ^= 0xff;
      try {
        const m = SecViT.load(bad);
        m.dispose();
      } catch (e) {
        expect(e).toBeInstanceOf(Error);
      }
    }
  });
});

describe('restricted unpickler', () => {
  const P = (...b: number[]): Uint8Array => Uint8Array.from(b);
  const str = (s: string): number[] => [0x8c, s.length, ...Buffer.from(s)];
  test('plain data: dicts are Maps (a __proto__ key is only a key), tuples, lists, ints, floats, strings', () => {
    // {'__proto__': 1, 'a': (2, -3.5, [True, None]), 'big': 2**70}
    const big = [0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0x40];
    const v = unpickle(P(0x80, 2, 0x7d, 0x28, ...str('__proto__'), 0x4b, 1, ...str('a'), 0x4b, 2,
      0x47, 0xc0, 0x0c, 0, 0, 0, 0, 0, 0, 0x5d, 0x28, 0x88, 0x4e, 0x65, 0x87, ...str('big'), ...big, 0x75, 0x2e)) as PyDict;
    expect(v).toBeInstanceOf(PyDict);
    expect(v.get('__proto__')).toBe(1);
    expect(Object.getPrototypeOf(v)).toBe(PyDict.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(v.get('a')).toEqual([2, -3.5, [true, null]]);
    expect(v.get('big')).toBe(2n ** 70n);
  });

  test('globals outside the allow-list are refused before any call; allowed ones build inert data', () => {
    const glob = (m: string, n: string): number[] => [0x63, ...Buffer.from(`${m}\n${n}\n`)];
    expect(() => unpickle(P(0x80, 2, ...glob('os', 'system'), ...str('id'), 0x85, 0x52, 0x2e))).toThrow(/refusing global 'os\.system'/);
    expect(() => unpickle(P(0x80, 2, ...glob('builtins', 'eval'), 0x2e))).toThrow(/refusing global 'builtins\.eval'/);
    expect(() => unpickle(P(0x80, 4, ...str('subprocess'), ...str('Popen'), 0x93, 0x2e))).toThrow(/refusing global 'subprocess\.Popen'/);
    // argparse.Namespace via NEWOBJ + BUILD: an attribute bag.
    const ns = unpickle(P(0x80, 2, ...glob('argparse', 'Namespace'), 0x29, 0x81, 0x7d, ...str('model'), ...str('x'), 0x73, 0x62, 0x2e));
    expect(ns).toBeInstanceOf(PyObject);
    expect((ns as PyObject).attrs.get('model')).toBe('x');
    // A persistent id without a loader is refused.
    expect(() => unpickle(P(0x80, 2, ...str('x'), 0x51, 0x2e))).toThrow(/persistent ids are not allowed/);
  });

  test('lengths beyond the data, bad memo keys, unknown opcodes and stack underflow are errors', () => {
    expect(() => unpickle(P(0x80, 2, 0x58, 0xff, 0xff, 0xff, 0x7f, 0x2e))).toThrow(/BINUNICODE: needs 2147483647 bytes/);
    expect(() => unpickle(P(0x80, 2, 0x8e, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x2e))).toThrow(/BINBYTES8/);
    expect(() => unpickle(P(0x80, 2, 0x68, 7, 0x2e))).toThrow(/memo key 7/);
    expect(() => unpickle(P(0x80, 2, 0xfe))).toThrow(/unknown opcode 0xfe/);
    expect(() => unpickle(P(0x80, 2, 0x52, 0x2e))).toThrow(/stack underflow/);
    expect(() => unpickle(P(0x80, 2, 0x4e))).toThrow(/truncated/);
  });
});

// ---- safetensors -----------------------------------------------------------------------------

function st(header: unknown, data: Uint8Array, lenOverride?: bigint): Uint8Array {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lenOverride ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

describe('safetensors validation (the reference implementation\'s rules)', () => {
  const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F16', shape: [2], data_offsets: [8, 12] } };
  test('a valid file reads back; __proto__ as a name is just a name', () => {
    const f = readSafetensors(st({ ...ok, __metadata__: { config: '{}' } }, new Uint8Array(12)));
    expect([...f.tensors.keys()]).toEqual(['a', 'b']);
    expect(f.metadata.get('config')).toBe('{}');
    const g = readSafetensors(st('{"__proto__": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', new Uint8Array(4)));
    expect([...g.tensors.keys()]).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).dtype).toBeUndefined();
  });
  const cases: [string, Uint8Array, RegExp][] = [
    ['shorter than 8 bytes', new Uint8Array(5), /fewer than the 8/],
    ['header over 100,000,000 bytes', st(ok, new Uint8Array(12), 100_000_001n), /exceeds the limit of 100000000/],
    ['header length claiming terabytes', st(ok, new Uint8Array(12), 1n << 42n), /exceeds the limit/],
    ['header past the end', st(ok, new Uint8Array(0), 5000n), /runs past the end/],
    ['header not JSON', st('{"a": ', new Uint8Array(0)), /not valid UTF-8 JSON/],
    ['header an array', st([1, 2], new Uint8Array(0)), /not a JSON object/],
    ['unknown dtype', st({ a: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), /unsupported dtype "F8"/],
    ['negative dim', st({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)), /shape must be/],
    ['size mismatch', st({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)), /needs 12 bytes/],
    ['numel overflow', st({ a: { dtype: 'F32', shape: [2 ** 30, 2 ** 30, 2 ** 30], data_offsets: [0, 4] } }, new Uint8Array(4)), /more than 2\^53/],
    ['hole', st({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)), /a hole/],
    ['overlap', st({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)), /overlap/],
    ['trailing bytes', st(ok, new Uint8Array(16)), /but the file has/],
    ['offsets past the end', st(ok, new Uint8Array(10)), /run past the 10 bytes of data/],
    ['metadata not strings', st({ ...ok, __metadata__: { n: 1 } }, new Uint8Array(12)), /must be a string/],
    ['reversed offsets', st({ a: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, new Uint8Array(4)), /begin <= end/],
  ];
  test.each(cases)('refused: %s', (_name, bytes, msg) => {
    expect(() => readSafetensors(bytes)).toThrow(CheckpointError);
    expect(() => readSafetensors(bytes)).toThrow(msg);
  });

  test('encodeSafetensors pads the header to 8 bytes and reads back', () => {
    const bytes = encodeSafetensors([['x', { dtype: 'F32', shape: [2, 1], data: new Uint8Array(new Float32Array([1.5, -2]).buffer) }]], { k: 'v' });
    expect(Number(new DataView(bytes.buffer).getBigUint64(0, true)) % 8).toBe(0);
    const f = readSafetensors(bytes);
    expect(f32(f.tensors.get('x')!)).toEqual(new Float64Array([1.5, -2]));
    expect(f.metadata.get('k')).toBe('v');
  });
});

describe('loading into a model', () => {
  test('strict: one error lists every missing, unexpected and misshapen key', () => {
    using model = SecViT.load(fx('micro.model.safetensors'));
    const state = new Map<string, StoredTensor>(readSafetensors(fx('micro.model.safetensors')).tensors);
    state.delete('head.bias');
    state.delete('layers.0.blocks.0.pos.weight');
    state.set('extra.weight', state.get('proj.bias')!);
    state.set('proj.bias', state.get('head.weight')!);
    let msg = '';
    try {
      model.loadStateDict(state);
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/misshapen \(1\): proj\.bias: expected \[16\], got \[5, 16, 1, 1\]/);
    expect(msg).toMatch(/missing \(2\): layers\.0\.blocks\.0\.pos\.weight, head\.bias/);
    expect(msg).toMatch(/unexpected \(1\): extra\.weight/);
    // The failed load left the model as it was.
    expectModelEquals(model, fx('micro.model.safetensors'));
  });

  test('save writes the reference names, shapes and config; it loads back bit for bit', () => {
    const dir = mkdtempSync(join(tmpdir(), 'secvit-'));
    try {
      using a = SecViT.create('secvit-t', { seed: 3 });
      a.save(join(dir, 't.safetensors'));
      const f = readSafetensors(join(dir, 't.safetensors'));
      const ref = readSafetensors(resolve(__dirname, '../fixtures/micro.model.safetensors'));
      expect(resolveConfig(f.metadata.get('config')!)).toEqual(resolveConfig('secvit-t'));
      expect(f.tensors.get('layers.2.blocks.5.attn.qkv.weight')!.shape).toEqual([768, 256, 1, 1]);
      expect(f.tensors.get('norm.num_batches_tracked')!.dtype).toBe('I64');
      // Key order follows the reference's (as the micro fixture written from torch's state dict).
      const order = (m: Map<string, unknown>) => [...m.keys()].filter((k) => k.startsWith('layers.0.blocks.0.') || k.startsWith('patch_embed.proj.1.'));
      expect(order(f.tensors).map((k) => k.split('.').slice(-2).join('.'))).toEqual(order(ref.tensors).map((k) => k.split('.').slice(-2).join('.')));
      f.close();
      ref.close();
      using b = SecViT.load(join(dir, 't.safetensors'));
      const va = modelValues(a);
      const vb = modelValues(b);
      // Compared in a loop: toEqual on 15M elements takes a minute.
      for (const [k, v] of va) {
        const w = vb.get(k)!;
        expect(w.length, k).toBe(v.length);
        let same = true;
        for (let i = 0; i < v.length; i++) if (!Object.is(v[i], w[i])) same = false;
        expect(same, k).toBe(true);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the four published configs have the published parameter counts', () => {
    expect(SecViT.countParameters('secvit-t')).toBe(14_981_800);
    expect(SecViT.countParameters('secvit-s')).toBe(26_776_104);
    expect(SecViT.countParameters('secvit-b')).toBe(54_682_776);
    expect(SecViT.countParameters('secvit-l')).toBe(96_495_096);
    expect(SecViT.countParameters('KClusterFormerSimpleNew_M')).toBe(54_682_776);
    expect(SecViT.countParameters('SecViT_L')).toBe(96_495_096);
    using t = SecViT.create('secvit-t');
    expect(t.parameterCount).toBe(14_981_800);
  });

  test('configs: names, reference keys, camelCase; bad ones are clear errors', () => {
    const ref = {
      embed_dims: [64, 128, 256, 512], depths: [2, 2, 9, 2], num_heads: [2, 4, 8, 16],
      num_clusterss: [[32, 32, 32], [8, 8, 8], new Array(12).fill(2), [-1, -1, -1]],
      mlp_ratios: [3, 3, 3, 3], layerscales: [false, false, false, false], projection: 1024, num_classes: 1000,
    };
    expect(resolveConfig(ref)).toEqual(resolveConfig('secvit-t'));
    expect(resolveConfig({ embedDims: [64, 128, 256, 512], depths: [2, 2, 9, 2], numHeads: [2, 4, 8, 16], numClusters: [32, 8, 2, -1] }))
      .toEqual(resolveConfig('KClusterFormerSimpleNew_T'));
    expect(() => resolveConfig('secvit-xl')).toThrow(RangeError);
    expect(() => resolveConfig('secvit-xl')).toThrow(/unknown config name 'secvit-xl'; known: secvit-t/);
    expect(() => resolveConfig({ ...ref, num_heads: [3, 4, 8, 16] })).toThrow(/embedDims\[0\] = 64 is not divisible by numHeads\[0\] = 3/);
    expect(() => resolveConfig({ ...ref, num_clusterss: [[32], [8], [2], [-1]] })).toThrow(/numClusters\[0\] must be an integer or at least 2 integers/);
    expect(() => resolveConfig({ ...ref, colour: 'red' })).toThrow(/unknown keys colour/);
    expect(() => resolveConfig({ ...ref, depths: [2, 2, 9] })).toThrow(TypeError);
    expect(() => SecViT.create(42 as never)).toThrow(TypeError);
    expect(() => SecViT.create('secvit-t', { dtype: 'int32' as never })).toThrow(/dtype must be/);
  });

  test('not a checkpoint, legacy torch.save, a directory, a missing file: errors', () => {
    expect(() => SecViT.load(Buffer.from('hello world, not weights'))).toThrow(CheckpointError);
    expect(() => SecViT.load(Uint8Array.from([0x80, 0x02, 0x8a, 0x0a]))).toThrow(/legacy \(non-zip\) torch\.save/);
    expect(() => SecViT.load(FIX)).toThrow();
    expect(() => SecViT.load(join(FIX, 'nope.pth'))).toThrow(/ENOENT/);
    expect(() => SecViT.load(12 as never)).toThrow(TypeError);
  });

  test('a checkpoint with the wrong dtype for a weight is an error naming it', () => {
    const f = readSafetensors(fx('micro.model.safetensors'));
    const state = new Map<string, StoredTensor>(f.tensors);
    const w = state.get('head.bias')!;
    state.set('head.bias', { dtype: 'I32', shape: w.shape, numel: w.numel, read: () => new Uint8Array(4 * w.numel) });
    using model = SecViT.load(fx('micro.model.safetensors'));
    expect(() => model.loadStateDict(state)).toThrow(/'head\.bias' is I32; a floating-point tensor was expected/);
    f.close();
  });

  test('loadStateDict takes Tensors (another model\'s state dict)', () => {
    using a = SecViT.load(fx('micro.model.safetensors'));
    using b = SecViT.load(fx('micro.model_ema.safetensors'));
    b.loadStateDict(a.stateDict());
    expectModelEquals(b, fx('micro.model.safetensors'));
    const x = tensor(new Float32Array(2 * 3 * 40 * 36).map((_, i) => Math.sin(i)), [2, 3, 40, 36]);
    const la = a.forward(x);
    const lb = b.forward(x);
    expect(lb.dataSync()).toEqual(la.dataSync());
    [x, la, lb].forEach((t) => t.dispose());
  });
});

// Property-based fuzzing (fast-check) of everything that parses untrusted bytes: safetensors, the
// .pth zip reader and its unpickler, the model loader on top, and image decoding. Inputs are valid files with
// random corruption (byte overwrites, truncation, appended garbage, claimed sizes made huge) and
// random bytes. The property: every call returns or throws the loader's own error class
// (CheckpointError / PickleError) with a message; never another exception (a TypeError from
// reading `undefined` is a parser bug), a hang (vitest's timeout) or an allocation the input's
// size does not justify (the heap is checked).
//
// CI runs SECVIT_FUZZ_RUNS (default 150) cases per property with a fixed seed; for a long run:
//   SECVIT_FUZZ_RUNS=20000 SECVIT_FUZZ_SEED=$RANDOM npx vitest run test/fuzz.test.ts
// A failure prints its seed and path; add the shrunk input to REGRESSIONS below.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CheckpointError, decodeImage, encodeSafetensors, PickleError, readPth, readSafetensors, SecViT } from '../lib/index.js';
import { unpickle } from '../lib/io/pickle.js';
import { readZip } from '../lib/io/zip.js';
import { openSource } from '../lib/io/source.js';
import { PickleWriter, pth } from './helpers/pth.js';
import { timeBound } from './helpers/time.js';
import { constants as zlibConstants, deflateRawSync } from 'node:zlib';

const RUNS = Number(process.env.SECVIT_FUZZ_RUNS ?? 150);
const SEED = Number(process.env.SECVIT_FUZZ_SEED ?? 20261122);
const FIX = resolve(__dirname, 'fixtures');

const SAFETENSORS = encodeSafetensors(
  [
    ['a', { dtype: 'F32', shape: [2, 3], data: new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer) }],
    ['b.weight', { dtype: 'F16', shape: [4], data: new Uint8Array(8).fill(60) }],
    ['c', { dtype: 'I64', shape: [], data: new Uint8Array(8).fill(1) }],
  ],
  { config: '{"x": 1}' },
);
const PTH = new Uint8Array(readFileSync(resolve(FIX, 'micro_train.pth')));
const MODEL = new Uint8Array(readFileSync(resolve(FIX, 'micro.model.safetensors')));

/** A corruption of `base`: overwrites, a truncation, appended bytes, or a 4/8-byte size made huge. */
function corrupted(base: Uint8Array): fc.Arbitrary<Uint8Array> {
  const overwrite = fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 })
    .map((edits) => {
      const b = base.slice();
      for (const [i, v] of edits) b[i] = v;
      return b;
    });
  const truncate = fc.nat(base.length - 1).map((n) => base.slice(0, n));
  const append = fc.uint8Array({ minLength: 1, maxLength: 64 }).map((tail) => {
    const b = new Uint8Array(base.length + tail.length);
    b.set(base);
    b.set(tail, base.length);
    return b;
  });
  const hugeSize = fc.tuple(fc.nat(base.length - 8), fc.constantFrom(0xff, 0x7f, 0x40)).map(([i, v]) => {
    const b = base.slice();
    b.fill(v, i, i + (i % 2 ? 4 : 8));
    return b;
  });
  return fc.oneof(overwrite, truncate, append, hugeSize);
}

/**
 * Runs `fn`; a throw must be one of `allowed` (or, with `ownMessages`, a RangeError/TypeError
 * whose message starts with one of them: the config validation's own errors) and carry a
 * message.
 */
function expectCleanFailure(fn: () => void, allowed: (new (...a: never[]) => Error)[], ownMessages: string[] = []): void {
  try {
    fn();
  } catch (e) {
    const own = (e instanceof RangeError || e instanceof TypeError) && ownMessages.some((m) => (e as Error).message.startsWith(m));
    if (!own && !allowed.some((C) => e instanceof C)) throw new Error(`unexpected ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    expect((e as Error).message.length).toBeGreaterThan(10);
  }
}

function readEverySafetensor(bytes: Uint8Array): void {
  const f = readSafetensors(bytes);
  for (const t of f.tensors.values()) t.read();
}

function readEveryPth(bytes: Uint8Array): void {
  const f = readPth(bytes);
  try {
    for (const t of f.tensors.values()) t.read();
  } finally {
    f.close();
  }
}

const check = (prop: fc.IProperty<[Uint8Array]> | fc.IAsyncProperty<[Uint8Array]>) => {
  const heap0 = process.memoryUsage().heapUsed;
  fc.assert(prop as fc.IProperty<[Uint8Array]>, { numRuns: RUNS, seed: SEED });
  // Nothing the inputs claim (terabytes) was allocated: the heap stayed near where it was.
  expect(process.memoryUsage().heapUsed - heap0).toBeLessThan(256 * 2 ** 20);
};

describe('fuzzing the loaders', () => {
  it('safetensors: corrupted files are CheckpointErrors or load', () => {
    check(fc.property(corrupted(SAFETENSORS), (b) => expectCleanFailure(() => readEverySafetensor(b), [CheckpointError])));
  });

  it('safetensors: random headers (any JSON) are CheckpointErrors or load', () => {
    check(fc.property(fc.jsonValue().map((j) => {
      const header = new TextEncoder().encode(JSON.stringify(j));
      const out = new Uint8Array(8 + header.length + 16);
      new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
      out.set(header, 8);
      return out;
    }), (b) => expectCleanFailure(() => readEverySafetensor(b), [CheckpointError])));
  });

  it('.pth: corrupted zips and pickles are CheckpointErrors or PickleErrors, never a crash', () => {
    check(fc.property(corrupted(PTH), (b) => expectCleanFailure(() => readEveryPth(b), [CheckpointError, PickleError])));
  });

  it('the unpickler: corrupted and random pickles are PickleErrors or values', () => {
    const zip = readZip(openSource(PTH, 'fuzz'));
    const pickle = [...zip.values()].find((e) => e.name.endsWith('data.pkl'))!.read();
    check(fc.property(fc.oneof(corrupted(pickle), fc.uint8Array({ maxLength: 256 })), (b) => expectCleanFailure(() => void unpickle(b), [PickleError])));
  });

  it('the model loader: corrupted checkpoints are errors of the loader, and memory() returns to its baseline', () => {
    check(fc.property(corrupted(MODEL), (b) => expectCleanFailure(() => SecViT.load(b).dispose(), [CheckpointError], ['SecViT config', 'SecViT.load'])));
  });
});

// Structures, not byte flips (issue 22, classes 2-5): valid archives whose pickle places hostile
// structures where the loader reads them, with random sizes. Each case must load or be refused
// with the loader's own error, quickly (a slow case is a failure: the timeout below).
const SLOTS = ['size', 'stride', 'offset', 'numel', 'pid', 'value', 'key'] as const;
type Slot = typeof SLOTS[number];

/** A state dict { w: tensor, extra: value } with `hostile` pushed in place of slot `at`. */
function hostileArchive(at: Slot, hostile: (w: PickleWriter) => void, storage?: { declared: number; copies: number; extentElems: number }): Uint8Array {
  const w = new PickleWriter();
  const put = (slot: Slot, normal: () => void) => (slot === at ? hostile(w) : normal());
  w.emptyDict();
  put('key', () => w.str('w'));
  if (at === 'pid') {
    hostile(w);
    w.binpersid();
  } else {
    const numel = storage ? storage.declared / 4 : 16;
    w.global('torch._utils', '_rebuild_tensor_v2').mark();
    w.mark().str('storage').global('torch', 'FloatStorage').str('0').str('cpu');
    put('numel', () => w.int(numel));
    w.tuple().binpersid();
    put('offset', () => w.int(0));
    put('size', () => w.mark().int(storage ? storage.extentElems : 4).tuple());
    put('stride', () => w.mark().int(1).tuple());
    w.newFalse().global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce();
  }
  w.setitem();
  w.str('extra');
  put('value', () => w.int(7));
  w.setitem();
  const chunk = deflateRawSync(Buffer.alloc(1 << 20), { finishFlush: zlibConstants.Z_SYNC_FLUSH });
  const files = storage
    ? [{ key: '0', data: new Uint8Array(0), declaredSize: storage.declared, deflated: Buffer.concat([...new Array(storage.copies).fill(chunk), deflateRawSync(Buffer.alloc(0))]) }]
    : [{ key: '0', data: new Uint8Array(64) }];
  return pth(w.stop(), files);
}

const hostileStructure: fc.Arbitrary<(w: PickleWriter) => void> = fc.oneof(
  // Class 2: memo-shared lists of 2^depth leaves.
  fc.integer({ min: 0, max: 60 }).map((depth) => (w: PickleWriter) => {
    w.emptyList().mark().int(1).int(1).appends().put(5000).pop();
    for (let i = 1; i <= depth; i++) w.emptyList().mark().get(5000 + i - 1).get(5000 + i - 1).appends().put(5000 + i).pop();
    w.get(5000 + depth);
  }),
  // Class 3: long integers, binary and text.
  fc.tuple(fc.integer({ min: 0, max: 300_000 }), fc.integer({ min: 0, max: 255 })).map(([n, fill]) => (w: PickleWriter) => void w.long4(new Uint8Array(n).fill(fill))),
  fc.integer({ min: 1, max: 300_000 }).map((n) => (w: PickleWriter) => void w.longText('9'.repeat(n))),
  // Class 4: deep nesting.
  fc.integer({ min: 0, max: 300_000 }).map((depth) => (w: PickleWriter) => {
    w.int(1);
    for (let i = 0; i < depth; i++) w.tuple1();
  }),
);

describe('fuzzing the loaders with hostile structures (classes 2-5)', () => {
  it('memo-shared, long and deep structures in every slot the loader reads: loaded or CheckpointErrors, quickly', () => {
    const runs = Math.max(20, Math.floor(RUNS / 3));
    fc.assert(fc.property(fc.constantFrom(...SLOTS), hostileStructure, (at, hostile) => {
      const t0 = performance.now();
      expectCleanFailure(() => readEveryPth(hostileArchive(at, hostile)), [CheckpointError]);
      expect(performance.now() - t0).toBeLessThan(timeBound(3000));
    }), { numRuns: runs, seed: SEED });
  }, 600_000);

  it('deflated storages of any declared size and tensor extent: loaded or CheckpointErrors, never inflating past the tensor', () => {
    const runs = Math.max(20, Math.floor(RUNS / 3));
    fc.assert(fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 0, max: 1024 }), fc.integer({ min: 1, max: 1 << 22 }), (copies, extraMiB, extentElems) => {
      const declared = (copies + extraMiB) << 20;
      const before = process.memoryUsage().arrayBuffers;
      const t0 = performance.now();
      expectCleanFailure(() => readEveryPth(hostileArchive('value', (w) => void w.int(1), { declared, copies, extentElems: Math.min(extentElems, declared / 4) })), [CheckpointError]);
      expect(performance.now() - t0).toBeLessThan(timeBound(3000));
      // At most the tensor (16 MiB here) and the inflate cap: never the declared gigabyte.
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(160 << 20);
    }), { numRuns: runs, seed: SEED });
  }, 600_000);
});

describe('fuzzing image decoding', () => {
  it('corrupted PNG, JPEG and GIF bytes decode or are Errors naming the input (sharp/libvips underneath)', async () => {
    const files = ['landscape.png', 'plain.jpg', 'anim.gif'].map((n) => new Uint8Array(readFileSync(resolve(FIX, 'images', n))));
    await fc.assert(
      fc.asyncProperty(fc.oneof(...files.map(corrupted)), async (b) => {
        try {
          const img = await decodeImage(b);
          expect(img.data.length).toBe(img.width * img.height * 3);
        } catch (e) {
          if (!(e instanceof Error) || !/^image: cannot decode \d+ bytes: /.test(e.message)) throw e;
        }
      }),
      { numRuns: Math.max(Math.min(RUNS, 100), Math.floor(RUNS / 10)), seed: SEED },
    );
  });
});

// Inputs the fuzzer found, kept as regression tests (each failed before its fix).
describe('fuzzer regressions', () => {
  it('a pickle string that is not valid UTF-8 is a PickleError (was the decoder\'s TypeError)', () => {
    // PROTO 2, SHORT_BINUNICODE of the two bytes ff fe, STOP.
    expect(() => unpickle(Uint8Array.from([0x80, 2, 0x8c, 2, 0xff, 0xfe, 0x2e]))).toThrow(PickleError);
    expect(() => unpickle(Uint8Array.from([0x80, 2, 0x8c, 2, 0xff, 0xfe, 0x2e]))).toThrow(/not valid UTF-8/);
  });
});

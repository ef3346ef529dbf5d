// Random-access bytes of a checkpoint: a file read piece by piece (only the tensors a model needs
// are ever read) or a Buffer already in memory. Every read is bounds-checked here, so the
// parsers above can trust that a read either returns exactly what it asked for or throws.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export interface ByteSource {
  /** A name for error messages (the file path, or 'buffer'). */
  readonly name: string;
  readonly size: number;
  /**
   * Exactly `length` bytes at `offset`; a CheckpointError naming `what` when they are not all
   * there. With `into` (at least `length` bytes), a file source reads into it and returns its
   * first `length` bytes (no new buffer); a memory source returns a view of its own bytes.
   */
  read(offset: number, length: number, what: string, into?: Uint8Array): Uint8Array;
  close(): void;
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** `n` bytes to read into: the front of `into` when it is large enough, else a new buffer. */
export function readBuffer(into: Uint8Array | undefined, n: number): Uint8Array {
  return into !== undefined && into.byteLength >= n ? into.subarray(0, n) : new Uint8Array(n);
}

function checkRange(src: { name: string; size: number }, offset: number, length: number, what: string): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > src.size)
    throw new CheckpointError(`${src.name}: ${what} at bytes [${offset}, ${offset + length}) lies outside the ${src.size}-byte file (truncated or corrupt)`);
}

class BufferSource implements ByteSource {
  readonly name: string;
  readonly size: number;
  constructor(private readonly bytes: Uint8Array, name: string) {
    this.name = name;
    this.size = bytes.byteLength;
  }
  read(offset: number, length: number, what: string): Uint8Array {
    checkRange(this, offset, length, what);
    return this.bytes.subarray(offset, offset + length);
  }
  close(): void {}
}

class FileSource implements ByteSource {
  readonly size: number;
  #fd: number | null;
  constructor(readonly name: string) {
    this.#fd = openSync(name, 'r');
    try {
      const st = fstatSync(this.#fd);
      if (!st.isFile()) throw new CheckpointError(`${name}: not a regular file`);
      this.size = st.size;
    } catch (e) {
      closeSync(this.#fd);
      throw e;
    }
  }
  read(offset: number, length: number, what: string, into?: Uint8Array): Uint8Array {
    checkRange(this, offset, length, what);
    if (this.#fd === null) throw new Error(`${this.name}: read after close`);
    const out = readBuffer(into, length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.#fd, out, done, length - done, offset + done);
      if (n <= 0) throw new CheckpointError(`${this.name}: ${what}: the file ended early (it changed while being read?)`);
      done += n;
    }
    return out;
  }
  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }
}

/** A ByteSource over a path or bytes in memory. */
export function openSource(input: string | Uint8Array, what: string): ByteSource {
  if (typeof input === 'string') return new FileSource(input);
  if (input instanceof Uint8Array) return new BufferSource(input, 'buffer');
  throw new TypeError(`${what}: expected a file path or a Buffer/Uint8Array, got ${input === null ? 'null' : typeof input}`);
}

/** The element types a checkpoint may hold, by their safetensors names. */
export type StoredDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
export const STORED_DTYPE_SIZE: Readonly<Record<StoredDType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

/**
 * A tensor of a checkpoint, not yet read: its element type, shape, and how to get its
 * elements (packed row-major, little-endian). Reading is deferred so that a loader touches only
 * the tensors it keeps (never an optimizer's).
 */
export interface StoredTensor {
  readonly dtype: StoredDType;
  readonly shape: readonly number[];
  readonly numel: number;
  /**
   * The elements, packed. With `into` (at least the tensor's byte size) the result may be a view
   * of `into`, so that a loader can read every tensor through one reused buffer; it is valid
   * until the next read into the same buffer.
   */
  read(into?: Uint8Array): Uint8Array;
}

/** Product of `shape` with overflow checks (past 2^53 is an error, not a wrong number). */
export function checkedNumel(shape: readonly number[], what: string): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new CheckpointError(`${what}: shape [${shape.join(', ')}] has an invalid dim ${String(d)}`);
    n *= d;
    if (!Number.isSafeInteger(n)) throw new CheckpointError(`${what}: shape [${shape.join(', ')}] has more than 2^53 elements`);
  }
  return n;
}

/** `numel * size` bytes, checked. */
export function checkedBytes(numel: number, size: number, what: string): number {
  const b = numel * size;
  if (!Number.isSafeInteger(b)) throw new CheckpointError(`${what}: ${numel} elements of ${size} bytes overflow`);
  return b;
}

// A restricted unpickler: it builds inert JavaScript values from a Python pickle (protocols 0 to
// 5) and never executes anything. Python's pickle calls whatever global a stream names; this
// one knows a short list of globals, each mapped to a JavaScript function that only builds data
// (a dict, a tensor descriptor, an attribute bag), and refuses every other global when the
// stream names it, before any call, with an error that names it. Dicts are Maps, so no key can
// reach a prototype. Lengths are checked against the bytes left before anything is allocated.

/** A dict (keys: strings, numbers, booleans, null, or the tuple/object itself). */
export class PyDict extends Map<unknown, unknown> {}

/** A reference to an allowed global, as it sits on the stack before being called. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualname(): string {
    return `${this.module}.${this.name}`;
  }
}

/** An instance of an allowed plain-data class (argparse.Namespace): its attributes, inert. */
export class PyObject {
  readonly attrs = new PyDict();
  constructor(readonly cls: string, readonly args: unknown[] = []) {}
}

export class PickleError extends Error {
  override name = 'PickleError';
}

export interface UnpickleHooks {
  /** Resolves a persistent id (torch: the storages); undefined: persistent ids are refused. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Callable globals beyond the built-in safe ones: `module.name` -> builder. */
  callables?: Map<string, (args: unknown[]) => unknown>;
  /** Globals that may be named but not called (torch's storage types): `module.name`. */
  markers?: Set<string>;
  /** For error messages. */
  name?: string;
}

function pairsToDict(d: PyDict, items: unknown, what: string): void {
  if (items === undefined) return;
  if (!Array.isArray(items)) throw new PickleError(`${what}: expected a list of pairs`);
  for (const p of items) {
    if (!Array.isArray(p) || p.length !== 2) throw new PickleError(`${what}: expected (key, value) pairs`);
    d.set(p[0], p[1]);
  }
}

/** The globals every unpickle may call: pure data builders. */
const BUILTIN_CALLABLES = new Map<string, (args: unknown[]) => unknown>([
  ['collections.OrderedDict', (a) => {
    const d = new PyDict();
    pairsToDict(d, a[0], 'OrderedDict');
    return d;
  }],
  ['builtins.set', (a) => new Set(Array.isArray(a[0]) ? a[0] : [])],
  ['builtins.frozenset', (a) => new Set(Array.isArray(a[0]) ? a[0] : [])],
  ['builtins.bytearray', (a) => (a[0] instanceof Uint8Array ? a[0] : new Uint8Array(0))],
  // Protocol-2 pickles of Python 3 bytes: _codecs.encode(text, 'latin1').
  ['_codecs.encode', (a) => {
    if (typeof a[0] !== 'string') throw new PickleError('_codecs.encode: expected a string');
    return Uint8Array.from(a[0], (c) => c.charCodeAt(0) & 0xff);
  }],
  ['argparse.Namespace', (a) => new PyObject('argparse.Namespace', a)],
  // Protocol 0/1 instances of plain classes: copyreg._reconstructor(cls, object, None).
  ['copyreg._reconstructor', (a) => {
    const cls = a[0];
    if (!(cls instanceof PyGlobal) || cls.qualname !== 'argparse.Namespace')
      throw new PickleError(`copyreg._reconstructor: refusing to construct ${cls instanceof PyGlobal ? cls.qualname : typeof cls}`);
    return new PyObject(cls.qualname);
  }],
]);
const BUILTIN_MARKERS = new Set(['builtins.object']);

const MAX_DEPTH_STACK = 1 << 24;
/** Integers: 1 KiB of two's complement (LONG1/LONG4), 2,466 decimal digits (LONG, INT). */
const MAX_INT_BYTES = 1024;
const MAX_INT_DIGITS = 2466;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * Unpickles `data` into inert values. Throws PickleError for a refused global, an unknown or
 * unsupported opcode, or a malformed stream.
 */
export function unpickle(data: Uint8Array, hooks: UnpickleHooks = {}): unknown {
  const name = hooks.name ?? 'pickle';
  const fail = (msg: string): never => {
    throw new PickleError(`${name}: ${msg}`);
  };
  const callables = new Map([...BUILTIN_CALLABLES, ...(hooks.callables ?? [])]);
  const markers = new Set([...BUILTIN_MARKERS, ...(hooks.markers ?? [])]);
  const allowed = (): string => [...callables.keys(), ...markers].sort().join(', ');
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const latin1 = new TextDecoder('latin1');
  const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
  // Invalid UTF-8 in a string opcode is a corrupt pickle (the decoder's TypeError is not).
  const utf8 = {
    decode(b: Uint8Array): string {
      try {
        return utf8Decoder.decode(b);
      } catch {
        return fail(`a string of ${b.length} bytes is not valid UTF-8`);
      }
    },
  };
  let pos = 0;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();

  const need = (n: number, what: string): number => {
    if (!Number.isSafeInteger(n) || n < 0 || pos + n > data.length)
      fail(`${what}: needs ${n} bytes at offset ${pos}, only ${data.length - pos} left (truncated or corrupt)`);
    const at = pos;
    pos += n;
    return at;
  };
  const bytes = (n: number, what: string): Uint8Array => {
    const at = need(n, what);
    return data.subarray(at, at + n);
  };
  const line = (what: string): string => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) fail(`${what}: unterminated line`);
    const s = latin1.decode(data.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) fail('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail('no MARK on the stack');
    return stack.splice(m!);
  };
  const push = (v: unknown): void => {
    if (stack.length >= MAX_DEPTH_STACK) fail('stack too deep');
    stack.push(v);
  };
  const findGlobal = (module: string, qual: string): PyGlobal => {
    const full = `${module}.${qual}`;
    if (!callables.has(full) && !markers.has(full))
      fail(`refusing global '${full}': only the globals a state dict needs are allowed (${allowed()})`);
    return new PyGlobal(module, qual);
  };
  const call = (fn: unknown, args: unknown): unknown => {
    if (!(fn instanceof PyGlobal)) fail(`REDUCE on a ${typeof fn}, not an allowed global`);
    const f = callables.get((fn as PyGlobal).qualname);
    if (!f) fail(`refusing to call '${(fn as PyGlobal).qualname}'`);
    if (!Array.isArray(args)) fail(`arguments of '${(fn as PyGlobal).qualname}' are not a tuple`);
    return f!(args as unknown[]);
  };
  const setItems = (d: unknown, items: unknown[]): void => {
    if (!(d instanceof PyDict)) fail('SETITEM(S) on something that is not a dict');
    if (items.length % 2) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) (d as PyDict).set(items[i], items[i + 1]);
  };
  const toNumber = (v: bigint): number | bigint => (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
  // Little-endian two's complement, in linear time: one hex string, one BigInt (shifting a
  // BigInt byte by byte was quadratic: 160 KB took over 30 s). A state dict's integers are small;
  // longer ones are refused.
  const long = (b: Uint8Array, what: string): number | bigint => {
    if (b.length === 0) return 0;
    if (b.length > MAX_INT_BYTES) fail(`${what}: an integer of ${b.length} bytes (at most ${MAX_INT_BYTES})`);
    let hex = '';
    for (let i = b.length - 1; i >= 0; i--) hex += HEX[b[i]];
    let v = BigInt(`0x${hex}`);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return toNumber(v);
  };
  const textInt = (s: string, what: string): number | bigint | boolean => {
    const t = s.replace(/L$/, '').trim();
    if (t === '00') return false;
    if (t === '01') return true;
    if (t.length > MAX_INT_DIGITS) fail(`${what}: an integer of ${t.length} digits (at most ${MAX_INT_DIGITS})`);
    if (!/^[-+]?\d+$/.test(t)) fail(`${what}: not an integer: ${JSON.stringify(t.slice(0, 40))}`);
    return toNumber(BigInt(t));
  };

  for (;;) {
    const at = need(1, 'opcode');
    const op = data[at];
    switch (op) {
      case 0x80: { // PROTO
        const v = data[need(1, 'PROTO')];
        if (v > 5) fail(`pickle protocol ${v} is not supported (0 to 5)`);
        break;
      }
      case 0x95: need(8, 'FRAME'); break; // FRAME: a length hint only
      case 0x2e: { // STOP
        if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack`);
        return stack[0];
      }
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: push(top()); break; // DUP
      case 0x4e: push(null); break; // NONE
      case 0x88: push(true); break; // NEWTRUE
      case 0x89: push(false); break; // NEWFALSE
      case 0x4a: push(view.getInt32(need(4, 'BININT'), true)); break;
      case 0x4b: push(data[need(1, 'BININT1')]); break;
      case 0x4d: push(view.getUint16(need(2, 'BININT2'), true)); break;
      case 0x8a: push(long(bytes(data[need(1, 'LONG1')], 'LONG1'), 'LONG1')); break;
      case 0x8b: push(long(bytes(view.getInt32(need(4, 'LONG4'), true), 'LONG4'), 'LONG4')); break;
      case 0x49: push(textInt(line('INT'), 'INT')); break; // INT
      case 0x4c: push(textInt(line('LONG'), 'LONG')); break; // LONG
      case 0x47: push(view.getFloat64(need(8, 'BINFLOAT'), false)); break;
      case 0x46: { // FLOAT
        const s = line('FLOAT');
        const v = Number(s);
        if (Number.isNaN(v) && !/nan/i.test(s)) fail(`FLOAT: not a number: ${JSON.stringify(s)}`);
        push(v);
        break;
      }
      case 0x58: push(utf8.decode(bytes(view.getUint32(need(4, 'BINUNICODE'), true), 'BINUNICODE'))); break;
      case 0x8c: push(utf8.decode(bytes(data[need(1, 'SHORT_BINUNICODE')], 'SHORT_BINUNICODE'))); break;
      case 0x8d: {
        const n = view.getBigUint64(need(8, 'BINUNICODE8'), true);
        push(utf8.decode(bytes(n > BigInt(data.length) ? -1 : Number(n), 'BINUNICODE8')));
        break;
      }
      case 0x56: push(line('UNICODE').replace(/\\u([0-9a-fA-F]{4})/g, (_, h) => String.fromCharCode(parseInt(h, 16)))); break;
      case 0x54: push(latin1.decode(bytes(view.getInt32(need(4, 'BINSTRING'), true), 'BINSTRING'))); break;
      case 0x55: push(latin1.decode(bytes(data[need(1, 'SHORT_BINSTRING')], 'SHORT_BINSTRING'))); break;
      case 0x53: { // STRING: a quoted repr
        const s = line('STRING');
        const m = /^(['"])(.*)\1$/.exec(s);
        if (!m) fail(`STRING: not a quoted string: ${JSON.stringify(s)}`);
        push(m![2]);
        break;
      }
      case 0x42: push(bytes(view.getUint32(need(4, 'BINBYTES'), true), 'BINBYTES').slice()); break;
      case 0x43: push(bytes(data[need(1, 'SHORT_BINBYTES')], 'SHORT_BINBYTES').slice()); break;
      case 0x8e: case 0x96: { // BINBYTES8, BYTEARRAY8
        const n = view.getBigUint64(need(8, 'BINBYTES8'), true);
        push(bytes(n > BigInt(data.length) ? -1 : Number(n), 'BINBYTES8').slice());
        break;
      }
      case 0x7d: push(new PyDict()); break; // EMPTY_DICT
      case 0x5d: push([]); break; // EMPTY_LIST
      case 0x29: push(Object.freeze([])); break; // EMPTY_TUPLE
      case 0x8f: push(new Set()); break; // EMPTY_SET
      case 0x64: { // DICT
        const d = new PyDict();
        setItems(d, popMark());
        push(d);
        break;
      }
      case 0x6c: push(popMark()); break; // LIST
      case 0x74: push(Object.freeze(popMark())); break; // TUPLE
      case 0x85: push(Object.freeze([pop()])); break;
      case 0x86: { const b = pop(); const a = pop(); push(Object.freeze([a, b])); break; }
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); push(Object.freeze([a, b, c])); break; }
      case 0x91: push(new Set(popMark())); break; // FROZENSET
      case 0x61: { // APPEND
        const v = pop();
        const l = top();
        if (!Array.isArray(l) || Object.isFrozen(l)) fail('APPEND to something that is not a list');
        (l as unknown[]).push(v);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        const l = top();
        if (!Array.isArray(l) || Object.isFrozen(l)) fail('APPENDS to something that is not a list');
        for (const v of items) (l as unknown[]).push(v);
        break;
      }
      case 0x90: { // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) fail('ADDITEMS to something that is not a set');
        for (const v of items) (s as Set<unknown>).add(v);
        break;
      }
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x70: memo.set(Number(textInt(line('PUT'), 'PUT')), top()); break; // PUT
      case 0x71: memo.set(data[need(1, 'BINPUT')], top()); break;
      case 0x72: memo.set(view.getUint32(need(4, 'LONG_BINPUT'), true), top()); break;
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x67: case 0x68: case 0x6a: { // GET, BINGET, LONG_BINGET
        const i = op === 0x67 ? Number(textInt(line('GET'), 'GET')) : op === 0x68 ? data[need(1, 'BINGET')] : view.getUint32(need(4, 'LONG_BINGET'), true);
        if (!memo.has(i)) fail(`memo key ${i} is not defined`);
        push(memo.get(i));
        break;
      }
      case 0x63: { // GLOBAL
        const module = line('GLOBAL');
        push(findGlobal(module, line('GLOBAL')));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const qual = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof qual !== 'string') fail('STACK_GLOBAL needs two strings');
        push(findGlobal(module as string, qual as string));
        break;
      }
      case 0x52: { const args = pop(); const fn = pop(); push(call(fn, args)); break; } // REDUCE
      case 0x81: { const args = pop(); const cls = pop(); push(call(cls, args)); break; } // NEWOBJ
      case 0x92: { // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!(kwargs instanceof PyDict) || kwargs.size) fail('NEWOBJ_EX with keyword arguments is not supported');
        push(call(cls, args));
        break;
      }
      case 0x69: { // INST: module, name, then args from the mark
        const module = line('INST');
        const g = findGlobal(module, line('INST'));
        push(call(g, popMark()));
        break;
      }
      case 0x6f: { // OBJ: class and args from the mark
        const items = popMark();
        if (items.length === 0) fail('OBJ without a class');
        push(call(items[0], items.slice(1)));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const obj = top();
        if (obj instanceof PyObject) {
          // state: a dict of attributes, or (dict, slots dict).
          const dicts = Array.isArray(state) ? state : [state];
          for (const s of dicts) if (s instanceof PyDict) for (const [k, v] of s) obj.attrs.set(k, v);
        } else if (obj instanceof PyDict) {
          if (state instanceof PyDict) for (const [k, v] of state) obj.set(k, v);
        } else if (state !== null && !(hooks.callables && isBuildable(obj))) {
          fail(`BUILD on a ${describe(obj)}`);
        }
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!hooks.persistentLoad) fail('persistent ids are not allowed here');
        push(hooks.persistentLoad!(pid));
        break;
      }
      case 0x50: { // PERSID
        const pid = line('PERSID');
        if (!hooks.persistentLoad) fail('persistent ids are not allowed here');
        push(hooks.persistentLoad!(pid));
        break;
      }
      case 0x82: case 0x83: case 0x84: fail('extension registry opcodes (EXT1/2/4) are refused'); break;
      case 0x97: case 0x98: fail('out-of-band buffers (NEXT_BUFFER/READONLY_BUFFER) are refused'); break;
      default:
        fail(`unknown opcode 0x${op.toString(16).padStart(2, '0')} at offset ${at}`);
    }
  }
}

/** Values a hook built that may receive BUILD state (ignored): tensor descriptors. */
function isBuildable(v: unknown): boolean {
  return typeof v === 'object' && v !== null && (v as { pickleBuildable?: boolean }).pickleBuildable === true;
}

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return Object.isFrozen(v) ? 'tuple' : 'list';
  if (v instanceof PyGlobal) return `global ${v.qualname}`;
  return typeof v === 'object' ? (v as object).constructor.name : typeof v;
}

// Tensor lifetimes: scopes (tidy/keep) and the GC backstop.
//
// Scopes live in an AsyncLocalStorage, so `tidy(async () => ...)` tracks the tensors made by
// its own awaited continuations and not those of unrelated work interleaved with it.
import { AsyncLocalStorage } from 'node:async_hooks';

/** What scopes need to know of a tensor. */
export interface Trackable {
  readonly disposed: boolean;
  dispose(): void;
}

interface Scope {
  readonly tracked: Set<Trackable>;
  readonly parent: Scope | undefined;
  /** Set when the scope ended: work it started later (a timer) must not add to it. */
  closed: boolean;
}

const storage = new AsyncLocalStorage<Scope>();
const kept = new WeakSet<Trackable>();

/**
 * `s` or its innermost enclosing scope still open. A closed one would hold what is added to it
 * for as long as the async context that captured it lives, and never dispose it.
 */
function openScope(s: Scope | undefined): Scope | undefined {
  while (s?.closed) s = s.parent;
  return s;
}

/** Called by every new tensor: it belongs to the innermost open scope, if any. */
export function track(t: Trackable): void {
  openScope(storage.getStore())?.tracked.add(t);
}

/** Removes `t` from every scope: it survives the end of enclosing `tidy` calls. */
export function keep<T extends Trackable>(t: T): T {
  if (typeof t !== 'object' || t === null || !trackedKinds.has((t as object).constructor))
    throw new TypeError(`keep: expected a Tensor, got ${t === null ? 'null' : typeof t === 'object' ? (t as object).constructor?.name ?? 'an object' : typeof t}`);
  kept.add(t);
  for (let s = storage.getStore(); s; s = s.parent) s.tracked.delete(t);
  return t;
}

function collect(value: unknown, out: Set<Trackable>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 8) return;
  if (isTrackable(value)) {
    out.add(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, out, depth + 1);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, out, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out, depth + 1);
  }
}

function isTrackable(v: object): v is Trackable {
  return typeof (v as Trackable).dispose === 'function' && 'disposed' in v && trackedKinds.has(v.constructor);
}

const trackedKinds = new Set<unknown>();
/** Registers a class whose instances tidy() returns untouched (Tensor). */
export function registerTrackedClass(cls: unknown): void {
  trackedKinds.add(cls);
}

function close(scope: Scope, result: unknown): void {
  scope.closed = true;
  const survivors = new Set<Trackable>();
  collect(result, survivors);
  for (const t of scope.tracked) {
    if (!survivors.has(t) && !kept.has(t)) t.dispose();
  }
  // What the scope returns now belongs to the enclosing scope.
  const parent = openScope(scope.parent);
  if (parent) for (const t of survivors) if (!t.disposed && !kept.has(t)) parent.tracked.add(t);
  scope.tracked.clear();
}

/**
 * Runs `fn` and disposes every tensor created inside it that is neither returned (directly, or
 * inside arrays, Maps and plain objects) nor passed to `keep()`. Also when `fn` throws. If `fn`
 * returns a Promise, the scope ends when it settles, and tidy returns a Promise.
 */
export function tidy<T>(fn: () => T): T;
export function tidy<T>(name: string, fn: () => T): T;
export function tidy<T>(nameOrFn: string | (() => T), maybeFn?: () => T): T {
  const fn = typeof nameOrFn === 'function' ? nameOrFn : maybeFn;
  if (typeof fn !== 'function') throw new TypeError('tidy: fn must be a function');
  const scope: Scope = { tracked: new Set(), parent: storage.getStore(), closed: false };
  let result: T;
  try {
    result = storage.run(scope, fn);
  } catch (err) {
    close(scope, undefined);
    throw err;
  }
  if (result instanceof Promise) {
    return result.then(
      (v) => {
        close(scope, v);
        return v;
      },
      (err) => {
        close(scope, undefined);
        throw err;
      },
    ) as T;
  }
  close(scope, result);
  return result;
}

// The backstop for tensors that are never disposed is native: when a Tensor's handle is garbage
// collected live, its finalizer releases the memory and counts it (memory().gcReleasedTensors).

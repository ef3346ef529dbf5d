// Untrusted values in error messages: never stringified whole.

/**
 * A short, bounded description of an untrusted value for an error message: never the whole
 * structure (a memo-shared nested list can stand for 2^40 leaves; stringifying it ran for minutes
 * and then threw V8's "Invalid string length").
 */
export function brief(v: unknown, max = 80): string {
  const seen = new Set<unknown>();
  let budget = 32; // values visited
  const walk = (x: unknown, depth: number): string => {
    if (--budget < 0) return '...';
    if (x === null || typeof x !== 'object') {
      if (typeof x === 'string') return JSON.stringify(x.length > 40 ? `${x.slice(0, 40)}...` : x);
      if (typeof x === 'bigint') return `${x}n`.length > 24 ? 'a big integer' : `${x}n`;
      return String(x);
    }
    if (seen.has(x) || depth > 3) return Array.isArray(x) ? '[...]' : '{...}';
    seen.add(x);
    if (Array.isArray(x)) {
      const items = x.slice(0, 6).map((e) => walk(e, depth + 1));
      return `[${items.join(', ')}${x.length > 6 ? `, ... (${x.length} items)` : ''}]`;
    }
    const keys = Object.keys(x as object);
    const items = keys.slice(0, 6).map((k) => `${k}: ${walk((x as Record<string, unknown>)[k], depth + 1)}`);
    return `{${items.join(', ')}${keys.length > 6 ? ', ...' : ''}}`;
  };
  const s = walk(v, 0);
  return s.length > max ? `${s.slice(0, max)}...` : s;
}

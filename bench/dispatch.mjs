// The cost of the op layer itself, on the CPU: how long a small op takes to return (validate,
// reserve the output, enqueue; the kernel runs later on the dispatcher), and a chain of 1000
// small ops from the first enqueue to the result, next to the same chain awaited op by op
// (what a forward pass costs when every layer waits for the previous one).
import { median, verdict } from './util.mjs';

const stat = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), samples: xs.length });

export async function dispatchRows(secvit, { rounds = 30 } = {}) {
  const x = secvit.tensor(new Float32Array(16).fill(0.5), [4, 4]);
  // 1. Return time: batches of 100 calls; the outputs are disposed outside the timed part.
  const perCall = [];
  const outs = new Array(100);
  for (let r = 0; r < rounds * 4; r++) {
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) outs[i] = secvit.add(x, 1);
    perCall.push(((performance.now() - t0) * 1000) / 100);
    await outs[99].data();
    for (const o of outs) o.dispose();
  }
  // 2. A chain of 1000 dependent small ops, queued back to back, then one read.
  const chain = [];
  const awaited = [];
  for (let r = 0; r < rounds; r++) {
    let t0 = performance.now();
    let acc = secvit.add(x, 1);
    for (let i = 1; i < 1000; i++) {
      const next = secvit.add(acc, 1);
      acc.dispose();
      acc = next;
    }
    await acc.data();
    chain.push(performance.now() - t0);
    acc.dispose();
    // The same chain, reading each result before the next op (await between layers).
    t0 = performance.now();
    acc = secvit.add(x, 1);
    await acc.data();
    for (let i = 1; i < 1000; i++) {
      const next = secvit.add(acc, 1);
      acc.dispose();
      acc = next;
      await acc.data();
    }
    awaited.push(performance.now() - t0);
    acc.dispose();
  }
  x.dispose();
  return { returnUs: stat(perCall), chainMs: stat(chain), awaitedChainMs: stat(awaited) };
}

/** The dispatch target (BENCHMARKS.md): a small op returns to JavaScript within 5 us. */
export const DISPATCH_TARGET_US = { max: 5 };

/** Prints the rows; returns the misses ([] when every stated target is met). */
export function printDispatch(r) {
  const f = (s, unit, digits = 2) => `${s.median.toFixed(digits)} ${unit} [${s.min.toFixed(digits)}-${s.max.toFixed(digits)}]`;
  const v = verdict(r.returnUs.median, DISPATCH_TARGET_US, 'us');
  console.log('\nop layer (CPU): median [min-max]');
  console.table([
    { measure: `small op, time to return (target <= ${DISPATCH_TARGET_US.max} us)`, value: f(r.returnUs, 'us'), target: v.text },
    { measure: 'chain of 1000 small ops, enqueue to result', value: f(r.chainMs, 'ms'), target: '' },
    { measure: 'the same chain awaiting every op', value: f(r.awaitedChainMs, 'ms'), target: '' },
  ]);
  return v.ok ? [] : [`op layer: small op, time to return: ${v.text}`];
}

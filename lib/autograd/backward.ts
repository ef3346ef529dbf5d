// backward(): walks the graph (graph.ts) from a tensor to the leaves that require grad, in
// dependency order, and adds each leaf's gradient into its `.grad`.
//
// Order: a node runs once every node that consumes one of its outputs has delivered its share
// (Kahn's algorithm over the nodes reachable from the start); the gradients arriving at one
// output are summed. Gradient functions run with recording off, inside a scope of their own:
// what they make and nobody keeps is disposed when backward returns, and each node's incoming
// gradients are disposed as soon as it has run (unless it passed one on unchanged). Saved
// tensors are released as each node runs (unless retainGraph).
//
// Ownership of leaf gradients: a leaf's `.grad` belongs to the leaf (optimizers update it in
// place, clipGradNorm scales it). A gradient that still shares memory with another live tensor
// (a gradient passed to two inputs, a view of the caller's gradOutput) is copied first.
import { keep, tidy } from '../engine.js';
import { runOp1 } from '../ops/run.js';
import { setBackwardImpl, Tensor, tensorGrad, zeros } from '../tensor.js';
import { noGrad, type Node } from './graph.js';

/** Storage identity of a tensor's memory (two views of one block share it). */
function storageOf(t: Tensor): number {
  return t.handle('backward', 'gradient').info().storage;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((s, i) => s === b[i]);
}

function ones(like: Tensor): Tensor {
  const z = zeros(like.shape, { dtype: like.dtype, device: like.device });
  const one = runOp1('add', { a: z }, { scalar: 1 });
  z.dispose();
  return one;
}

async function runBackward(root: Tensor, gradOutput: Tensor | null, options: { retainGraph?: boolean }): Promise<void> {
  if (typeof options !== 'object' || options === null) throw new TypeError('backward: options must be an object');
  const retain = options.retainGraph === true;
  root.handle('backward');
  if (!root.requiresGrad)
    throw new Error('backward: this tensor does not require grad (no tensor it was computed from requires grad, or it was computed under noGrad())');
  if (gradOutput === null && root.size !== 1)
    throw new RangeError(`backward: a tensor of shape [${root.shape.join(', ')}] needs a gradient; pass backward(gradOutput) with one of its shape (only a scalar's is implicit)`);
  if (gradOutput !== null) {
    if (!(gradOutput instanceof Tensor)) throw new TypeError('backward: gradOutput must be a Tensor');
    gradOutput.handle('backward', 'gradOutput');
    if (!sameShape(gradOutput.shape, root.shape) || gradOutput.dtype !== root.dtype || gradOutput.device !== root.device)
      throw new RangeError(`backward: gradOutput must be a ${root.dtype} [${root.shape.join(', ')}] tensor on ${root.device}, got ${gradOutput}`);
  }
  const access = tensorGrad();
  const touched: Tensor[] = [];
  // Live gradient tensors per storage: a leaf may keep a gradient only if nothing else holds its memory.
  const holders = new Map<number, number>();
  const hold = (t: Tensor, n = 1): void => {
    const s = storageOf(t);
    holders.set(s, (holders.get(s) ?? 0) + n);
  };
  const drop = (t: Tensor): void => {
    const s = storageOf(t);
    const n = (holders.get(s) ?? 1) - 1;
    if (n <= 0) holders.delete(s);
    else holders.set(s, n);
    t.dispose();
  };

  const accumulate = (leaf: Tensor, g: Tensor): void => {
    leaf.handle('backward', 'a leaf tensor that requires grad');
    if (!touched.includes(leaf)) touched.push(leaf);
    const prev = leaf.grad;
    if (prev === null) {
      const owned = (holders.get(storageOf(g)) ?? 0) === 1 && g.isContiguous();
      // A leaf's gradient is contiguous (clipGradNorm and the optimizers update it in place): a
      // gradient that reached it through a view (a transposed parameter: Swin's bias table
      // enters a matmul as table^T) is packed.
      const mine = owned ? g : keep(g.isContiguous() ? g.cast(g.dtype) : g.contiguous());
      if (owned) holders.delete(storageOf(g));
      else drop(g);
      leaf.grad = mine;
      return;
    }
    leaf.grad = keep(runOp1('add', { a: prev, b: g }));
    drop(g);
  };

  noGrad(() => tidy(() => {
    const seed = gradOutput !== null ? gradOutput.detach() : ones(root);
    hold(seed, gradOutput !== null ? 2 : 1);  // the caller's gradOutput stays the caller's
    const start = access.node(root);
    if (start === null) {
      accumulate(root, seed);
      return;
    }
    // Dependencies: how many gradient deliveries each reachable node waits for.
    const deps = new Map<Node, number>();
    const stack: Node[] = [start.node];
    const seen = new Set<Node>([start.node]);
    while (stack.length > 0) {
      const n = stack.pop()!;
      for (const e of n.edges) {
        if (!e?.node) continue;
        deps.set(e.node, (deps.get(e.node) ?? 0) + 1);
        if (!seen.has(e.node)) {
          seen.add(e.node);
          stack.push(e.node);
        }
      }
    }
    const buffers = new Map<Node, (Tensor | null)[]>();
    const slot = (n: Node): (Tensor | null)[] => {
      let b = buffers.get(n);
      if (!b) buffers.set(n, (b = new Array<Tensor | null>(n.numOutputs).fill(null)));
      return b;
    };
    slot(start.node)[start.index] = seed;
    const ready: Node[] = [start.node];
    while (ready.length > 0) {
      const node = ready.pop()!;
      const grads = slot(node);
      buffers.delete(node);
      const outs = node.run(grads, retain);
      const passed = new Set<Tensor>();
      const toLeaves: [Tensor, Tensor][] = [];
      node.edges.forEach((e, i) => {
        const g = outs[i];
        if (!e || !g) return;
        const want = node.inputShapes[i]!;
        if (!sameShape(g.shape, want))
          throw new Error(`internal error: the gradient of '${node.name}' for input ${i} is [${g.shape.join(', ')}], expected [${want.join(', ')}]`);
        // One tensor object per destination; an incoming gradient passed on is counted already.
        const first = !passed.has(g);
        const gi = first ? g : g.detach();
        if (!(first && grads.includes(g))) hold(gi);
        passed.add(g);
        if (e.leaf) {
          toLeaves.push([e.leaf, gi]);
          return;
        }
        const b = slot(e.node);
        const prev = b[e.index];
        if (prev === null) {
          b[e.index] = gi;
        } else {
          const sum = runOp1('add', { a: prev, b: gi });
          hold(sum);
          drop(prev);
          drop(gi);
          b[e.index] = sum;
        }
      });
      for (const g of grads) if (g !== null && !passed.has(g)) drop(g);
      // After the incoming gradients are gone, so that a leaf can own a view of one of them.
      for (const [leaf, g] of toLeaves) accumulate(leaf, g);
      for (const e of node.edges) {
        if (!e?.node) continue;
        const left = deps.get(e.node)! - 1;
        deps.set(e.node, left);
        if (left === 0) ready.push(e.node);
      }
    }
    // Gradients that reached a node with nothing left to run (a branch cut by noGrad) are dropped.
    for (const b of buffers.values()) for (const g of b) if (g !== null) drop(g);
  }));
  // Resolves once every leaf gradient is computed (rejects with the error of a failed kernel).
  await Promise.all(touched.map((t) => t.grad?.ready()));
}

setBackwardImpl(runBackward);

import { registerGradient } from '../autograd/graph.js';
import type { Tensor } from '../tensor.js';
import { defineOp } from './run.js';

const matmulOp = defineOp('matmul');

// d a = dy b^T; d b = a^T dy (summed over the batch for a b shared by it). Transposes are views:
// matmul reads its operands through their strides.
registerGradient('matmul', {
  save: (_attrs, needs) => ({ inputs: [...(needs.b ? ['a'] : []), ...(needs.a ? ['b'] : [])] }),
  backward: ([dy], { inputs, needs, shapes }) => {
    const g = dy!;
    let da: Tensor | null = null;
    let db: Tensor | null = null;
    if (needs.a) {
      const bt = inputs.b!.transpose(-1, -2);
      da = matmulOp.run1({ a: g, b: bt });
      bt.dispose();
    }
    if (needs.b) {
      const a = inputs.a!;
      if (shapes.b!.length === 3 || a.shape.length === 2) {
        const at = a.transpose(-1, -2);
        db = matmulOp.run1({ a: at, b: g });
        at.dispose();
      } else {
        // A 2-D b shared by a batched a: one product over batch * M rows.
        const [bn, m, k] = a.shape;
        const a2 = a.reshape([bn * m, k]);
        const at = a2.transpose(0, 1);
        const g2 = g.reshape([bn * m, g.shape[2]]);
        db = matmulOp.run1({ a: at, b: g2 });
        for (const t of [a2, at, g2]) t.dispose();
      }
    }
    return { a: da, b: db };
  },
});

/**
 * Matrix product: a [M,K] or [B,M,K] times b [K,N] or [B,K,N] (a 2-D b is shared by every
 * batch). Queued on the inputs' device; returns at once (`await` works too, and reading waits).
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  return matmulOp.run1({ a, b });
}

/** `matmul`, run and waited for (errors of the kernel throw here). */
export function matmulSync(a: Tensor, b: Tensor): Tensor {
  return matmulOp.run1({ a, b }, {}, true);
}

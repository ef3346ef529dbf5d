// Double-precision reference of matmul, written from its definition, for checking kernels.

/** C = A B for `batch` problems; b is shared when `bBatched` is false. */
export function matmulRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  batch: number,
  m: number,
  k: number,
  n: number,
  bBatched: boolean,
): Float64Array {
  const c = new Float64Array(batch * m * n);
  for (let bi = 0; bi < batch; bi++) {
    const ao = bi * m * k;
    const bo = bBatched ? bi * k * n : 0;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let kk = 0; kk < k; kk++) s += a[ao + i * k + kk] * b[bo + kk * n + j];
        c[bi * m * n + i * n + j] = s;
      }
    }
  }
  return c;
}

"""NumPy/OpenBLAS side of secvit's GEMM benchmark (bench/gemm.mjs), driven over stdin/stdout.

Each input line is a JSON request; each answer one JSON line:
  {"op": "setup", "m": M, "k": K, "n": N, "kind": "matmul" | "linear_fused"}
      allocates A [M, K], B [K, N] (and bias, residual, scale for linear_fused) in float32
  {"op": "time", "ms": T}
      runs the current product repeatedly for about T ms and returns every sample's time in ms:
      matmul: C = A @ B (one sgemm); linear_fused: C = residual + scale * (A @ B + bias), the
      unfused NumPy sequence (sgemm, then element-wise passes) that secvit's fused epilogue
      replaces.
The thread count is the caller's OPENBLAS_NUM_THREADS.
"""
import json
import sys
import time

import numpy as np

state = {}


def run():
    if state["kind"] == "matmul":
        np.matmul(state["a"], state["b"], out=state["c"])
    else:
        c = state["c"]
        np.matmul(state["a"], state["b"], out=c)
        c += state["bias"]
        c *= state["scale"]
        c += state["res"]


for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "setup":
        m, k, n = req["m"], req["k"], req["n"]
        rng = np.random.default_rng(1)
        state = {
            "kind": req["kind"],
            "a": rng.standard_normal((m, k), dtype=np.float32),
            "b": rng.standard_normal((k, n), dtype=np.float32),
            "c": np.empty((m, n), dtype=np.float32),
            "bias": rng.standard_normal(n, dtype=np.float32),
            "scale": rng.standard_normal(n, dtype=np.float32),
            "res": rng.standard_normal((m, n), dtype=np.float32),
        }
        run()
        print(json.dumps({"ok": True, "numpy": np.__version__}), flush=True)
    elif req["op"] == "time":
        samples = []
        end = time.perf_counter() + req["ms"] / 1000
        while True:
            t0 = time.perf_counter()
            run()
            samples.append((time.perf_counter() - t0) * 1000)
            if time.perf_counter() > end and len(samples) >= 3:
                break
        print(json.dumps({"samples": samples}), flush=True)

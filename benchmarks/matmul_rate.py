"""The machine's matrix-product rate in fp32 and bf16 (GFLOP/s), the ceiling for a step's
achieved rate (``r1kit.perf``).

Times ``torch.mm`` on shapes of the work: a square product, a token batch through an MLP-sized
weight, and a chunk of tokens through an LM head (SmolLM2-135M's sizes by default). Best of
``--repeats`` after a warm-up; prints one line per dtype and shape, then the best per dtype.

    python benchmarks/matmul_rate.py
    python benchmarks/matmul_rate.py --threads 1
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

SHAPES = {  # name: (m, k, n)
    "square 2048": (2048, 2048, 2048),
    "mlp 512x576x1536": (512, 576, 1536),
    "lm-head 256x576x49152": (256, 576, 49152),
}


def rate(m: int, k: int, n: int, dtype: torch.dtype, repeats: int) -> float:
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    out = torch.empty(m, n, dtype=dtype)
    torch.mm(a, b, out=out)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2 * m * k * n / best / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="0: r1kit's thread policy (auto)")
    args = ap.parse_args()
    from r1kit.threads import apply

    print(f"torch {torch.__version__}, {apply(args.threads)} threads")
    best = {}
    for dtype in (torch.float32, torch.bfloat16):
        for name, shape in SHAPES.items():
            r = rate(*shape, dtype, args.repeats)
            best[dtype] = max(best.get(dtype, 0.0), r)
            print(f"{str(dtype).removeprefix('torch.'):9s} {name:22s} {r:8.1f} GFLOP/s", flush=True)
    print(f"matmul GFLOP/s: fp32 {best[torch.float32]:.1f}, bf16 {best[torch.bfloat16]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

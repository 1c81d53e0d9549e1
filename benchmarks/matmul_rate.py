"""The machine's matrix-product rate in fp32 and bf16 (GFLOP/s), the ceiling for a step's
achieved rate (``r1kit.perf``).

Times ``torch.mm`` on shapes of the work: a square product, a token batch through an MLP-sized
weight, and a chunk of tokens through an LM head (SmolLM2-135M's sizes by default). Best of
``--repeats`` after a warm-up; prints one line per dtype and shape, then the best per dtype.

A decode step multiplies a few rows by every weight of the model, so these rates do not bound it.
The last lines time that (``--rows`` rows through SmolLM2-135M's 30 layers of weights, 212 MB in
bf16, more than the caches hold) as the rate at which weights stream through ``F.linear``, beside
the machine's memory copy rate (read + write): a stream well below the copy rate means the kernel,
not memory, is the limit.

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


def best_seconds(fn, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``fn``, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def rate(m: int, k: int, n: int, dtype: torch.dtype, repeats: int) -> float:
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    out = torch.empty(m, n, dtype=dtype)
    return 2 * m * k * n / best_seconds(lambda: torch.mm(a, b, out=out), repeats) / 1e9


def copy_rate(repeats: int) -> float:
    """GB/s moved (read + write) copying a 256 MB buffer."""
    src = torch.empty(64 << 20)
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / best_seconds(lambda: dst.copy_(src), repeats) / 1e9


def decode_stream_rate(rows: int, dtype: torch.dtype, repeats: int) -> float:
    """GB/s of weights through ``F.linear`` for ``rows`` rows: one pass over SmolLM2-135M-sized
    decoder layers (q, k, v, o, gate, up, down)."""
    hidden, inter, kv = 576, 1536, 192
    shapes = [(hidden, hidden), (kv, hidden), (kv, hidden), (hidden, hidden), (inter, hidden), (inter, hidden),
              (hidden, inter)] * 30
    weights = [torch.randn(o, i).to(dtype) for o, i in shapes]
    xs = {i: torch.randn(rows, i).to(dtype) for i in (hidden, inter)}

    def one_pass():
        for w in weights:
            torch.nn.functional.linear(xs[w.size(1)], w)

    return sum(w.numel() * w.element_size() for w in weights) / best_seconds(one_pass, repeats) / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="0: r1kit's thread policy (auto)")
    ap.add_argument("--rows", type=int, default=16, help="rows per decode step (live sequences)")
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
    stream = {dtype: decode_stream_rate(args.rows, dtype, args.repeats) for dtype in (torch.float32, torch.bfloat16)}
    print(f"decode weight stream GB/s ({args.rows} rows): fp32 {stream[torch.float32]:.1f}, "
          f"bf16 {stream[torch.bfloat16]:.1f}; memory copy {copy_rate(args.repeats):.1f} GB/s (read + write)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

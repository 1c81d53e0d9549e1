"""Run under torchrun with 2 ranks: rank 1 is late to a barrier by more than the collective timeout.

Rank 0 must fail with ddp.CollectiveTimeout naming itself and the operation (printed, exit 3).
"""
import sys
import time

from r1kit.distributed import ddp

ddp.init_from_env("cpu", timeout=float(sys.argv[1]))
if ddp.rank() == 1:
    time.sleep(3 * float(sys.argv[1]))
    sys.exit(0)
try:
    ddp.barrier()
except ddp.CollectiveTimeout as exc:
    print(f"CollectiveTimeout: {exc}", flush=True)
    sys.exit(3)

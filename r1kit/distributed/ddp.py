"""Data-parallel training over ``torch.distributed`` (start it with ``torchrun --nproc-per-node K``).

Every rank holds the whole policy and takes a contiguous share of the step's groups. The loss of
a micro-batch is normalised by *global* counts (sequences and, for token-mean, tokens summed over
the ranks), so the ranks' losses add up to the single-process loss of the same global batch:

    L = sum_r L_r,   L_r = sum_{i in rank r} l_i / N_global        (seq-mean aggregations)
    L = sum_r sum_{i,t in rank r} l_{i,t} / T_global                (token-mean)

and the gradient of L is the all-reduced *sum* of the ranks' gradients (what DDP does with its
buckets; done here after the micro-batches, because the trainer's forward goes through the
decoder and LM head separately, not through a wrapped ``forward``). Clipping and the optimiser
step then see the same gradients on every rank, so the replicas stay equal.

CPU: the ``gloo`` backend; CUDA: ``nccl`` (one GPU per local rank), chosen from the run's
``device`` option (r1kit.models.device).
"""
from __future__ import annotations

import contextlib
import os
from datetime import timedelta

import torch
import torch.distributed as dist

_timeout_s = [1800.0]  # the process group's collective timeout, for the error message


class CollectiveTimeout(RuntimeError):
    """A collective failed or waited past ``distributed.collective_timeout``; says which rank and
    which operation (a rank that died or hangs shows up here instead of as a silent hang)."""


def launched_by_torchrun() -> bool:
    """True when the environment says this process is one of several ranks (``WORLD_SIZE > 1``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "cpu", timeout: float = 1800.0) -> None:
    """Join the process group torchrun describes: gloo when the training tensors live on the CPU,
    nccl when they live on CUDA (one GPU per local rank); no-op when alone or already joined.
    A collective that waits longer than ``timeout`` seconds raises :class:`CollectiveTimeout`
    (gloo; under nccl the NCCL watchdog aborts the rank with the operation and rank in its log)."""
    if not launched_by_torchrun() or dist.is_initialized():
        return
    _timeout_s[0] = timeout
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout))


@contextlib.contextmanager
def collective(op: str):
    """Run the collective ``op``; a failure or timeout becomes a CollectiveTimeout naming the rank."""
    try:
        yield
    except (RuntimeError, dist.DistBackendError) as exc:
        raise CollectiveTimeout(f"rank {rank()} of {world_size()}: {op} failed or waited longer than "
                                f"distributed.collective_timeout ({_timeout_s[0]:g} s); another rank died, hangs or "
                                f"is stuck in a different operation ({str(exc).splitlines()[0][:300]})") from exc


def backend_for(device: str) -> str:
    """The collective backend of a device type: ``nccl`` for CUDA, ``gloo`` otherwise."""
    return "nccl" if str(device).startswith("cuda") else "gloo"


def comm_device() -> torch.device:
    """Where tensors handed to a collective must live: the rank's GPU under nccl, else the CPU."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def shard(items: list, rank_: int | None = None, size: int | None = None) -> list:
    """This rank's contiguous share of ``items`` (sizes differ by at most one)."""
    r = rank() if rank_ is None else rank_
    n = world_size() if size is None else size
    base, extra = divmod(len(items), n)
    start = r * base + min(r, extra)
    return items[start: start + base + (1 if r < extra else 0)]


def global_sum(value: float | torch.Tensor) -> torch.Tensor:
    """Sum of a scalar over the ranks (the value itself when alone), as a float64 tensor."""
    device = value.device if isinstance(value, torch.Tensor) and world_size() == 1 else comm_device()
    t = torch.as_tensor(value, dtype=torch.float64, device=device).clone()
    if world_size() > 1:
        with collective("all_reduce (global_sum)"):
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def global_max(value: float) -> float:
    """The largest of a scalar over the ranks (the value itself when alone)."""
    if world_size() == 1:
        return value
    t = torch.tensor(float(value), dtype=torch.float64, device=comm_device())
    with collective("all_reduce (max)"):
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.item()


def all_reduce_gradients(parameters) -> None:
    """Sum every parameter's gradient over the ranks, in one flat buffer (a parameter without a
    gradient contributes zeros, so that all ranks reduce the same layout)."""
    if world_size() == 1:
        return
    params = [p for p in parameters if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    with collective("all_reduce (gradients)"):
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset: offset + n].view_as(g).clone()
        offset += n


def gather_objects(obj) -> list:
    """Every rank's ``obj``, in rank order (a one-element list when alone)."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    with collective("all_gather_object"):
        dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    with collective("broadcast_object_list"):
        dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if world_size() > 1:
        with collective("barrier"):
            dist.barrier()

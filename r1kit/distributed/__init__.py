"""Scaling out on existing engines (issue 8): Ray for rollout and reward workers,
``torch.distributed`` for multi-process training. No home-made RPC.

* ``cluster``: start a private local Ray cluster or join one (``distributed.address``).
* ``ray_rollout``: rollout actors (policy copy + rollout engine), versioned weight pushes through
  the object store, task re-queueing when an actor dies.
* ``ray_rewards``: reward workers (the code sandbox runs there); a dead or slow worker scores its
  samples 0 with a counted reason.
* the GRPO trainer drives them through ``r1kit.grpo.sources.RaySource`` (``distributed.backend: ray``).
* ``ddp``: data-parallel training under ``torchrun`` (gloo on CPU, nccl on GPUs), with losses
  normalised by global counts and gradients summed over the ranks.

Ray is imported only when the ray backend is used (``pip install 'r1kit[ray]'``).
"""

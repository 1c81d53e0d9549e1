"""How the trainer's model is laid out over the ``torchrun`` ranks (``distributed.strategy``).

* ``ddp`` (:class:`Replicated`): every rank holds the whole policy; gradients are summed over the
  ranks after the micro-batches (r1kit.distributed.ddp). Alone, this is plain training.
* ``fsdp`` (:class:`Sharded`): FSDP2 (``torch.distributed.fsdp.fully_shard``). Every decoder layer
  and the rest of the model (embeddings, final norm, LM head) are sharded along their first
  dimension over the ranks (uneven sizes are padded by FSDP), and so are the gradients and the
  AdamW state; a layer's full weights exist only while it runs. The reference (beta > 0) is
  sharded the same way.

Sampling under ``fsdp``: each rank keeps an unsharded sampling copy and, once per step, gathers
the full weights into it (one all-gather per tensor), then samples its own share of the prompts
(as under ``ddp``). Sharded sampling would put collectives in the decode loop, whose length
differs between ranks; the gathered copy costs one model in the sampling dtype per rank.

Collectives must line up: every rank runs the same number of forward/backward passes per step,
so a rank with fewer micro-batches runs empty ones (all-zero loss mask) to keep in step.

Checkpoints under ``fsdp``: the full HF folder written once by rank 0 (gathered from the shards)
plus each rank's shard of the optimiser state (``optimizer-rank{R}.pt``); ``--resume`` loads the
folder, shards it the same way and loads each rank's optimiser shard, so it continues exactly.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from r1kit.config import ConfigError
from r1kit.distributed import ddp
from r1kit.models.logprobs import completion_logprobs
from r1kit.models.policy import sampling_copy
from r1kit.models.precision import check_dtype


class _LogProbs(torch.nn.Module):
    """Runs ``completion_logprobs`` as this module's forward, so FSDP's hooks see one root forward
    (the log-prob path calls the decoder and the LM head's weight directly)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch, temperature: float):
        return completion_logprobs(self.model, batch, temperature)


class Replicated:
    """``distributed.strategy: ddp`` (see the module docstring)."""

    lockstep = False  # ranks may run different numbers of micro-batches

    def backward_scale(self) -> float:
        """What a rank's loss is multiplied by before backward so that the gradients come out as the
        sum over the ranks (the ranks' losses already add up to the global loss)."""
        return 1.0

    def sampling_copy(self, policy, dtype: str):
        return sampling_copy(policy, dtype)

    def shard(self, model) -> None:
        """Lay ``model`` out over the ranks (before the optimiser is built)."""

    def logprobs(self, model, batch, temperature: float):
        return completion_logprobs(model, batch, temperature)

    def sync_gradients(self, model) -> None:
        ddp.all_reduce_gradients(model.parameters())

    def clip_grad_norm(self, model, max_norm: float) -> float:
        return torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm).item()

    def full_state_dict(self, model) -> dict:
        return model.state_dict()

    def save_extra(self, optimizer, folder: Path) -> dict:
        """The optimiser state: in ``trainer_state.pt`` (returned) or beside it per rank."""
        return {"optimizer": optimizer.state_dict()}

    def load_extra(self, optimizer, folder: Path, state: dict) -> None:
        optimizer.load_state_dict(state["optimizer"])

    def saves_on_every_rank(self) -> bool:
        return False


class _GatheredCopy:
    """The sampling copy under ``fsdp``: an unsharded copy (made before sharding) refreshed from
    the gathered full weights."""

    def __init__(self, policy, dtype: str, strategy: "Sharded"):
        self.policy, self.strategy = policy, strategy
        self.model = copy.deepcopy(policy).to(check_dtype(dtype)).eval()

    @torch.no_grad()
    def refresh(self) -> None:
        target = self.model.state_dict()
        for name, value in self.strategy.full_state_dict(self.policy).items():
            target[name].copy_(value)


class Sharded(Replicated):
    """``distributed.strategy: fsdp`` (see the module docstring)."""

    lockstep = True

    def __init__(self):
        self._roots: dict[int, _LogProbs] = {}

    def sampling_copy(self, policy, dtype: str):
        return _GatheredCopy(policy, dtype, self)

    def shard(self, model) -> None:
        from torch.distributed.fsdp import fully_shard

        root = _LogProbs(model)
        if ddp.world_size() > 1:
            for layer in model.get_decoder().layers:
                fully_shard(layer)
            fully_shard(root)
        self._roots[id(model)] = root

    def logprobs(self, model, batch, temperature: float):
        return self._roots[id(model)](batch, temperature)

    def backward_scale(self) -> float:
        # FSDP's reduce-scatter averages over the ranks (gloo has no pre-scaled sum to ask for)
        return float(ddp.world_size())

    def sync_gradients(self, model) -> None:
        """FSDP reduce-scatters every gradient during backward."""

    def clip_grad_norm(self, model, max_norm: float) -> float:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        return (norm.full_tensor() if hasattr(norm, "full_tensor") else norm).item()

    def full_state_dict(self, model) -> dict:
        if ddp.world_size() == 1:
            return model.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        with ddp.collective("all_gather (full state dict)"):
            return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))

    def save_extra(self, optimizer, folder: Path) -> dict:
        torch.save(optimizer.state_dict(), Path(folder) / f"optimizer-rank{ddp.rank()}.pt")
        return {"optimizer_shards": ddp.world_size()}

    def load_extra(self, optimizer, folder: Path, state: dict) -> None:
        if state.get("optimizer_shards") != ddp.world_size():
            raise ConfigError(f"{folder}: its optimiser state is sharded over {state.get('optimizer_shards')} ranks; "
                              f"resume with the same torchrun --nproc-per-node")
        path = Path(folder) / f"optimizer-rank{ddp.rank()}.pt"
        optimizer.load_state_dict(torch.load(path, weights_only=False))

    def saves_on_every_rank(self) -> bool:
        return True


STRATEGIES = {"ddp": Replicated, "fsdp": Sharded}

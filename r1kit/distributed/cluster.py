"""Starting or joining a Ray cluster (``distributed.address``) and shutting down what we started."""
from __future__ import annotations

import math
import os

from r1kit.config import ConfigError


def require_ray():
    """The ``ray`` module, or a ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("distributed.backend: 'ray' needs Ray: pip install 'r1kit[ray]'") from None
    return ray


def _runtime_env() -> dict:
    """Workers import r1kit from where this process does: forward PYTHONPATH (an editable or
    source checkout run with PYTHONPATH=...); an installed r1kit needs nothing."""
    path = os.environ.get("PYTHONPATH")
    return {"env_vars": {"PYTHONPATH": path}} if path else {}


def connect(address: str | None, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` (``auto`` or ``HOST:PORT``), or start a private one on
    127.0.0.1 when it is None. Returns True when this call started Ray (so it should shut it down)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    if address:
        if num_cpus is not None:
            raise ConfigError("distributed.num_cpus: only for a private local cluster (address is set)")
        ray.init(address=address, runtime_env=_runtime_env(), log_to_driver=True)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                 _node_ip_address="127.0.0.1", runtime_env=_runtime_env(), log_to_driver=True)
    return True


def private_cluster_cpus(num_cpus: int | None, address: str | None, needed: float) -> int | None:
    """The CPUs of a private cluster: ``distributed.num_cpus``, else at least what the actors reserve
    (Ray's CPUs are scheduling slots, not cores). None when joining a cluster at ``address``."""
    if num_cpus is not None or address:
        return num_cpus
    return max(os.cpu_count() or 1, math.ceil(needed))


def wait_started(handles: list, needed: float, timeout: float = 600) -> None:
    """Every actor in ``handles`` answers ``pid()``, or a ConfigError saying what the cluster lacks."""
    ray = require_ray()
    ready, _ = ray.wait([h.pid.remote() for h in handles], num_returns=len(handles), timeout=timeout)
    if len(ready) < len(handles):
        raise ConfigError(f"distributed: only {len(ready)} of {len(handles)} Ray actors started within "
                          f"{timeout:g} s; they reserve {needed:g} CPUs (rollout_actors x actor_cpus + "
                          f"the reward workers'), the cluster has {ray.cluster_resources().get('CPU', 0):g}")


def shutdown(started: bool) -> None:
    if started:
        require_ray().shutdown()

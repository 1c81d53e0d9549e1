"""Starting or joining a Ray cluster (``distributed.address``) and shutting down what we started."""
from __future__ import annotations

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


def shutdown(started: bool) -> None:
    if started:
        require_ray().shutdown()

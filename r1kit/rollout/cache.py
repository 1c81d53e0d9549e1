"""A KV cache allocated once per generation, written in place, compacted when rows finish.

transformers' ``DynamicCache`` concatenates every decode step (a copy of the whole cache per token);
``StaticCache`` avoids the copy but attends over its full capacity and cannot drop rows. This cache
keeps one buffer per layer of ``capacity`` positions, writes each step's keys/values into it and
hands attention a view of the filled part only. ``batch_select_indices`` (dropping finished rows)
copies just the filled positions.
"""
from __future__ import annotations

import torch
from transformers.cache_utils import Cache, CacheLayerMixin


class PreallocatedLayer(CacheLayerMixin):
    """One attention layer's keys/values, [batch, heads, capacity, head_dim], filled up to ``length``."""

    is_sliding = False
    is_croppable = False

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity, self.length = capacity, 0
        self._keys = self._values = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        batch, heads, _, dim = key_states.shape
        self.device = key_states.device
        self._keys = key_states.new_empty(batch, heads, self.capacity, dim)
        self._values = value_states.new_empty(batch, value_states.shape[1], self.capacity, value_states.shape[-1])
        self.is_initialized = True

    @property
    def keys(self):
        return None if self._keys is None else self._keys[:, :, : self.length]

    @keys.setter
    def keys(self, value):  # the base class assigns None on construction
        if value is not None:
            raise AttributeError("PreallocatedLayer keys are written through update()")

    @property
    def values(self):
        return None if self._values is None else self._values[:, :, : self.length]

    @values.setter
    def values(self, value):
        if value is not None:
            raise AttributeError("PreallocatedLayer values are written through update()")

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"KV cache capacity {self.capacity} exceeded ({end} positions)")
        self._keys[:, :, self.length: end] = key_states
        self._values[:, :, self.length: end] = value_states
        self.length = end
        return self.keys, self.values

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return self.capacity

    def _reallocate(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self._keys = keys.new_empty(keys.shape[0], keys.shape[1], self.capacity, keys.shape[-1])
        self._values = values.new_empty(values.shape[0], values.shape[1], self.capacity, values.shape[-1])
        self._keys[:, :, : self.length] = keys
        self._values[:, :, : self.length] = values

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self._reallocate(self.keys.repeat_interleave(repeats, 0), self.values.repeat_interleave(repeats, 0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self._reallocate(self.keys[indices], self.values[indices])

    def reset(self) -> None:
        self.length = 0


def supports_preallocated_cache(model) -> bool:
    """Only plain full-attention decoders (Llama, Qwen2 without sliding window, Mistral, ...)."""
    cfg = model.config.get_text_config(decoder=True)
    layer_types = getattr(cfg, "layer_types", None) or ["full_attention"]
    sliding = getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True)
    return set(layer_types) == {"full_attention"} and not sliding


def preallocated_cache(model, capacity: int) -> Cache:
    """A cache with one ``PreallocatedLayer`` of ``capacity`` positions per decoder layer."""
    n_layers = model.config.get_text_config(decoder=True).num_hidden_layers
    return Cache(layers=[PreallocatedLayer(capacity) for _ in range(n_layers)])


def splice(parts: list[tuple[Cache, torch.Tensor, int]], length: int, capacity: int) -> Cache:
    """A new cache of ``length`` filled positions from the rows of other preallocated caches.

    Every part ``(cache, rows, shift)`` puts ``cache``'s ``rows`` at columns shifted right by
    ``shift`` (a negative shift drops that many leading columns), so that every part ends at
    column ``length``; the columns a part leaves empty on the left are zeros (they are masked, but
    attention multiplies them by a zero weight, and 0 * NaN from uninitialised memory is NaN).
    """
    first = parts[0][0]
    layers = []
    for i in range(len(first.layers)):
        sources = [(cache.layers[i].keys[rows], cache.layers[i].values[rows], shift) for cache, rows, shift in parts]
        k0, v0 = sources[0][0], sources[0][1]
        batch = sum(k.size(0) for k, _, _ in sources)
        layer = PreallocatedLayer(capacity)
        layer._keys = k0.new_empty(batch, k0.size(1), capacity, k0.size(-1))
        layer._values = v0.new_empty(batch, v0.size(1), capacity, v0.size(-1))
        row = 0
        for keys, values, shift in sources:
            keys, values = keys[:, :, max(-shift, 0):], values[:, :, max(-shift, 0):]
            start, end = max(shift, 0), row + keys.size(0)
            if start + keys.size(2) != length:
                raise ValueError(f"cache part of {keys.size(2)} positions at {start} does not end at {length}")
            for buf, src in ((layer._keys, keys), (layer._values, values)):
                buf[row:end, :, :start] = 0
                buf[row:end, :, start:length] = src
            row = end
        layer.length, layer.device, layer.is_initialized = length, k0.device, True
        layers.append(layer)
    return Cache(layers=layers)

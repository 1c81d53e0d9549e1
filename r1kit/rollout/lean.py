"""Decode steps of Llama-family models without ``nn.Module`` dispatch.

A decode step of the tiny model takes about 3 ms, of which the matrix products and attention are
about 1.3 ms; the rest is Python: some sixty module calls, transformers' mask construction, keyword
plumbing and output dataclasses. ``LeanDecoder`` runs the same torch operations in the same order
as transformers' Llama, Qwen2 and Mistral modules (RMSNorm in fp32, the model's own rotary module
and ``apply_rotary_pos_emb``, transformers' SDPA attention function, SiLU-gated MLP, LM head), on
weights gathered once, so its logits are bit-identical to ``model(...)`` (tested against it): seeded
samples do not change. Models it does not cover exactly (other architectures, eager or flash
attention, adapters, hooks, quantised layers) decode through ``model(...)``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

COVERED = {"LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"}
PLAIN_TORCH_LAYERS = (nn.Linear, nn.Embedding, nn.ModuleList, nn.SiLU, nn.Dropout)  # exact classes, not subclasses


@dataclass
class _Layer:
    attn: nn.Module  # transformers' attention function reads num_key_value_groups from it
    norm1: torch.Tensor
    norm2: torch.Tensor
    q: tuple  # (weight, bias) of each projection
    k: tuple
    v: tuple
    o: tuple
    gate: tuple
    up: tuple
    down: tuple


def _linear(module: nn.Module) -> tuple:
    return module.weight, module.bias


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``LlamaRMSNorm``: w * x / sqrt(mean(x^2) + eps), the statistics in fp32."""
    dtype = x.dtype
    x = x.to(torch.float32)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x.to(dtype)


def _plain(model: nn.Module) -> bool:
    """No hooks, adapters (LoRA layers wrap ``nn.Linear``) or quantised layers: every submodule is
    a plain torch layer or a class of the model's own transformers module."""
    own = {type(model).__module__, "transformers.activations"}
    for module in model.modules():
        if module._forward_hooks or module._forward_pre_hooks:
            return False
        if type(module) not in PLAIN_TORCH_LAYERS and type(module).__module__ not in own:
            return False
    return not (nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks)


def lean_decoder(model) -> "LeanDecoder | None":
    """A ``LeanDecoder`` for ``model``, or None where decoding must go through ``model(...)``."""
    cfg = model.config
    if type(model).__name__ not in COVERED or model.training:
        return None
    if cfg._attn_implementation != "sdpa" or cfg.hidden_act != "silu" or getattr(cfg, "pretraining_tp", 1) != 1:
        return None
    return LeanDecoder(model) if _plain(model) else None


class LeanDecoder:
    """One decode step (one new token per row) of a covered model, on a ``rollout.cache`` cache."""

    def __init__(self, model):
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        body = model.model
        self.embed, self.norm, self.eps = body.embed_tokens.weight, body.norm.weight, body.norm.variance_epsilon
        self.padding_idx = body.embed_tokens.padding_idx
        self.rotary, self.lm_head = body.rotary_emb, _linear(model.lm_head)
        self.rope = sys.modules[type(body.layers[0].self_attn).__module__].apply_rotary_pos_emb
        self.attention = ALL_ATTENTION_FUNCTIONS["sdpa"]
        self.layers = [_Layer(layer.self_attn, layer.input_layernorm.weight, layer.post_attention_layernorm.weight,
                              *(_linear(getattr(layer.self_attn, p)) for p in ("q_proj", "k_proj", "v_proj", "o_proj")),
                              *(_linear(getattr(layer.mlp, p)) for p in ("gate_proj", "up_proj", "down_proj")))
                       for layer in body.layers[: model.config.num_hidden_layers]]
        self.head_dim = self.layers[0].attn.head_dim

    @torch.no_grad()
    def __call__(self, input_ids: torch.Tensor, position_ids: torch.Tensor, cache, attention_mask: torch.Tensor):
        """Last-position logits (fp32) of ``input_ids`` [batch, 1] at ``position_ids`` [batch, 1],
        and the cache (updated in place). attention_mask: [batch, cached + 1], 1 where a row attends.
        """
        # what transformers' create_causal_mask hands SDPA for one query: no mask when nothing is masked
        mask = None if bool(attention_mask.all()) else attention_mask.bool()[:, None, None, :]
        x = F.embedding(input_ids, self.embed, self.padding_idx)
        cos_sin = self.rotary(x, position_ids)
        shape = (*x.shape[:-1], -1, self.head_dim)
        for i, layer in enumerate(self.layers):
            residual = x
            h = _rms_norm(x, layer.norm1, self.eps)
            q = F.linear(h, *layer.q).view(shape).transpose(1, 2)
            k = F.linear(h, *layer.k).view(shape).transpose(1, 2)
            v = F.linear(h, *layer.v).view(shape).transpose(1, 2)
            q, k = self.rope(q, k, *cos_sin)
            k, v = cache.layers[i].update(k, v)
            out, _ = self.attention(layer.attn, q, k, v, mask, dropout=0.0, scaling=layer.attn.scaling)
            x = residual + F.linear(out.reshape(*x.shape[:-1], -1).contiguous(), *layer.o)
            residual = x
            h = _rms_norm(x, layer.norm2, self.eps)
            x = residual + F.linear(F.silu(F.linear(h, *layer.gate)) * F.linear(h, *layer.up), *layer.down)
        x = _rms_norm(x, self.norm, self.eps)
        return F.linear(x[:, -1:], *self.lm_head)[:, -1].float(), cache

"""A LoRA adapter merged into the base weights in memory, for engines served without LoRA kernels.

``W' = W + scale * B @ A`` for every adapted projection, with peft's scale
(``lora_alpha / r``, or ``lora_alpha / sqrt(r)`` with ``use_rslora``; per-module
``rank_pattern`` / ``alpha_pattern`` honoured), computed in float32 as one fused
``addmm`` per projection. The adapter's tensors come from its
``adapter_model.safetensors`` (a few MB); the base weights are read from the base
checkpoint once and kept, and each merged projection is written into an output
buffer that every later version reuses (the embedded model's 106 M merged floats
are neither allocated nor page-faulted again per version). Projections that the
engine fuses into one layer (:meth:`MergedWeights.fuse_like` with vLLM's
``packed_modules_mapping``, e.g. ``qkv_proj`` = q, k, v) share one buffer, back to
back in the engine's order, so an engine in this process finds the fused weight
already assembled.

:meth:`MergedWeights.update` returns what the engine must load to serve an
adapter (or the base model): every tensor of each module that holds a projection
the adapter changes or the served one had changed. Whole parent modules travel
together because an engine may fuse sibling projections (vLLM's ``qkv_proj`` and
``gate_up_proj``) and reprocesses a fused layer only once all its parts arrived.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

PEFT_PREFIX = "base_model.model."
"""Prefix peft puts before the base model's module names in a saved adapter."""
UNSUPPORTED = ("use_dora", "fan_in_fan_out")
"""adapter_config.json switches whose merge is not ``W + scale * B @ A``."""


class MergedWeights:
    """The base weights of the projections adapters touch, and the merge of one adapter into them."""

    def __init__(self, base_model_path: Path, dtype: str) -> None:
        self.dtype = getattr(torch, dtype)
        self.fused_with: dict[str, list[str]] = {}
        """The projections the engine fuses into one layer with each projection (by module name, e.g.
        ``q_proj``: q, k and v), in the layer's order (see :meth:`fuse_like`)."""
        self._files: dict[str, Path] = {}
        """Base checkpoint file holding each tensor, by name."""
        for file in sorted(base_model_path.glob("*.safetensors")):
            with safe_open(str(file), framework="pt") as weights:
                self._files.update(dict.fromkeys(weights.keys(), file))
        if not self._files:
            raise FileNotFoundError(
                f"merged serving: base model folder {str(base_model_path)!r} has no *.safetensors weights; "
                "convert the checkpoint to safetensors or set generator.adapter_serving=lora"
            )
        self._base: dict[str, torch.Tensor] = {}
        """Base tensors read so far, by checkpoint name, in the served dtype."""
        self._merged: dict[str, torch.Tensor] = {}
        """Output buffer of each projection merged so far, by checkpoint name, in the served dtype (a fused
        projection's is its rows of the buffer it shares)."""
        self.changed: set[str] = set()
        """Names of the tensors that differ from the base model in what the engine serves now."""

    def fuse_like(self, fused: Mapping[str, Sequence[str]]) -> None:
        """Merge the projections that the engine fuses into one layer (``fused``: the parts of each fused layer,
        by its name, in its order) into one shared buffer, from their first merge on."""
        self.fused_with = {part: list(parts) for parts in fused.values() for part in parts}

    def update(self, adapter_path: Path | None) -> dict[str, torch.Tensor]:
        """Tensors to load so the engine serves ``adapter_path`` merged (None: the base model).

        Merged projections are returned in their reused output buffers: they hold this version until the
        next ``update``, so load (or serialize) them before calling it again.
        """
        factors = adapter_factors(adapter_path) if adapter_path is not None else {}
        names = {name for weight in self.changed | set(factors) for name in self._siblings(weight)}
        weights = {}
        for name in sorted(names):
            base = self._base_tensor(name)
            weights[name] = base if name not in factors else self._merge(name, base, *factors[name])
        self.changed = set(factors)
        return weights

    def _merge(
        self, name: str, base: torch.Tensor, scale: float, lora_b: torch.Tensor, lora_a: torch.Tensor
    ) -> torch.Tensor:
        """``base + scale * lora_b @ lora_a`` (float32 arithmetic) written into ``name``'s output buffer."""
        if name not in self._merged:
            self._allocate(name)
        out = self._merged[name]
        if out.dtype == torch.float32:
            return torch.addmm(base, lora_b, lora_a, alpha=scale, out=out)
        return out.copy_(torch.addmm(base.float(), lora_b, lora_a, alpha=scale))

    def _allocate(self, name: str) -> None:
        """Output buffers for ``name`` and, when the engine fuses it with other projections, for those too: one
        buffer, in the fused layer's order."""
        parent, leaf, kind = name.rsplit(".", 2)
        group = [f"{parent}.{part}.{kind}" for part in self.fused_with.get(leaf, [leaf])]
        if not all(part in self._files for part in group):
            group = [name]
        bases = [self._base_tensor(part) for part in group]
        if any(base.shape[1:] != bases[0].shape[1:] for base in bases):
            group, bases = [name], [self._base_tensor(name)]
        buffer = torch.empty(sum(base.shape[0] for base in bases), *bases[0].shape[1:], dtype=self.dtype)
        self._merged.update(zip(group, buffer.split([base.shape[0] for base in bases])))

    def _siblings(self, weight: str) -> list[str]:
        """Every checkpoint tensor in the module above the projection ``weight`` belongs to."""
        parent = weight.rsplit(".", 2)[0] + "."
        if weight not in self._files:
            raise KeyError(
                f"merged serving: the adapter changes {weight!r}, which the base checkpoint does not have; "
                "the adapter was trained on another model: serve it with that model's checkpoint"
            )
        return [name for name in self._files if name.startswith(parent) and name[len(parent) :].count(".") == 1]

    def _base_tensor(self, name: str) -> torch.Tensor:
        if name not in self._base:
            with safe_open(str(self._files[name]), framework="pt") as file:
                self._base[name] = file.get_tensor(name).to(self.dtype)
        return self._base[name]


def adapter_factors(adapter_path: Path) -> dict[str, tuple[float, torch.Tensor, torch.Tensor]]:
    """``(scale, B, A)`` (float32 factors) of each adapted projection, by the base checkpoint's weight name:
    the projection's delta is ``scale * B @ A``."""
    config = json.loads((adapter_path / "adapter_config.json").read_text())
    for switch in UNSUPPORTED:
        if config.get(switch):
            raise ValueError(
                f"merged serving: {str(adapter_path / 'adapter_config.json')!r} sets {switch}, which merged "
                "serving cannot merge; set generator.adapter_serving=lora"
            )
    tensors = load_file(str(adapter_path / "adapter_model.safetensors"))
    factors = {}
    for key, lora_a in tensors.items():
        if not key.endswith(".lora_A.weight"):
            continue
        module = key[: -len(".lora_A.weight")].removeprefix(PEFT_PREFIX)
        lora_b = tensors[f"{key[: -len('lora_A.weight')]}lora_B.weight"]
        factors[f"{module}.weight"] = (_scale(config, module), lora_b.float(), lora_a.float())
    return factors


def _scale(config: dict, module: str) -> float:
    """peft's LoRA scale for ``module``: a pattern entry matching the module's name wins over the default."""
    rank = _pattern_value(config.get("rank_pattern") or {}, module, config["r"])
    alpha = _pattern_value(config.get("alpha_pattern") or {}, module, config["lora_alpha"])
    return alpha / (math.sqrt(rank) if config.get("use_rslora") else rank)


def _pattern_value(pattern: dict, module: str, default: float) -> float:
    for key, value in pattern.items():
        if re.fullmatch(rf"(.*\.)?{key}", module):
            return value
    return default

"""The vLLM worker extension through which merged weights reach the running engine.

vLLM mixes this class into its worker class (``worker_extension_cls``), so
``LLM.collective_rpc("load_weights_in_place", args=(weights,))`` runs
:meth:`WeightSync.load_weights_in_place` inside each worker. With the engine core
in this process the call is direct and the tensors are passed as they are; to
worker processes they travel as one safetensors blob, since plain bytes survive
vLLM's RPC serialization, which turns tensors nested in arguments into lists.

Two ways in:

- **Repacking** (CPU engines, one worker, unquantized layers): every vLLM linear
  layer the update covers whole gets its new weight at once (the checkpoint's
  sibling projections concatenated in the order of the model's
  ``packed_modules_mapping``, e.g. ``qkv_proj`` = q, k, v) and rebuilds its own
  CPU kernel (``quant_method.process_weights_after_loading``, which packs the
  weight for oneDNN). :func:`repack_plan` decides this for the whole update.
- **vLLM's** ``reload_weights`` everywhere else (GPUs, tensor parallelism,
  quantized layers, an update that covers part of a fused layer): it restores each
  reloaded layer's parameters, loads the tensors through their weight loaders and
  reprocesses the layer.

Both end in the same served weights (``tests/test_generators.py``); repacking skips
the reload's per-layer bookkeeping and weight-loader calls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from safetensors.torch import load

RELOAD_LOGGERS = (
    "vllm.model_executor.model_loader.reload.layerwise",
    "vllm.model_executor.model_loader.reload.inplace",
)
"""vLLM loggers that warn about every layer a partial reload leaves as it was (the expected case here)."""


@dataclass
class Repack:
    """One vLLM linear layer and the checkpoint tensors that make up its new weight (and bias), in its order."""

    name: str
    """The layer's module name in the vLLM model."""
    layer: torch.nn.Module
    weights: list[str]
    """Checkpoint names of the layer's weight parts, concatenated along the output dimension."""
    biases: list[str]
    """Checkpoint names of its bias parts (empty: the bias, if any, is left as it is)."""

    def apply(self, tensors: dict[str, torch.Tensor]) -> None:
        """Give the layer its new weight and bias, and let it rebuild its kernel.

        Parts that lie back to back in one tensor (the fused buffers of
        :class:`~prism_agents.policies.generators.merged.MergedWeights` in this process) are handed over as
        they are, others concatenated. A kernel that packs the weight copies it; one that keeps it (a fallback
        kernel) shares the merge's buffer, which only the next merge rewrites, and the sync after that merge
        loads every layer it rewrote before anything is generated.
        """
        parts = [tensors[name] for name in self.weights]
        weight = back_to_back(parts)
        self.layer.weight = torch.nn.Parameter(torch.cat(parts) if weight is None else weight, requires_grad=False)
        if self.biases:
            self.layer.bias.data.copy_(torch.cat([tensors[name] for name in self.biases]))
        self.layer.quant_method.process_weights_after_loading(self.layer)


def back_to_back(parts: list[torch.Tensor]) -> torch.Tensor | None:
    """The 2-D ``parts`` stacked along their rows as one view of their storage, when each starts where the one
    before ends in the same contiguous storage; else None."""
    first = parts[0]
    offset = first.storage_offset()
    for part in parts:
        if (
            part.dim() != 2
            or not part.is_contiguous()
            or part.shape[1] != first.shape[1]
            or part.dtype != first.dtype
            or part.untyped_storage().data_ptr() != first.untyped_storage().data_ptr()
            or part.storage_offset() != offset
        ):
            return None
        offset += part.numel()
    return first.as_strided((sum(part.shape[0] for part in parts), first.shape[1]), first.stride())


class WeightSync:
    """Worker-side methods that load checkpoint-named weights into the model in place."""

    def fused_projections(self) -> dict[str, list[str]]:
        """The projections the model fuses into one layer, by the fused layer's name, in its order (vLLM's
        ``packed_modules_mapping``, e.g. ``qkv_proj``: q, k and v)."""
        return dict(getattr(self.model_runner.get_model(), "packed_modules_mapping", {}))  # type: ignore[attr-defined]

    def load_weights_in_place(self, weights: dict[str, torch.Tensor] | bytes) -> int:
        """Load checkpoint-named ``weights`` (or their safetensors blob) into the worker's model, by repacking
        the layers they cover when :func:`repack_plan` allows it, else with the worker's ``reload_weights``;
        return how many tensors were loaded."""
        if isinstance(weights, bytes):
            weights = load(weights)
        plan = repack_plan(self.model_runner.get_model(), weights)  # type: ignore[attr-defined]
        if plan is not None:
            with torch.inference_mode():
                for repack in plan:
                    repack.apply(weights)
            return len(weights)
        for name in RELOAD_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        self.reload_weights(weights_iterator=weights.items(), is_checkpoint_format=True)  # type: ignore[attr-defined]
        return len(weights)


def repack_plan(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> list[Repack] | None:
    """The layers to repack so the model serves ``weights`` (checkpoint-named), or None when any tensor must go
    through vLLM's reload: not on a CPU engine, a layer sharded over several workers or quantized, a tensor that
    is not a linear layer's weight or bias, a fused layer only partly covered, or a part whose shape is not the
    layer's."""
    from vllm.model_executor.layers.linear import LinearBase, UnquantizedLinearMethod
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return None
    packed = getattr(model, "packed_modules_mapping", {})
    fused_of = {part: fused for fused, parts in packed.items() for part in parts}
    modules = dict(model.named_modules())
    plan: dict[str, Repack] = {}
    for name in weights:
        module_name, _, kind = name.rpartition(".")
        parent, _, leaf = module_name.rpartition(".")
        fused = fused_of.get(leaf, leaf)
        layer_name = f"{parent}.{fused}"
        layer = modules.get(layer_name)
        if (
            kind not in ("weight", "bias")
            or not isinstance(layer, LinearBase)
            or not isinstance(layer.quant_method, UnquantizedLinearMethod)
            or getattr(layer, "tp_size", 1) != 1
        ):
            return None
        if layer_name not in plan:
            parts = [f"{parent}.{part}" for part in packed.get(fused, [fused])]
            with_bias = any(f"{part}.bias" in weights for part in parts)
            plan[layer_name] = Repack(
                layer_name, layer, [f"{part}.weight" for part in parts], [f"{part}.bias" for part in parts if with_bias]
            )
    for repack in plan.values():
        if not _fits(repack, weights):
            return None
    return list(plan.values())


def _fits(repack: Repack, weights: dict[str, torch.Tensor]) -> bool:
    """Whether ``weights`` hold every part of the layer, each of the size vLLM gave that part."""
    layer = repack.layer
    sizes = getattr(layer, "output_partition_sizes", None)
    names = repack.weights + repack.biases
    if sizes is None or len(sizes) != len(repack.weights) or any(name not in weights for name in names):
        return False
    if repack.biases and getattr(layer, "bias", None) is None:
        return False
    shapes = [tuple(weights[name].shape) for name in repack.weights]
    bias_shapes = [tuple(weights[name].shape) for name in repack.biases]
    return shapes == [(size, layer.input_size_per_partition) for size in sizes] and bias_shapes in (
        [],
        [(size,) for size in sizes],
    )


QUALNAME = f"{WeightSync.__module__}.{WeightSync.__qualname__}"
"""The extension's qualified name, as vLLM's ``worker_extension_cls`` takes it."""

"""Generators that serve the LoRA policy: vLLM (default) and HF transformers.

``build_generator`` picks the implementation named in the config from
:data:`prism_agents.registry.GENERATORS`; importing this package registers
``vllm`` and ``hf``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prism_agents.config.generation import GeneratorConfig, SamplingConfig
from prism_agents.policies.generators.base import Completion, Generator, TrainingSide
from prism_agents.policies.generators.check import AdapterMismatchError, CheckResult, check_served_adapter
from prism_agents.policies.generators.hf import HFGenerator
from prism_agents.policies.generators.vllm import VLLMGenerator
from prism_agents.registry import GENERATORS

logger = logging.getLogger(__name__)

__all__ = [
    "AdapterMismatchError",
    "CheckResult",
    "Completion",
    "Generator",
    "GeneratorConfig",
    "HFGenerator",
    "SamplingConfig",
    "TrainingSide",
    "VLLMGenerator",
    "build_generator",
    "check_served_adapter",
]


def build_generator(config: GeneratorConfig, base_model_path: str | Path, tensor_parallel_size: int = 1) -> Generator:
    """The generator named by ``config.name``, serving the base model at ``base_model_path``.

    ``vllm`` falls back to ``hf`` (with a warning) only when the vllm package
    cannot be imported; any other failure to start vLLM is raised. A ``tensor_parallel_size`` above 1
    (``cluster.tensor_parallel_size``) needs vLLM.
    """
    name = config.name
    if name == "vllm":
        try:
            import vllm  # noqa: F401 - only probes that the engine is installed
        except ImportError as error:
            logger.warning("generator 'vllm' is not importable (%s); falling back to generator 'hf'", error)
            name = "hf"
    if tensor_parallel_size > 1:
        if name != "vllm":
            raise ValueError(
                f"cluster.tensor_parallel_size is {tensor_parallel_size} but generator {name!r} has no tensor "
                "parallelism; use generator.name=vllm (installed) or cluster.tensor_parallel_size=1"
            )
        return VLLMGenerator(config, base_model_path, tensor_parallel_size=tensor_parallel_size)
    return GENERATORS.get(name)(config, base_model_path)

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


def build_generator(config: GeneratorConfig, base_model_path: str | Path) -> Generator:
    """The generator named by ``config.name``, serving the base model at ``base_model_path``.

    ``vllm`` falls back to ``hf`` (with a warning) only when the vllm package
    cannot be imported; any other failure to start vLLM is raised.
    """
    name = config.name
    if name == "vllm":
        try:
            import vllm  # noqa: F401 - only probes that the engine is installed
        except ImportError as error:
            logger.warning("generator 'vllm' is not importable (%s); falling back to generator 'hf'", error)
            name = "hf"
    return GENERATORS.get(name)(config, base_model_path)

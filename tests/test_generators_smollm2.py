"""vLLM and HF serve the same LoRA adapter identically on the embedded SmolLM2-135M-Instruct model."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_generators import assert_same_completions, make_adapter, training_side
from transformers import AutoTokenizer

from prism_agents.config.generation import GeneratorConfig, SamplingConfig
from prism_agents.config.model import ModelConfig
from prism_agents.policies.generators import HFGenerator, VLLMGenerator
from prism_agents.policies.generators.check import probe_prompt_ids
from prism_agents.policies.model import ModelResolutionError, resolve_model

MESSAGES = [
    "What is the capital of France?",
    "Your task is to: put a clean apple in fridge. You see a countertop 1 and a fridge 1. Which action comes first?",
    "Write one sentence about a cat.",
    "List three colours.",
]


@pytest.fixture(scope="module")
def base_path() -> Path:
    try:
        return resolve_model(ModelConfig())
    except ModelResolutionError as error:
        pytest.skip(f"embedded model not available: {error}")


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_and_hf_agree_on_smollm2_with_an_adapter(base_path: Path, tmp_path: Path) -> None:
    adapter = make_adapter(base_path, tmp_path / "adapter", seed=1, rank=16, std=0.02)
    prompts = [probe_prompt_ids(AutoTokenizer.from_pretrained(base_path), message) for message in MESSAGES]
    sampling = SamplingConfig(max_new_tokens=48, temperature=0.0)
    config = GeneratorConfig(kv_cache_gib=2, max_model_len=2048, max_lora_rank=16)
    with HFGenerator(config, base_path) as hf:
        hf.load_adapter(adapter, version=1)
        expected = hf.generate(prompts, sampling)
    with VLLMGenerator(config, base_path) as vllm:
        check = vllm.load_adapter(adapter, version=1, reference=training_side(base_path, adapter))
        served = vllm.generate(prompts, sampling)
    assert_same_completions(served, expected)
    assert any(c.finish_reason == "stop" for c in served), "no completion ended on its end-of-turn token"
    assert check.max_logprob_diff < config.check_tolerance

